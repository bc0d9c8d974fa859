"""Hostile input from another server, one readable test per class of input.

The property over every route is `test_hostile_federation_input.py`; the
servers and the world are `tests/support/hostile_federation.py` (server A,
the target, with alice's room; bob of server B joined with power level 100;
every request signed by B's real key). Spec: `content/server-server-api.md`
§ Transactions, § Checks performed on receipt of a PDU ("dropped" for a
malformed or badly signed event, "rejected" for one failing authorization;
a content hash mismatch stores the redacted event), § EDUs, § Typing
Notifications, § Receipts, § Presence, § Device Management, § Send-to-device
messaging; `content/rooms/v10.md` (Canonical JSON: no floats, integers within
±(2**53 - 1); power levels as integers).

Each test also leaves nothing logged at ERROR on either server, and ends with
A still serving alice (`/sync`, `/messages`, the room directory, members, the
user directory, the hierarchy, keys) and still taking B's next valid message.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from matrix_conduit.core.signing import sign_request
from matrix_conduit.service.rooms.event_context import EventStatus
from tests.support.hostile import FIVE_THOUSAND_DIGITS, no_error_in_the_server_log
from tests.support.hostile_federation import (
    DELETE,
    NOBODY,
    SEND,
    Peering,
    assert_peer_still_accepted,
    assert_peer_users_still_heard,
    assert_target_still_serves,
    changed,
    edu_templates,
    pdu_id,
    peering_fixture,
    sign_as_peer,
    transaction,
    txn_id,
)
from tests.support.matrix import User, ok, path_part

pytestmark = pytest.mark.slow

peering = peering_fixture()
no_error_logged = no_error_in_the_server_log()


@pytest.fixture
async def client(peering: Peering) -> AsyncIterator[httpx.AsyncClient]:
    """A client of A for the test; afterwards A still serves alice and takes B's messages."""
    async with peering.client() as client:
        yield client
        await assert_target_still_serves(peering, client, "the test")
        await assert_peer_still_accepted(peering, client, "the test")
        await assert_peer_still_accepted(peering.v12, client, "the test")


async def message_template(peering: Peering, **content: Any) -> dict[str, Any]:
    body = {"msgtype": "m.text", "body": "hostile", **content}
    template = await peering.template("m.room.message", body)
    return {**template, "origin": peering.world.peer}


async def send(
    peering: Peering, client: httpx.AsyncClient, text: str
) -> tuple[int, dict[str, Any]]:
    """`PUT /send` with `text` as the body, signed by B; once A's worker is done with it."""
    response = await peering.signed_request(client, "PUT", SEND.format(txn_id()), text)
    assert response.status_code < 500, response.text[:500]
    await peering.inbound_drained()
    return response.status_code, response.json()


async def send_pdus(
    peering: Peering, client: httpx.AsyncClient, pdus: list[Any], edus: list[Any] | None = None
) -> dict[str, Any]:
    status, answer = await send(peering, client, transaction(peering.world.peer, pdus, edus))
    assert status == 200, answer
    return answer["pdus"]


async def assert_dropped(peering: Peering, client: httpx.AsyncClient, pdu: dict[str, Any]) -> None:
    """The PDU's answer is an error (or it has no id to answer for), and A never stored it."""
    results = await send_pdus(peering, client, [pdu])
    event_id = pdu_id(pdu, peering.world.room_version)
    if event_id is not None and event_id in results:
        assert "error" in results[event_id], results
        assert await peering.status(event_id) is None, event_id
    else:
        assert results == {}, results


def skip_unless_served(response: httpx.Response, what: str) -> None:
    """Joins and invites over federation land separately: skip until the route exists."""
    if response.status_code == 404 and response.json().get("errcode") == "M_UNRECOGNIZED":
        pytest.skip(f"{what} is not served by this build")


def assert_error(response: httpx.Response, status: int, *errcodes: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert body["errcode"] in errcodes, body
    assert isinstance(body["error"], str), body
    return body


# ---- JSON no event may hold: the whole transaction is refused at the door


async def refused_with_its_pdu(
    peering: Peering, client: httpx.AsyncClient, value: str, errcode: str
) -> None:
    """A transaction whose one PDU holds `value` (JSON text) in its content: 400 `errcode`
    for all of it, the PDU never stored, alice's `/sync` still 200."""
    pdu, event_id = sign_as_peer(peering, await message_template(peering))
    text = transaction(peering.world.peer, [pdu]).replace('"hostile"', value)
    assert value in text
    response = await peering.signed_request(client, "PUT", SEND.format(txn_id()), text)
    assert_error(response, 400, errcode)
    await peering.inbound_drained()
    assert await peering.status(event_id) is None
    ok(await peering.alice(client).get("/sync", timeout=0, since=peering.world.since))


async def test_a_pdu_with_a_lone_surrogate_in_content_is_rejected_and_the_room_still_syncs(
    peering, client
):
    await refused_with_its_pdu(peering, client, r'"\ud800"', "M_BAD_JSON")


@pytest.mark.parametrize(
    ("value", "errcode"),
    [
        (r'"a\udfffb"', "M_BAD_JSON"),
        (r'{"\udc00": 1}', "M_BAD_JSON"),
        ("1e400", "M_BAD_JSON"),
        ("-1e400", "M_BAD_JSON"),
        (FIVE_THOUSAND_DIGITS, "M_NOT_JSON"),
        ("NaN", "M_NOT_JSON"),
    ],
    ids=["lone-low-surrogate", "surrogate-key", "1e400", "-1e400", "5000-digits", "NaN"],
)
async def test_a_pdu_with_json_no_event_can_hold_is_rejected_and_the_room_still_syncs(
    peering: Peering, client: httpx.AsyncClient, value: str, errcode: str
):
    await refused_with_its_pdu(peering, client, value, errcode)


async def test_a_transaction_nested_a_thousand_levels_deep_is_400(peering, client):
    text = transaction(peering.world.peer, []).replace("[]", "[" * 1000 + "]" * 1000, 1)
    response = await peering.signed_request(client, "PUT", SEND.format(txn_id()), text)
    assert_error(response, 400, "M_BAD_JSON", "M_NOT_JSON")


# ---- what a v10 event may not hold, signed by a server that should not have


@pytest.mark.parametrize(
    "value", [1.5, -0.0, 2**53, -(2**53), 2**64], ids=["1.5", "-0.0", "2^53", "-2^53", "2^64"]
)
async def test_a_v10_pdu_with_a_float_or_an_unsafe_integer_is_dropped_and_never_stored(
    peering: Peering, client: httpx.AsyncClient, value: Any
):
    pdu, event_id = sign_as_peer(peering, await message_template(peering, extra=value))
    results = await send_pdus(peering, client, [pdu])
    assert "Canonical JSON" in results[event_id]["error"], results
    assert await peering.status(event_id) is None


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_pdu_at_the_deepest_depth_leaves_the_room_writable(peering, room_version: str):
    """Rooms v6+: depth is at most 2**53 - 1 (`components/depth_v6.yaml`), and an event on
    top of one at the limit takes the limit (spec, PDUs: "If the room's depth is already
    at the limit, the depth must be set to the limit"): alice can still write, and B's
    next message (built on it) is taken."""
    view = await (peering.v12 if room_version == "12" else peering).fresh_room()
    deepest = {**await message_template(view), "depth": 2**53 - 1}
    pdu, event_id = sign_as_peer(view, deepest)
    async with view.client() as client:
        assert await send_pdus(view, client, [pdu]) == {event_id: {}}
        assert await view.status(event_id) is EventStatus.TIMELINE
        alice = view.alice(client)
        sent = await alice.send(view.world.room_id, "on top of the deepest")
        stored = await view.call(view.a.rooms.timeline.get_event, sent)
        assert stored["depth"] == 2**53 - 1, stored
        await assert_peer_still_accepted(view, client, "a PDU at depth 2**53 - 1")


async def test_a_pdu_whose_content_was_changed_after_signing_is_stored_redacted(peering, client):
    pdu, event_id = sign_as_peer(peering, await message_template(peering))
    pdu = changed(pdu, ("content", "body"), "changed on the way")
    event_id = pdu_id(pdu)
    assert (await send_pdus(peering, client, [pdu])) == {event_id: {}}
    stored = await peering.call(peering.a.rooms.timeline.get_event, event_id)
    assert stored["content"] == {}, stored


# ---- PDUs of the wrong shape


REQUIRED_FIELDS = [
    "type",
    "sender",
    "origin_server_ts",
    "depth",
    "prev_events",
    "auth_events",
    "hashes",
    "signatures",
    "content",
]


@pytest.mark.parametrize("room_version", ["10", "12"])
@pytest.mark.parametrize("field", REQUIRED_FIELDS)
async def test_a_pdu_missing_a_required_field_is_dropped(peering, client, field, room_version):
    view = peering.v12 if room_version == "12" else peering
    signed, _ = sign_as_peer(view, await message_template(view))
    await assert_dropped(view, client, changed(signed, (field,), DELETE))


WRONG_TYPES = [
    ("type", 5),
    ("type", None),
    ("sender", "not a user id"),
    ("sender", ["@bob"]),
    ("origin_server_ts", "yesterday"),
    ("depth", "deep"),
    ("depth", -5),
    ("depth", 2**53),
    ("prev_events", "$nope"),
    ("prev_events", [5]),
    ("prev_events", ["$nope"] * 21),
    ("auth_events", ["$nope"] * 11),
    ("auth_events", [["$nope", {}]]),
    ("hashes", {"sha256": 5}),
    ("hashes", "x"),
    ("content", []),
    ("content", "body"),
    ("state_key", 5),
    ("redacts", {}),
    ("unsigned", "x"),
    ("room_id", 5),
]


@pytest.mark.parametrize(
    ("field", "value"), WRONG_TYPES, ids=[f"{f}={json.dumps(v)[:20]}" for f, v in WRONG_TYPES]
)
@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_pdu_with_a_field_of_the_wrong_type_is_dropped(
    peering, client, field, value, room_version
):
    """Signed by B after the change (except `hashes`, which signing writes), so only the
    format check can stop it."""
    if field == "redacts" and room_version == "12":
        pytest.skip("from room v11 on `redacts` is a key of the content, not of the event")
    view = peering.v12 if room_version == "12" else peering
    pdu = changed(await message_template(view), (field,), value)
    with contextlib.suppress(Exception):  # unsignable (no content to hash): sent unsigned
        pdu, _ = sign_as_peer(view, pdu)
    if field == "hashes":  # signing writes the real hash: the change comes after it
        pdu = changed(pdu, (field,), value)
    await assert_dropped(view, client, pdu)


SIGNATURE_SHAPES = [
    [],
    "sig",
    {"{peer}": "sig"},
    {"{peer}": {"ed25519:x": 5}},
    {"{peer}": {}},
    {"{peer}": {"ed25519:auto": "!!not base64!!"}},
    {"{peer}": {"not a key id": "c2ln"}},
    {NOBODY: {"ed25519:a": "c2ln"}},
]


@pytest.mark.parametrize("shape", SIGNATURE_SHAPES, ids=[json.dumps(s) for s in SIGNATURE_SHAPES])
async def test_a_pdu_with_signatures_of_the_wrong_shape_is_dropped(peering, client, shape):
    signed, _ = sign_as_peer(peering, await message_template(peering))
    shape = json.loads(json.dumps(shape).replace("{peer}", peering.world.peer))
    await assert_dropped(peering, client, {**signed, "signatures": shape})


async def test_a_pdu_whose_sender_is_of_another_server_is_dropped(peering, client):
    """B may not speak for a user of another server: that server's signature is missing."""
    pdu = {**await message_template(peering), "sender": f"@mallory:{NOBODY}"}
    signed, event_id = sign_as_peer(peering, pdu)
    results = await send_pdus(peering, client, [signed])
    assert "error" in results[event_id], results
    assert await peering.status(event_id) is None


@pytest.mark.parametrize(
    "room_id",
    [f"!unknown:{NOBODY}", "!unknown:{target}", "not a room", "!", "x" * 300],
    ids=["of-another-server", "unknown-here", "malformed", "bang", "300-chars"],
)
async def test_a_pdu_for_a_room_unknown_here_is_ignored(peering, client, room_id: str):
    room_id = room_id.replace("{target}", peering.world.target)
    signed, event_id = sign_as_peer(
        peering, {**await message_template(peering), "room_id": room_id}
    )
    assert await send_pdus(peering, client, [signed]) == {}
    assert await peering.status(event_id) is None


async def test_pdus_that_are_not_objects_are_ignored(peering, client):
    assert await send_pdus(peering, client, [5, "pdu", None, [], True]) == {}


async def test_send_with_51_pdus_is_400(peering, client):
    pdu, event_id = sign_as_peer(peering, await message_template(peering))
    status, answer = await send(peering, client, transaction(peering.world.peer, [pdu] * 51))
    assert status == 400 and answer["errcode"] == "M_TOO_LARGE", answer
    assert await peering.status(event_id) is None


async def test_send_with_101_edus_is_400(peering, client):
    typing = {"edu_type": "m.typing", "content": edu_templates(peering.world)["m.typing"]}
    status, answer = await send(
        peering, client, transaction(peering.world.peer, [], [typing] * 101)
    )
    assert status == 400 and answer["errcode"] == "M_TOO_LARGE", answer


@pytest.mark.parametrize(
    "body",
    [
        {"pdus": "x"},
        {"pdus": {}},
        {"pdus": [], "edus": {}},
        {"pdus": None},
        {},
        {"origin": "{target}", "pdus": []},
        {"origin": 5, "pdus": []},
    ],
    ids=[
        "pdus-string",
        "pdus-object",
        "edus-object",
        "pdus-null",
        "empty",
        "origin-us",
        "origin-5",
    ],
)
async def test_a_transaction_of_the_wrong_shape_is_400(peering, client, body: dict[str, Any]):
    text = json.dumps(body).replace("{target}", peering.world.target)
    status, answer = await send(peering, client, text)
    assert status == 400 and answer["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), answer


# ---- state bob's server sends with content of the wrong type (bob has power 100)


async def bobs_state(peering: Peering, event_type: str, content: Any, state_key: str = "") -> Any:
    template = await peering.template(event_type, {}, state_key)
    pdu = {**template, "content": content, "origin": peering.world.peer}
    return sign_as_peer(peering, pdu)


WRONG_STATE = [
    ("m.room.name", {"name": 5}),
    ("m.room.name", {"name": {"a": []}}),
    ("m.room.topic", {"topic": []}),
    ("m.room.avatar", {"url": 5}),
    ("m.room.canonical_alias", {"alias": 5, "alt_aliases": "x"}),
    ("m.room.canonical_alias", {"alias": f"#x:{NOBODY}", "alt_aliases": [5, None]}),
    ("m.room.guest_access", {"guest_access": []}),
    ("m.room.history_visibility", {"history_visibility": 5}),
    ("m.room.history_visibility", {"history_visibility": "nonsense"}),
    ("m.room.join_rules", {"join_rule": 5}),
    ("m.room.join_rules", {"join_rule": "restricted", "allow": "everyone"}),
    ("m.room.join_rules", {"join_rule": "restricted", "allow": [5, {"type": 5}]}),
    ("m.room.encryption", {"algorithm": 5}),
    ("m.room.pinned_events", {"pinned": "x"}),
    ("m.room.tombstone", {"replacement_room": 5}),
    ("m.space.child", {"via": "x"}),
]


@pytest.mark.parametrize(
    ("event_type", "content"),
    WRONG_STATE,
    ids=[f"{t}={json.dumps(c)[:30]}" for t, c in WRONG_STATE],
)
async def test_room_state_with_content_of_the_wrong_type_keeps_every_read_of_the_room_serving(
    peering: Peering, event_type: str, content: Any
):
    """Authorization does not look at these contents, so the event may be stored; every
    read of the room (directory, hierarchy, members, `/event` for B...) still works."""
    view = await peering.fresh_room()
    state_key = "!child:" + NOBODY if event_type == "m.space.child" else ""
    pdu, event_id = await bobs_state(view, event_type, content, state_key)
    async with view.client() as client:
        results = await send_pdus(view, client, [pdu])
        assert event_id in results, results
        what = f"{event_type} {content}"
        await assert_target_still_serves(view, client, what)
        await assert_peer_still_accepted(view, client, what)
        world = view.world
        room = path_part(world.room_id)
        if await view.status(event_id) is not None:
            answer = await view.signed_request(
                client, "GET", f"/_matrix/federation/v1/event/{path_part(event_id)}"
            )
            assert answer.status_code == 200, answer.text[:500]
        # what reads the room's rules when acting in it: alice writes, carla of A joins,
        # carol of B asks to join
        await view.alice(client).send(world.room_id, "still writing")
        carla = User(world.carla_id, "", world.carla_token, client, world.target)
        joined = await carla.post(f"/rooms/{room}/join")
        assert joined.status_code < 500, (what, joined.text[:500])
        carol = path_part(f"@carol:{world.peer}")
        make_join = await view.signed_request(
            client, "GET", f"/_matrix/federation/v1/make_join/{room}/{carol}?ver=10"
        )
        assert make_join.status_code < 500, (what, make_join.text[:500])


@pytest.mark.parametrize(
    "content",
    [
        {"allow": "*", "deny": 5},
        {"allow": [5, None, {}], "deny": "x", "allow_ip_literals": "yes"},
        {"allow": None},
    ],
    ids=["strings-for-lists", "items-of-wrong-types", "null-allow"],
)
async def test_a_server_acl_of_the_wrong_shape_never_breaks_the_next_transaction(
    peering: Peering, content: dict[str, Any]
):
    """Whatever A makes of it (a list that is not one allows nothing), the next /send from B
    is answered without a 5xx and A still serves alice."""
    view = await peering.fresh_room()
    pdu, event_id = await bobs_state(view, "m.room.server_acl", content)
    async with view.client() as client:
        assert event_id in await send_pdus(view, client, [pdu])
        next_pdu, _ = sign_as_peer(view, await message_template(view))
        status, answer = await send(view, client, transaction(view.world.peer, [next_pdu]))
        assert status == 200, answer
        await assert_target_still_serves(view, client, f"the server ACL {content}")


@pytest.mark.parametrize(
    "content",
    [
        {"users": {"{bob}": "100"}},
        {"users": {"{bob}": 1.5}},
        {"users": "everyone", "events_default": 0},
        {"users": {"{bob}": 100}, "notifications": {"room": "50"}},
        {"users": {"{bob}": 100}, "events": {"m.room.message": None}},
    ],
    ids=["string-level", "float-level", "users-string", "notifications-string", "null-event"],
)
async def test_power_levels_of_the_wrong_type_are_rejected_and_bob_keeps_his_power(
    peering: Peering, content: dict[str, Any]
):
    """Rooms v10: every power level is an integer (`content/rooms/v10.md`); an event that
    breaks it fails authorization (or the format check) and changes nothing."""
    view = await peering.fresh_room()
    content = json.loads(json.dumps(content).replace("{bob}", view.world.bob_id))
    pdu, event_id = await bobs_state(view, "m.room.power_levels", content)
    async with view.client() as client:
        await send_pdus(view, client, [pdu])
        assert await view.status(event_id) in (None, EventStatus.REJECTED), event_id
        await assert_target_still_serves(view, client, f"power levels {content}")
        await assert_peer_still_accepted(view, client, f"power levels {content}")


@pytest.mark.parametrize(
    "content",
    [
        {"membership": "join", "displayname": 5, "avatar_url": {}},
        {"membership": "join", "displayname": "x" * 60_000},
        {"membership": "join", "displayname": None, "avatar_url": ["mxc://a/b"]},
        {"membership": 5},
        {"membership": "join", "join_authorised_via_users_server": 5},
    ],
    ids=["displayname-int", "displayname-60k", "nulls", "membership-int", "authorised-via-int"],
)
async def test_bobs_member_event_with_fields_of_the_wrong_type_keeps_members_and_directory_serving(
    peering: Peering, client: httpx.AsyncClient, content: dict[str, Any]
):
    pdu, event_id = await bobs_state(peering, "m.room.member", content, peering.world.bob_id)
    results = await send_pdus(peering, client, [pdu])
    assert event_id in results, results
    directory = ok(
        await peering.alice(client).post("/user_directory/search", {"search_term": "bob"})
    )
    for user in directory["results"]:
        assert isinstance(user.get("display_name", ""), str | None), user
    # and bob is joined again, for what follows
    await send_pdus(
        peering,
        client,
        [
            (
                await bobs_state(
                    peering, "m.room.member", {"membership": "join"}, peering.world.bob_id
                )
            )[0]
        ],
    )


async def test_a_redaction_of_garbage_is_dropped_or_rejected(peering, client):
    template = await peering.template("m.room.redaction", {})
    for redacts in (5, None, "not an id", f"$event:{NOBODY}"):
        pdu = {**template, "redacts": redacts, "origin": peering.world.peer}
        signed, _ = sign_as_peer(peering, pdu)
        await send_pdus(peering, client, [signed])
    ok(await peering.alice(client).messages(peering.world.room_id, limit=10))


# ---- EDUs with garbage content are ignored


def edu(edu_type: str, content: Any) -> dict[str, Any]:
    return {"edu_type": edu_type, "content": content}


GARBAGE_CONTENTS = [5, "x", None, [], {}, {"a": {"b": [None]}}, ["x" * 70_000]]


async def send_edus(peering: Peering, client: httpx.AsyncClient, edus: list[Any]) -> None:
    assert await send_pdus(peering, client, [], edus) == {}


async def sync_since(peering: Peering, client: httpx.AsyncClient) -> dict[str, Any]:
    return ok(await peering.alice(client).get("/sync", timeout=0, since=peering.world.since))


def changed_templates(peering: Peering, edu_type: str, changes: list[tuple]) -> list[Any]:
    content = edu_templates(peering.world)[edu_type]
    return [edu(edu_type, changed(content, path, value)) for path, value in changes]


async def test_a_typing_edu_with_garbage_content_is_ignored(peering, client):
    bob = peering.world.bob_id
    edus = [edu("m.typing", content) for content in GARBAGE_CONTENTS]
    edus += changed_templates(
        peering,
        "m.typing",
        [
            (("typing",), "yes"),
            (("typing",), 1),
            (("user_id",), f"@mallory:{NOBODY}"),
            (("user_id",), 5),
            (("room_id",), 5),
            (("room_id",), f"!nope:{NOBODY}"),
            (("room_id",), peering.world.lonely_room_id),
        ],
    )
    await send_edus(peering, client, edus)
    room = (await sync_since(peering, client))["rooms"]["join"].get(peering.world.room_id, {})
    for event in room.get("ephemeral", {}).get("events", []):
        if event["type"] == "m.typing":
            assert bob not in event["content"]["user_ids"], event


async def test_a_receipt_edu_with_garbage_is_ignored_and_sync_still_serves(peering, client):
    world = peering.world
    receipt = (world.room_id, "m.read", world.bob_id)
    edus = [edu("m.receipt", content) for content in GARBAGE_CONTENTS]
    edus += changed_templates(
        peering,
        "m.receipt",
        [
            ((*receipt, "event_ids"), []),
            ((*receipt, "event_ids"), [5]),
            ((*receipt, "event_ids"), ["$nope:" + NOBODY]),
            ((*receipt, "event_ids"), ["x" * 20_000]),
            ((*receipt, "data"), 5),
            ((*receipt, "data", "ts"), "now"),
            ((*receipt, "data", "ts"), -1),
            ((*receipt, "data", "ts"), 2**53),
            ((*receipt, "data", "thread_id"), 5),
            ((*receipt, "data", "thread_id"), "x" * 5000),
            ((world.room_id, "m.read", f"@mallory:{NOBODY}"), {"event_ids": [world.message_id]}),
            ((world.room_id, "m.read", "not a user"), {}),
            ((world.room_id,), "x"),
            ((f"!nope:{NOBODY}",), {"m.read": {}}),
        ],
    )
    await send_edus(peering, client, edus)
    await sync_since(peering, client)


async def test_a_presence_edu_with_fields_of_the_wrong_type_never_reaches_sync(peering, client):
    bob = peering.world.bob_id
    push = ("push", "0")
    edus = [edu("m.presence", content) for content in GARBAGE_CONTENTS]
    edus += changed_templates(
        peering,
        "m.presence",
        [
            (("push",), "x"),
            (("push",), [5]),
            ((*push, "user_id"), f"@mallory:{NOBODY}"),
            ((*push, "presence"), 5),
            ((*push, "presence"), "dancing"),
        ],
    )
    await send_edus(peering, client, edus)
    odd = changed_templates(
        peering,
        "m.presence",
        [
            ((*push, "last_active_ago"), "long ago"),
            ((*push, "last_active_ago"), -5),
            ((*push, "currently_active"), "yes"),
            ((*push, "status_msg"), {"a": 1}),
            ((*push, "status_msg"), "x" * 60_000),
        ],
    )
    await send_edus(peering, client, odd)
    for event in (await sync_since(peering, client)).get("presence", {}).get("events", []):
        if event["sender"] == bob:
            content = event["content"]
            assert content["presence"] in ("online", "offline", "unavailable"), content
            assert isinstance(content.get("last_active_ago", 0), int), content
            assert isinstance(content.get("currently_active", False), bool), content
            assert isinstance(content.get("status_msg", ""), str), content


async def test_a_to_device_edu_with_garbage_is_ignored(peering, client):
    world = peering.world
    edus = [edu("m.direct_to_device", content) for content in GARBAGE_CONTENTS]
    edus += changed_templates(
        peering,
        "m.direct_to_device",
        [
            (("sender",), f"@mallory:{NOBODY}"),
            (("type",), 5),
            (("message_id",), None),
            (("messages",), "x"),
            (("messages", world.alice_id), "x"),
            (("messages", world.alice_id, "*"), "x"),
            (("messages", world.alice_id, world.alice_device), [1]),
            (("messages", "not a user"), {"*": {}}),
            (("messages", f"@nobody:{world.target}"), {"*": {}}),
        ],
    )
    await send_edus(peering, client, edus)
    for message in (await sync_since(peering, client)).get("to_device", {}).get("events", []):
        assert isinstance(message["content"], dict), message
        assert message["sender"] == world.bob_id, message


async def test_a_device_list_update_with_garbage_keeps_keys_query_serving(peering, client):
    edus = [edu("m.device_list_update", content) for content in GARBAGE_CONTENTS]
    edus += changed_templates(
        peering,
        "m.device_list_update",
        [
            (("user_id",), f"@mallory:{NOBODY}"),
            (("user_id",), 5),
            (("device_id",), 5),
            (("device_id",), "x" * 5000),
            (("stream_id",), "7"),
            (("stream_id",), -1),
            (("prev_id",), "6"),
            (("prev_id",), [None, "x"]),
            (("deleted",), "yes"),
            (("device_display_name",), {}),
            (("keys",), "x"),
            (("keys", "keys"), [1]),
            (("keys", "algorithms"), "x"),
            (("keys", "signatures"), 5),
            (("keys", "user_id"), peering.world.alice_id),
            (("keys", "device_id"), "OTHER"),
        ],
    )
    await send_edus(peering, client, edus)
    answer = ok(
        await peering.alice(client).post(
            "/keys/query", {"device_keys": {peering.world.bob_id: []}, "timeout": 2000}
        )
    )
    for device in answer["device_keys"].get(peering.world.bob_id, {}).values():
        assert isinstance(device.get("keys"), dict), device
        assert device["user_id"] == peering.world.bob_id, device


async def test_a_signing_key_update_with_garbage_keeps_keys_query_serving(peering, client):
    edus = [edu("m.signing_key_update", content) for content in GARBAGE_CONTENTS]
    edus += changed_templates(
        peering,
        "m.signing_key_update",
        [
            (("user_id",), f"@mallory:{NOBODY}"),
            (("master_key",), "x"),
            (("master_key", "keys"), [1]),
            (("master_key", "usage"), "master"),
            (("master_key", "user_id"), peering.world.alice_id),
            (("self_signing_key",), 5),
            (("self_signing_key", "keys"), {"ed25519:x": 5}),
        ],
    )
    await send_edus(peering, client, edus)
    ok(
        await peering.alice(client).post(
            "/keys/query", {"device_keys": {peering.world.bob_id: []}, "timeout": 2000}
        )
    )


async def test_edus_of_unknown_types_or_not_objects_are_ignored(peering, client):
    await send_edus(
        peering,
        client,
        [
            edu("org.example.unknown", {"x": 1}),
            edu(5, {}),
            edu(None, None),
            edu("m.typing", "x"),
            {"content": {}},
            5,
            "edu",
            None,
        ],
    )


# ---- the other routes


async def test_get_missing_events_with_ids_of_the_wrong_type_is_400(peering, client):
    path = f"/_matrix/federation/v1/get_missing_events/{path_part(peering.world.room_id)}"
    for body in (
        {"earliest_events": "x", "latest_events": []},
        {"earliest_events": [], "latest_events": [5]},
        {"earliest_events": [], "latest_events": [], "limit": "10"},
        {"earliest_events": [], "latest_events": [], "limit": -1},
        {"earliest_events": [], "latest_events": [], "min_depth": 1.5},
    ):
        response = await peering.signed_request(client, "POST", path, json.dumps(body))
        assert_error(response, 400, "M_BAD_JSON", "M_INVALID_PARAM")


async def test_get_missing_events_with_a_huge_limit_answers_a_bounded_list(peering, client):
    world = peering.world
    path = f"/_matrix/federation/v1/get_missing_events/{path_part(world.room_id)}"
    body = {"earliest_events": [], "latest_events": [world.message_id], "limit": 2**53 - 1}
    response = await peering.signed_request(client, "POST", path, json.dumps(body))
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["events"]) <= 100


@pytest.mark.parametrize(
    "body",
    [
        {"server_keys": []},
        {"server_keys": {"{target}": []}},
        {"server_keys": {"{target}": {"ed25519:x": 5}}},
        {"server_keys": {"{target}": {"ed25519:x": {"minimum_valid_until_ts": "soon"}}}},
        {"server_keys": {"not a server!": {}}},
    ],
    ids=["list", "keys-list", "criteria-int", "ts-string", "bad-name"],
)
async def test_a_key_query_of_the_wrong_shape_is_400(peering, client, body):
    text = json.dumps(body).replace("{target}", peering.world.target)
    response = await peering.signed_request(client, "POST", "/_matrix/key/v2/query", text)
    assert_error(response, 400, "M_BAD_JSON", "M_INVALID_PARAM")


@pytest.mark.parametrize(
    "event_id",
    ["$nope", f"$nope:{NOBODY}", "not an id", "%ED%A0%80", FIVE_THOUSAND_DIGITS],
    ids=["unknown", "of-another-server", "malformed", "lone-surrogate", "5000-digits"],
)
async def test_event_and_state_with_an_id_that_is_not_an_event_here_are_4xx(
    peering, client, event_id: str
):
    world = peering.world
    encoded = event_id if event_id.startswith("%") else path_part(event_id)
    for path in (
        f"/_matrix/federation/v1/event/{encoded}",
        f"/_matrix/federation/v1/state/{path_part(world.room_id)}?event_id={encoded}",
        f"/_matrix/federation/v1/state_ids/{path_part(world.room_id)}?event_id={encoded}",
    ):
        response = await peering.signed_request(client, "GET", path)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert response.json()["errcode"].startswith("M_"), response.text


async def test_make_join_for_a_user_of_another_server_is_refused(peering, client):
    world = peering.world
    for user_id in (f"@mallory:{NOBODY}", world.alice_id, "not a user"):
        path = (
            f"/_matrix/federation/v1/make_join/{path_part(world.room_id)}/{path_part(user_id)}"
            "?ver=10"
        )
        response = await peering.signed_request(client, "GET", path)
        skip_unless_served(response, "make_join")
        assert response.status_code in (400, 403), (user_id, response.text[:300])


async def test_send_join_with_a_garbage_event_is_400(peering, client):
    world = peering.world
    template = await peering.template(
        "m.room.member", {"membership": "join"}, f"@carol:{world.peer}", f"@carol:{world.peer}"
    )
    for pdu in (
        changed(template, ("content", "membership"), 5),
        changed(template, ("state_key",), world.alice_id),
        changed(template, ("room_id",), world.lonely_room_id),
        changed(template, ("type",), "m.room.message"),
    ):
        signed, event_id = sign_as_peer(peering, {**pdu, "origin": world.peer})
        path = f"/_matrix/federation/v2/send_join/{path_part(world.room_id)}/{path_part(event_id)}"
        response = await peering.signed_request(client, "PUT", path, json.dumps(signed))
        skip_unless_served(response, "send_join")
        assert 400 <= response.status_code < 500, (pdu, response.status_code, response.text[:300])


async def test_an_invite_with_garbage_invite_room_state_is_400_or_taken_without_it(peering, client):
    world = peering.world
    for invite_room_state in ("x", [5], [{"type": 5}], [None]):
        template = await peering.template("m.room.member", {"membership": "invite"}, world.carla_id)
        signed, event_id = sign_as_peer(peering, {**template, "origin": world.peer})
        path = f"/_matrix/federation/v2/invite/{path_part(world.room_id)}/{path_part(event_id)}"
        body = {"room_version": "10", "event": signed, "invite_room_state": invite_room_state}
        response = await peering.signed_request(client, "PUT", path, json.dumps(body))
        skip_unless_served(response, "invite")
        assert response.status_code < 500, response.text[:300]
    carla = User(world.carla_id, "", world.carla_token, client, world.target)
    ok(await carla.get("/sync", timeout=0))


async def test_a_transaction_larger_than_max_request_size_is_413_before_its_body_is_read(
    peering: Peering,
):
    """The answer comes as soon as the head says how long the body is: 413 `M_TOO_LARGE`,
    and the connection closes (the rest of the body is never read)."""
    world = peering.world
    host, port = world.target.rsplit(":", 1)
    path = SEND.format(txn_id())
    authorization = sign_request(
        "PUT", path, world.peer, world.target, None, peering.b.globals.signing_key
    )
    length = peering.target.config.max_request_size + 1
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {world.target}\r\nAuthorization: {authorization}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    stream = await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=peering.tls)
    await stream.send_all(head.encode() + b'{"pdus": [')
    received = b""
    with contextlib.suppress(trio.BrokenResourceError):  # closed without TLS close_notify
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = await stream.receive_some()
            if not chunk:
                break
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), received[:300]
    assert b"connection: close" in rest.lower(), received[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["errcode"] == "M_TOO_LARGE"


async def test_after_every_example_bobs_own_messages_still_reach_alice(peering: Peering):
    """Last of the module: B's real outbox, on B's copy of each room, is still heard."""
    for view in (peering, peering.v12):
        await assert_peer_users_still_heard(view, "every example of the module")
