"""Receiving PDUs from another server: `/send`, the inbound queue, and the checks on receipt.

Spec: `content/server-server-api.md` § Transactions (at most 50 PDUs and 100
EDUs; the `pdus` answer of `transactions.yaml`), § Checks performed on
receipt of a PDU (format, signatures, hash → redacted, auth against the auth
events, the state before, the current state), § Rejection, § Soft failure,
§ Room State Resolution, § Backfilling and retrieving missing events
(`/get_missing_events`), § Retrieving events (`/state_ids`, `/event`);
DESIGN.md "Data flow: an event from another server" (a transaction is
answered once its PDUs are in a durable queue).

Two of our servers over TLS on loopback. Server A has the room; B's user
joins it by a join event that B signs and pushes to A's `/send`, then B
builds its copy from A's `/state` at that join (`persist_with_state`, what a
join's `send_join` answer goes through). From then on the test pushes
exactly the PDUs it wants B to get, signed by A's real key through A's
federation client: the servers' own outboxes are switched off so nothing
else arrives.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import signal
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import tomlkit
import trio

from matrix_conduit.core.events import compute_event_id, sign_event_with_id
from matrix_conduit.core.room_versions import RoomVersion, get_room_version
from matrix_conduit.service import Services
from matrix_conduit.service.federation.errors import RemoteError
from matrix_conduit.service.federation.event_fetcher import PULL_BACKOFF_MIN_MS, EventFetcher
from matrix_conduit.service.federation.received import wire_pdu
from matrix_conduit.service.rooms.event_context import EventStatus
from tests.support.federation import FederatingServer, restart, start_federating
from tests.support.matrix import User, ok, register
from tests.support.process import child_environment

SEND = "/_matrix/federation/v1/send/{}"
_txn_ids = itertools.count()


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until `condition` holds; a hang becomes a failure, never a timing assertion."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)


def services(server: FederatingServer) -> Services:
    return server.server.services


def quiet(server: FederatingServer) -> None:
    """No follow-up work from persisting (outbox, push): the test alone decides what B gets."""
    services(server).rooms.timeline.appending.clear()


@dataclass
class SharedRoom:
    room_id: str
    room_version: RoomVersion
    alice: User
    """On A, the room's creator."""
    bob: User
    """On B, joined through A."""


def sign_as(server: FederatingServer, template: dict[str, Any], room_version: RoomVersion) -> dict:
    """The template as `server` sends it: its origin, hashed and signed by its real key."""
    event = dict(template)
    if "origin" in event:
        event["origin"] = server.name
    if room_version.event_id_in_event:  # rooms v1-v2: the id names the server that made it
        event["event_id"] = f"${secrets.token_urlsafe(18)}:{server.name}"
    signed, _ = sign_event_with_id(
        event, server.name, services(server).globals.signing_key, room_version
    )
    return signed


async def push(
    sender: FederatingServer, receiver: FederatingServer, pdus: list[Any], txn_id: str | None = None
) -> dict[str, Any]:
    """`PUT /send` from `sender` to `receiver` (signed by `sender`); the answer."""
    txn_id = txn_id or f"txn{next(_txn_ids)}"
    body = {"origin": sender.name, "origin_server_ts": 0, "pdus": pdus, "edus": []}
    return await sender.federation.client.request(
        receiver.name, "PUT", SEND.format(txn_id), body=body
    )


def status(server: FederatingServer, event_id: str) -> EventStatus | None:
    return services(server).rooms.timeline.status(event_id)


async def shared_room(
    a: FederatingServer,
    b: FederatingServer,
    room_version: str = "10",
    before_join: Callable[[User, str], Awaitable[None]] | None = None,
    **create: Any,
) -> SharedRoom:
    """A public room of alice's on A that bob of B joins; `before_join(alice, room_id)`
    runs before the join, `create` goes into `/createRoom`."""
    version = get_room_version(room_version)
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version=room_version, **create)
    if before_join is not None:
        await before_join(alice, room_id)
    template = services(a).rooms.builder.template(
        room_id, bob.user_id, "m.room.member", {"membership": "join"}, bob.user_id
    )
    join = sign_as(b, template, version)
    join_id = compute_event_id(join, version)

    assert await push(b, a, [join]) == {"pdus": {join_id: {}}}
    await wait_until(lambda: status(a, join_id) is EventStatus.TIMELINE)
    state = await b.federation.client.request(
        a.name,
        "GET",
        f"/_matrix/federation/v1/state/{quote(room_id, safe='')}",
        query={"event_id": join_id},
    )
    _, joined = await services(b).inbound.events.persist_with_state(
        a.name, version, join, state["pdus"], state["auth_chain"]
    )
    assert joined is EventStatus.TIMELINE
    return SharedRoom(room_id, version, alice, bob)


def pdu_of(server: FederatingServer, event_id: str, room_version: RoomVersion) -> dict[str, Any]:
    return wire_pdu(services(server).rooms.timeline.get_event(event_id), room_version)


async def synced_ids(user: User, room_id: str) -> list[str]:
    """The event ids of the room's timeline in the user's initial `/sync`."""
    room = ok(await user.get("/sync"))["rooms"]["join"][room_id]
    return [event["event_id"] for event in room["timeline"]["events"]]


async def message_ids(user: User, room_id: str) -> list[str]:
    return [event["event_id"] for event in await user.timeline(room_id)]


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    quiet(a)
    quiet(b)
    return a, b


# ---- the happy path


@pytest.mark.parametrize("room_version", ["1", "3", "10", "12"])
async def test_a_message_pushed_by_the_rooms_server_reaches_the_local_users_sync(
    pair, room_version
):
    """Every event format: v1 ids in the event, v3 standard base64, v4+ URL-safe, v12 room
    ids that are the create event's."""
    a, b = pair
    room = await shared_room(a, b, room_version)
    event_id = await room.alice.send(room.room_id, "hello bob")

    answer = await push(a, b, [pdu_of(a, event_id, room.room_version)])

    assert answer == {"pdus": {event_id: {}}}
    await wait_until(lambda: status(b, event_id) is EventStatus.TIMELINE)
    assert event_id in await synced_ids(room.bob, room.room_id)
    assert (await room.bob.timeline(room.room_id))[-1]["content"]["body"] == "hello bob"
    assert services(b).rooms.timeline.forward_extremities(room.room_id) == [event_id]


async def test_the_joiners_copy_of_the_room_has_the_rooms_state(pair):
    a, b = pair
    room = await shared_room(a, b)

    assert services(b).rooms.state.current_state_ids(room.room_id) == (
        services(a).rooms.state.current_state_ids(room.room_id)
    )
    assert services(b).rooms.state_cache.is_joined(room.bob.user_id, room.room_id)
    assert room.room_id in await room.bob.joined_rooms()


# ---- transactions


async def test_a_repeated_transaction_id_gets_the_first_answer_and_is_not_processed_again(pair):
    a, b = pair
    room = await shared_room(a, b)
    first = await room.alice.send(room.room_id, "first")
    second = await room.alice.send(room.room_id, "second")
    answer = await push(a, b, [pdu_of(a, first, room.room_version)], txn_id="same")
    await wait_until(lambda: status(b, first) is EventStatus.TIMELINE)

    repeated = await push(a, b, [pdu_of(a, second, room.room_version)], txn_id="same")

    assert repeated == answer == {"pdus": {first: {}}}
    marker = await room.alice.send(room.room_id, "marker")
    await push(a, b, [pdu_of(a, marker, room.room_version)])
    await wait_until(lambda: status(b, marker) is EventStatus.TIMELINE)
    # The marker's prev event was fetched with get_missing_events, not taken from "same".
    assert status(b, second) is EventStatus.TIMELINE
    assert await message_ids(room.bob, room.room_id) == [
        *(await message_ids(room.bob, room.room_id))[:-3],
        first,
        second,
        marker,
    ]


@pytest.mark.parametrize(("pdus", "edus"), [(51, 0), (0, 101)])
async def test_a_transaction_over_50_pdus_or_100_edus_is_refused_with_400(pair, pdus, edus):
    a, b = pair
    body = {
        "origin": a.name,
        "origin_server_ts": 0,
        "pdus": [{"type": "m.room.message"}] * pdus,
        "edus": [{"edu_type": "m.typing", "content": {}}] * edus,
    }

    with pytest.raises(RemoteError) as refused:
        await a.federation.client.request(b.name, "PUT", SEND.format("big"), body=body)

    assert refused.value.status == 400
    assert services(b).inbound.queue.answer(a.name, "big") is None


async def test_edus_go_to_the_edu_dispatcher_and_unknown_types_are_ignored(pair, monkeypatch):
    a, b = pair
    handled: list[tuple[str, str, dict]] = []

    async def record(origin: str, edu_type: str, content: dict) -> None:
        handled.append((origin, edu_type, content))

    monkeypatch.setattr(services(b).inbound.transactions, "handle_edu", record)
    body = {
        "origin": a.name,
        "origin_server_ts": 0,
        "pdus": [],
        "edus": [{"edu_type": "org.example.custom", "content": {"n": 1}}, "not an edu"],
    }

    answer = await a.federation.client.request(b.name, "PUT", SEND.format("edus"), body=body)

    assert answer == {"pdus": {}}
    assert handled == [(a.name, "org.example.custom", {"n": 1})]


# ---- checks on receipt


async def test_an_event_with_a_bad_signature_is_dropped_with_an_error(pair):
    a, b = pair
    room = await shared_room(a, b)
    event_id = await room.alice.send(room.room_id, "forged")
    pdu = pdu_of(a, event_id, room.room_version)
    signatures = pdu["signatures"][a.name]
    key_id = next(iter(signatures))
    other = sign_as(a, {**pdu, "origin_server_ts": pdu["origin_server_ts"] + 1}, room.room_version)
    pdu["signatures"] = {a.name: {key_id: other["signatures"][a.name][key_id]}}

    answer = await push(a, b, [pdu])

    assert "signatures do not hold" in answer["pdus"][event_id]["error"]
    assert status(b, event_id) is None
    assert event_id not in await synced_ids(room.bob, room.room_id)


async def test_an_event_whose_content_hash_does_not_match_is_stored_redacted(pair):
    a, b = pair
    room = await shared_room(a, b)
    event_id = await room.alice.send(room.room_id, "the real text")
    pdu = pdu_of(a, event_id, room.room_version)
    pdu["content"] = {"msgtype": "m.text", "body": "tampered on the way"}

    assert await push(a, b, [pdu]) == {"pdus": {event_id: {}}}

    await wait_until(lambda: status(b, event_id) is EventStatus.TIMELINE)
    assert services(b).rooms.timeline.get_event(event_id)["content"] == {}
    seen = {event["event_id"]: event for event in await room.bob.timeline(room.room_id)}
    assert seen[event_id]["content"] == {}


async def assert_kept_out_of_sight(a, b, room, pdu: dict, expected: EventStatus) -> None:
    """`pdu` pushed from a to b is accepted into b's inbound queue, stored with `expected`
    status, and reaches neither /sync nor /messages nor the forward extremities."""
    event_id = compute_event_id(pdu, room.room_version)
    extremities = services(b).rooms.timeline.forward_extremities(room.room_id)

    assert await push(a, b, [pdu]) == {"pdus": {event_id: {}}}

    await wait_until(lambda: status(b, event_id) is not None)
    assert status(b, event_id) is expected
    assert event_id not in await synced_ids(room.bob, room.room_id)
    assert event_id not in await message_ids(room.bob, room.room_id)
    assert services(b).rooms.timeline.forward_extremities(room.room_id) == extremities


async def test_an_event_failing_the_auth_rules_is_rejected_and_never_shown_to_clients(pair):
    a, b = pair
    room = await shared_room(a, b)
    mallory = f"@mallory:{a.name}"  # never joined
    template = services(a).rooms.builder.template(
        room.room_id, mallory, "m.room.message", {"msgtype": "m.text", "body": "let me in"}
    )
    pdu = sign_as(a, template, room.room_version)
    await assert_kept_out_of_sight(a, b, room, pdu, EventStatus.REJECTED)


async def test_an_event_citing_a_rejected_event_replaces_the_extremity_behind_it(pair):
    """Spec § Rejection: later events may cite a rejected one; the extremity the rejected
    event cited is then behind the new event, not left dangling beside it."""
    a, b = pair
    room = await shared_room(a, b)
    builder = services(a).rooms.builder
    mallory = f"@mallory:{a.name}"
    rejected = sign_as(
        a,
        builder.template(room.room_id, mallory, "m.room.message", {"body": "no"}),
        room.room_version,
    )
    rejected_id = compute_event_id(rejected, room.room_version)
    template = builder.template(room.room_id, room.alice.user_id, "m.room.message", {"body": "ok"})
    template["prev_events"] = [rejected_id]
    child = sign_as(a, template, room.room_version)
    child_id = compute_event_id(child, room.room_version)

    await push(a, b, [rejected, child])

    await wait_until(lambda: status(b, child_id) is EventStatus.TIMELINE)
    assert status(b, rejected_id) is EventStatus.REJECTED
    assert services(b).rooms.timeline.forward_extremities(room.room_id) == [child_id]
    assert (await message_ids(room.bob, room.room_id))[-1] == child_id


async def test_an_event_allowed_by_its_state_but_not_by_the_current_state_is_soft_failed(pair):
    """The spec's example (§ Soft failure): a banned user's event citing the room before the ban."""
    a, b = pair
    room = await shared_room(a, b)
    rooms_a = services(a).rooms
    carol = f"@carol:{a.name}"
    join = await rooms_a.builder.send(
        room.room_id, carol, "m.room.member", {"membership": "join"}, carol
    )
    ban = await rooms_a.builder.send(
        room.room_id, room.alice.user_id, "m.room.member", {"membership": "ban"}, carol
    )
    await push(a, b, [pdu_of(a, join, room.room_version), pdu_of(a, ban, room.room_version)])
    await wait_until(lambda: status(b, ban) is EventStatus.TIMELINE)
    state_at_join = services(b).rooms.state.state_after_event(join)
    template = rooms_a.builder.template(
        room.room_id, carol, "m.room.message", {"msgtype": "m.text", "body": "evading the ban"}
    )
    template["prev_events"] = [join]
    template["auth_events"] = [
        state_at_join[key]
        for key in (("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", carol))
    ]
    pdu = sign_as(a, template, room.room_version)
    await assert_kept_out_of_sight(a, b, room, pdu, EventStatus.SOFT_FAILED)


async def test_a_pdu_from_a_server_the_rooms_acl_denies_is_ignored_with_an_error(pair):
    a, b = pair
    room = await shared_room(a, b)
    host = a.name.rpartition(":")[0]
    acl = await services(a).rooms.builder.send(
        room.room_id, room.alice.user_id, "m.room.server_acl", {"allow": ["*"], "deny": [host]}, ""
    )
    await push(a, b, [pdu_of(a, acl, room.room_version)])
    await wait_until(lambda: status(b, acl) is EventStatus.TIMELINE)
    denied = await room.alice.send(room.room_id, "after the ACL")

    answer = await push(a, b, [pdu_of(a, denied, room.room_version)])

    assert "server ACL" in answer["pdus"][denied]["error"]
    assert status(b, denied) is None


async def test_typing_and_receipts_for_a_room_whose_acl_denies_the_origin_are_ignored(
    pair, monkeypatch
):
    a, b = pair
    room = await shared_room(a, b)
    alice = room.alice.user_id
    other = await room.bob.create_room(preset="public_chat")  # B's room, no ACL
    host = a.name.rpartition(":")[0]
    acl = await services(a).rooms.builder.send(
        room.room_id, alice, "m.room.server_acl", {"allow": ["*"], "deny": [host]}, ""
    )
    await push(a, b, [pdu_of(a, acl, room.room_version)])
    await wait_until(lambda: status(b, acl) is EventStatus.TIMELINE)
    handled: list[tuple[str, dict]] = []

    async def record(origin: str, edu_type: str, content: dict) -> None:
        handled.append((edu_type, content))

    monkeypatch.setattr(services(b).inbound.transactions, "handle_edu", record)
    receipt = {"m.read": {alice: {"event_ids": [acl], "data": {"ts": 1}}}}
    edus = [
        {"edu_type": "m.typing", "content": {"room_id": room.room_id, "user_id": alice}},
        {"edu_type": "m.typing", "content": {"room_id": other, "user_id": alice}},
        {"edu_type": "m.receipt", "content": {room.room_id: receipt, other: receipt}},
    ]
    body = {"origin": a.name, "origin_server_ts": 0, "pdus": [], "edus": edus}

    await a.federation.client.request(b.name, "PUT", SEND.format("acl-edus"), body=body)

    assert handled == [
        ("m.typing", {"room_id": other, "user_id": alice}),
        ("m.receipt", {other: receipt}),
    ]


async def test_pdus_over_the_sanity_limits_or_for_unknown_rooms_are_dropped(pair):
    """Format (§ Checks on receipt, step 1): at most 20 prev_events and 10 auth_events; a
    room unknown here has no room version to check against, so the PDU is left out."""
    a, b = pair
    room = await shared_room(a, b)
    builder = services(a).rooms.builder
    template = builder.template(room.room_id, room.alice.user_id, "m.room.message", {"body": "x"})
    template["prev_events"] = template["prev_events"] * 21
    too_many_prevs = sign_as(a, template, room.room_version)
    event_id = compute_event_id(too_many_prevs, room.room_version)
    unknown = sign_as(a, {**template, "room_id": f"!unknown:{a.name}"}, room.room_version)

    answer = await push(a, b, [too_many_prevs, unknown])

    assert list(answer["pdus"]) == [event_id]
    assert "at most 20" in answer["pdus"][event_id]["error"]
    assert status(b, event_id) is None


async def test_an_auth_event_we_lack_is_fetched_and_stored_before_the_event(pair):
    a, b = pair
    room = await shared_room(a, b)
    rooms_a = services(a).rooms
    carol = f"@carol:{a.name}"
    join = await rooms_a.builder.send(
        room.room_id, carol, "m.room.member", {"membership": "join"}, carol
    )
    message = await rooms_a.builder.send(
        room.room_id, carol, "m.room.message", {"msgtype": "m.text", "body": "hi from carol"}
    )
    assert join in rooms_a.timeline.get_event(message)["auth_events"]

    await push(a, b, [pdu_of(a, message, room.room_version)])

    await wait_until(lambda: status(b, message) is EventStatus.TIMELINE)
    assert status(b, join) is EventStatus.TIMELINE
    assert services(b).rooms.state_cache.is_joined(carol, room.room_id)
    assert (await message_ids(room.bob, room.room_id))[-2:] == [join, message]


# ---- missing events and forks


async def test_a_missing_prev_event_is_fetched_with_get_missing_events(pair):
    a, b = pair
    room = await shared_room(a, b)
    earlier = await room.alice.send(room.room_id, "never pushed")
    later = await room.alice.send(room.room_id, "pushed")

    await push(a, b, [pdu_of(a, later, room.room_version)])

    await wait_until(lambda: status(b, later) is EventStatus.TIMELINE)
    assert status(b, earlier) is EventStatus.TIMELINE
    assert (await message_ids(room.bob, room.room_id))[-2:] == [earlier, later]
    assert services(b).rooms.timeline.forward_extremities(room.room_id) == [later]


async def test_a_gap_beyond_max_fetch_prev_events_is_filled_from_state_ids(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3", max_fetch_prev_events=1)
    quiet(a)
    quiet(b)
    room = await shared_room(a, b)
    topic = await services(a).rooms.builder.send(
        room.room_id, room.alice.user_id, "m.room.topic", {"topic": "set in the gap"}, ""
    )
    middle = await room.alice.send(room.room_id, "fetched")
    latest = await room.alice.send(room.room_id, "pushed")

    await push(a, b, [pdu_of(a, latest, room.room_version)])

    await wait_until(lambda: status(b, latest) is EventStatus.TIMELINE)
    assert status(b, middle) is EventStatus.TIMELINE
    # The topic is the gap: known with the state after it (from /state_ids), not in the timeline.
    assert status(b, topic) is EventStatus.OUTLIER
    assert services(b).rooms.timeline.state_content(room.room_id, "m.room.topic") == {
        "topic": "set in the gap"
    }
    assert (await message_ids(room.bob, room.room_id))[-2:] == [middle, latest]


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_forked_room_resolves_its_current_state_over_both_branches(pair, room_version):
    a, b = pair
    room = await shared_room(a, b, room_version)
    rooms_a = services(a).rooms
    (fork_point,) = rooms_a.timeline.forward_extremities(room.room_id)
    ts = rooms_a.timeline.get_event(fork_point)["origin_server_ts"]
    branches = []
    for topic, offset in (("later", 2000), ("earlier", 1000)):
        template = rooms_a.builder.template(
            room.room_id, room.alice.user_id, "m.room.topic", {"topic": topic}, ""
        )
        template.update(prev_events=[fork_point], origin_server_ts=ts + offset)
        branches.append(sign_as(a, template, room.room_version))
    later, earlier = (compute_event_id(pdu, room.room_version) for pdu in branches)

    assert await push(a, b, branches) == {"pdus": {later: {}, earlier: {}}}

    await wait_until(lambda: status(b, earlier) is EventStatus.TIMELINE)
    rooms_b = services(b).rooms
    assert set(rooms_b.timeline.forward_extremities(room.room_id)) == {later, earlier}
    # Equal power, so resolution orders the conflict by timestamp: the later topic wins.
    assert rooms_b.timeline.state_content(room.room_id, "m.room.topic") == {"topic": "later"}
    assert rooms_b.state.current_state_ids(room.room_id) == rooms_b.resolution.resolve(
        room.room_id, [later, earlier]
    )
    # The next event of B's user merges the branches.
    merged = await room.bob.send(room.room_id, "merging")
    assert set(rooms_b.timeline.get_event(merged)["prev_events"]) == {later, earlier}


async def test_an_event_a_server_could_not_give_is_not_asked_for_again_at_once(pair):
    a, b = pair
    room = await shared_room(a, b)
    builder = services(a).rooms.builder
    template = builder.template(room.room_id, room.alice.user_id, "m.room.message", {"body": "x"})
    _, event_id = sign_event_with_id(
        template, a.name, services(a).globals.signing_key, room.room_version
    )
    now = [1_000_000]
    fetcher = EventFetcher(b.federation.client, b.federation.key_ring, clock=lambda: now[0])

    async def fetch() -> dict | None:
        return await fetcher.event(a.name, room.room_id, event_id, room.room_version)

    assert await fetch() is None  # A does not have it yet
    async with services(a).rooms.locks.hold(room.room_id) as guard:
        assert builder.sign_and_append(guard, template) == event_id

    assert await fetch() is None  # backed off: not asked
    now[0] += PULL_BACKOFF_MIN_MS
    fetched = await fetch()
    assert fetched is not None and fetched["event_id"] == event_id


# ---- durability


async def test_an_event_queued_but_not_processed_before_a_restart_is_processed_after_it(
    nursery, pair
):
    a, b = pair
    room = await shared_room(a, b)
    event_id = await room.alice.send(room.room_id, "survives the restart")

    async with services(b).rooms.locks.hold(room.room_id):
        # B's worker waits for the room's lock: the event is received, not processed.
        assert await push(a, b, [pdu_of(a, event_id, room.room_version)]) == {
            "pdus": {event_id: {}}
        }
        assert status(b, event_id) is None
        await b.stop()

    b = await restart(nursery, b)
    quiet(b)

    await wait_until(lambda: status(b, event_id) is EventStatus.TIMELINE)
    assert services(b).inbound.queue.first(room.room_id) is None


def _child_config(b: FederatingServer) -> Path:
    """B's config as a `conduit.toml`, for running B as a `matrix-conduit` process."""
    config = b.config
    assert config.tls is not None
    values = {
        "server_name": config.server_name,
        "database_backend": config.database_backend,
        "database_path": config.database_path,
        "address": config.address,
        "port": config.port,
        "tls": {"certs": config.tls.certs, "key": config.tls.key},
        "allow_federation": True,
        "trusted_servers": [],
        "federation_ip_range_allowlist": ["127.0.0.0/8"],
        "log": "info",
    }
    path = b.directory / "conduit.toml"
    path.write_text(tomlkit.dumps({"global": values}))
    return path


async def _answering(url: str) -> bool:
    async with httpx.AsyncClient(verify=ssl.create_default_context(), timeout=1.0) as client:
        try:
            return (await client.get(url)).status_code == 200
        except httpx.TransportError:
            return False


async def test_a_kill_9_right_after_the_200_loses_nothing(nursery, pair):
    """The answer comes once the PDU is in the inbound queue; the killed server's next
    start handles it (here it also needs A's `/get_missing_events`, which the killed
    process most likely never got an answer to)."""
    a, b = pair
    room = await shared_room(a, b)
    earlier = await room.alice.send(room.room_id, "never pushed")
    later = await room.alice.send(room.room_id, "pushed, then B is killed")
    await b.stop()
    child = subprocess.Popen(
        [sys.executable, "-m", "matrix_conduit"],
        env={**child_environment({}), "CONDUIT_CONFIG": str(_child_config(b))},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        version_url = f"https://{b.name}/_matrix/federation/v1/version"
        with trio.fail_after(60):
            while not await _answering(version_url):
                assert child.poll() is None, "the server process exited"
                await trio.sleep(0.05)

        answer = await push(a, b, [pdu_of(a, later, room.room_version)])
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()

    assert answer == {"pdus": {later: {}}}
    b = await restart(nursery, b)
    quiet(b)
    await wait_until(lambda: status(b, later) is EventStatus.TIMELINE)
    assert status(b, earlier) is EventStatus.TIMELINE
    bob = dataclasses.replace(room.bob, http=b.client)
    assert (await message_ids(bob, room.room_id))[-2:] == [earlier, later]


# ---- what we serve


async def test_no_event_or_state_of_a_room_is_served_to_a_server_without_members_in_it(pair):
    a, b = pair
    alice = await register(a.server, "alice")
    room_id = await alice.create_room(preset="public_chat")
    (create_id,) = services(a).rooms.timeline.forward_extremities(room_id)[:1]

    with pytest.raises(RemoteError) as refused:
        await b.federation.client.request(
            a.name,
            "GET",
            f"/_matrix/federation/v1/state_ids/{quote(room_id, safe='')}",
            query={"event_id": create_id},
        )

    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
    with pytest.raises(RemoteError) as refused:
        await b.federation.client.request(
            a.name, "GET", f"/_matrix/federation/v1/event/{quote(create_id, safe='')}"
        )
    assert refused.value.status == 403


async def test_an_event_the_asking_server_may_not_see_is_served_redacted(pair):
    """History visibility `joined`: what was said before B's user joined is not B's to read."""
    a, b = pair
    said: list[str] = []

    async def say_secret(alice: User, room_id: str) -> None:
        said.append(await alice.send(room_id, "before bob"))

    visibility = {"history_visibility": "joined"}
    room = await shared_room(
        a,
        b,
        before_join=say_secret,
        initial_state=[{"type": "m.room.history_visibility", "content": visibility}],
    )
    after = await room.alice.send(room.room_id, "after bob joined")

    def fetch(event_id: str) -> Awaitable[Any]:
        path = f"/_matrix/federation/v1/event/{quote(event_id, safe='')}"
        return b.federation.client.request(a.name, "GET", path)

    (secret,) = (await fetch(said[0]))["pdus"]
    (visible,) = (await fetch(after))["pdus"]
    assert secret["content"] == {}
    assert compute_event_id(secret, room.room_version) == said[0]
    assert visible["content"]["body"] == "after bob joined"


async def test_get_missing_events_walks_back_from_latest_to_earliest_within_the_limit(pair):
    """Backfill § get_missing_events: a breadth-first walk of prev_events from
    `latest_events`, skipping `earliest_events`, at most `limit` events."""
    a, b = pair
    room = await shared_room(a, b)
    (earliest,) = services(a).rooms.timeline.forward_extremities(room.room_id)
    sent = [await room.alice.send(room.room_id, f"m{n}") for n in range(5)]
    path = f"/_matrix/federation/v1/get_missing_events/{quote(room.room_id, safe='')}"

    async def missing(limit: int) -> list[str]:
        body = {"earliest_events": [earliest], "latest_events": [sent[-1]], "limit": limit}
        answer = await b.federation.client.request(a.name, "POST", path, body=body)
        return [compute_event_id(pdu, room.room_version) for pdu in answer["events"]]

    assert await missing(2) == sent[2:4]
    assert await missing(10) == sent[:4]
