"""Room events over HTTP: send, transaction ids, fetch, paginate, context, redact, by time.

Spec: `content/client-server-api/_index.md`, "Sending events to a room",
"Transaction identifiers", "Getting events for a room", "Pagination",
"Redactions" and the OpenAPI of `room_send.yaml` (`PUT
/rooms/{roomId}/send/{eventType}/{txnId}`), `rooms.yaml` (`GET
/rooms/{roomId}/event/{eventId}`), `message_pagination.yaml` (`GET
/rooms/{roomId}/messages`: `dir`, `from`, `to`, `limit`, `filter`),
`event_context.yaml`, `redaction.yaml` (`PUT
/rooms/{roomId}/redact/{eventId}/{txnId}`) and
`room_event_by_timestamp.yaml`; redaction algorithms per room version in
`content/rooms/fragments/v*-redactions.md`.
"""

from __future__ import annotations

import json

import pytest

from matrix_conduit.core.redaction import redact
from matrix_conduit.core.room_versions import get_room_version
from tests.support.matrix import (
    CLIENT_V1,
    User,
    assert_error,
    bodies,
    new_device,
    ok,
    path_part,
    register,
    register_many,
    room_with_members,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()


async def get_event(user: User, room_id: str, event_id: str):
    return await user.get(f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}")


async def redact_event(user: User, room_id: str, event_id: str, txn_id: str, **body):
    return await user.put(
        f"/rooms/{path_part(room_id)}/redact/{path_part(event_id)}/{txn_id}", body
    )


async def context(user: User, room_id: str, event_id: str, **params):
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    return await user.get(f"/rooms/{path_part(room_id)}/context/{path_part(event_id)}", **params)


async def timestamp_to_event(user: User, room_id: str, ts: int, direction: str):
    return await user.request(
        "GET",
        f"/rooms/{path_part(room_id)}/timestamp_to_event",
        params={"ts": ts, "dir": direction},
        prefix=CLIENT_V1,
    )


async def room_with_messages(server: SharedServer, count: int) -> tuple[str, User, list[str]]:
    """A room of one user who sent messages "m0" … "m{count-1}"; their event ids."""
    alice = await register(server)
    room_id = await alice.create_room()
    event_ids = [await alice.send(room_id, f"m{index}") for index in range(count)]
    return room_id, alice, event_ids


# ---- sending


async def test_sent_message_is_stored_as_sent(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    content = {"msgtype": "m.text", "body": "hello", "format": "x", "nested": {"a": [1]}}
    event_id = ok(await alice.send_event(room_id, "m.room.message", content))["event_id"]
    event = ok(await get_event(alice, room_id, event_id))
    assert event["event_id"] == event_id
    assert event["room_id"] == room_id
    assert event["sender"] == alice.user_id
    assert event["type"] == "m.room.message"
    assert event["content"] == content
    assert isinstance(event["origin_server_ts"], int)
    assert "state_key" not in event


async def test_custom_event_types_can_be_sent(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    event_id = ok(await alice.send_event(room_id, "org.example.ping", {"n": 1}))["event_id"]
    assert ok(await get_event(alice, room_id, event_id))["type"] == "org.example.ping"


async def test_same_txn_id_from_the_same_device_sends_once(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    content = {"msgtype": "m.text", "body": "once"}
    first = ok(await alice.send_event(room_id, "m.room.message", content, txn_id="t1"))
    again = ok(await alice.send_event(room_id, "m.room.message", content, txn_id="t1"))
    assert first == again
    assert bodies(await alice.timeline(room_id)) == ["once"]


async def test_same_txn_id_from_another_device_is_another_event(server: SharedServer):
    alice = await register(server)
    phone = await new_device(server, alice)
    room_id = await alice.create_room()
    content = {"msgtype": "m.text", "body": "twice"}
    first = ok(await alice.send_event(room_id, "m.room.message", content, txn_id="t1"))
    second = ok(await phone.send_event(room_id, "m.room.message", content, txn_id="t1"))
    assert first["event_id"] != second["event_id"]
    assert bodies(await alice.timeline(room_id)) == ["twice", "twice"]


async def test_same_txn_id_from_another_user_is_another_event(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    content = {"msgtype": "m.text", "body": "hi"}
    first = ok(await alice.send_event(room_id, "m.room.message", content, txn_id="same"))
    second = ok(await bob.send_event(room_id, "m.room.message", content, txn_id="same"))
    assert first["event_id"] != second["event_id"]


async def test_transaction_id_is_shown_only_to_the_sending_device(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    phone = await new_device(server, alice)
    event_id = ok(await alice.send_event(room_id, "m.room.message", {"body": "x"}, txn_id="mine"))[
        "event_id"
    ]
    assert ok(await get_event(alice, room_id, event_id))["unsigned"]["transaction_id"] == "mine"
    for other in (phone, bob):
        served = ok(await get_event(other, room_id, event_id))
        assert "transaction_id" not in served.get("unsigned", {})


async def test_non_member_cannot_send(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    response = await bob.send_event(room_id, "m.room.message", {"body": "let me"})
    assert_error(response, 403, "M_FORBIDDEN")
    assert bodies(await alice.timeline(room_id)) == []


async def test_left_member_cannot_send(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await bob.leave(room_id)
    response = await bob.send_event(room_id, "m.room.message", {"body": "still here?"})
    assert_error(response, 403, "M_FORBIDDEN")
    assert bodies(await alice.timeline(room_id)) == []


async def test_member_below_events_default_cannot_send(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(
        server, 2, power_level_content_override={"events_default": 10}
    )
    response = await bob.send_event(room_id, "m.room.message", {"body": "muted"})
    assert_error(response, 403, "M_FORBIDDEN")
    await alice.send(room_id, "alice still can")


async def test_member_below_the_event_types_level_cannot_send_it(server: SharedServer):
    room_id, (_alice, bob) = await room_with_members(
        server, 2, power_level_content_override={"events": {"org.example.alert": 50}}
    )
    response = await bob.send_event(room_id, "org.example.alert", {})
    assert_error(response, 403, "M_FORBIDDEN")
    ok(await bob.send_event(room_id, "m.room.message", {"body": "this is fine"}))


async def test_sending_to_an_unknown_room_is_403(server: SharedServer):
    alice = await register(server)
    response = await alice.send_event("!nowhere:localhost", "m.room.message", {"body": "x"})
    assert_error(response, 403, "M_FORBIDDEN")


async def test_sending_a_body_that_is_not_an_object_is_400(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.put(f"/rooms/{path_part(room_id)}/send/m.room.message/t", [1, 2])
    assert_error(response, 400, "M_BAD_JSON")


async def test_oversized_event_is_rejected(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.send_event(room_id, "m.room.message", {"body": "x" * 70_000})
    assert response.status_code == 413
    assert bodies(await alice.timeline(room_id)) == []


# ---- GET /event


async def test_event_from_another_room_is_404_under_this_room(server: SharedServer):
    alice = await register(server)
    room_a = await alice.create_room()
    room_b = await alice.create_room()
    event_id = await alice.send(room_a, "in a")
    assert_error(await get_event(alice, room_b, event_id), 404, "M_NOT_FOUND")


async def test_unknown_event_is_404(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    assert_error(await get_event(alice, room_id, "$nope"), 404, "M_NOT_FOUND")


async def test_non_member_cannot_fetch_an_event_of_a_private_room(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room()
    event_id = await alice.send(room_id, "private")
    response = await get_event(bob, room_id, event_id)
    assert response.status_code in (403, 404)
    assert "private" not in response.text


async def test_event_ids_with_slashes_work_in_request_paths(server: SharedServer):
    """Room v3 event ids are standard base64: '/' and '+' occur, percent-encoded by clients."""
    alice = await register(server)
    room_id = await alice.create_room(room_version="3")
    for _ in range(40):
        event_id = await alice.send(room_id, "slashed")
        if "/" in event_id:
            break
    assert "/" in event_id
    assert ok(await get_event(alice, room_id, event_id))["event_id"] == event_id
    assert ok(await context(alice, room_id, event_id))["event"]["event_id"] == event_id
    ok(await redact_event(alice, room_id, event_id, "r1"))
    assert ok(await get_event(alice, room_id, event_id))["content"] == {}


# ---- /messages


async def test_messages_backwards_are_newest_first(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 5)
    page = ok(await alice.messages(room_id, dir="b", limit=3))
    assert bodies(page["chunk"]) == ["m4", "m3", "m2"]
    assert "start" in page and "end" in page


async def test_messages_forwards_start_at_the_rooms_creation(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 2)
    page = ok(await alice.messages(room_id, dir="f", limit=2))
    assert [event["type"] for event in page["chunk"]] == ["m.room.create", "m.room.member"]


async def test_paginating_backwards_with_end_tokens_visits_every_event_once(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 7)
    seen: list[str] = []
    token = None
    for _ in range(20):
        params = {"dir": "b", "limit": 3}
        if token is not None:
            params["from"] = token
        page = ok(await alice.messages(room_id, **params))
        if token is not None:
            assert page["start"] == token
        seen.extend(bodies(page["chunk"]))
        token = page.get("end")
        if token is None:
            break
    assert seen == [f"m{index}" for index in reversed(range(7))]


async def test_paginating_forwards_with_end_tokens_visits_every_event_once(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 5)
    events: list[dict] = []
    token = None
    while True:
        params = {"dir": "f", "limit": 4}
        if token is not None:
            params["from"] = token
        page = ok(await alice.messages(room_id, **params))
        events.extend(page["chunk"])
        token = page.get("end")
        if token is None or not page["chunk"]:
            break
    assert bodies(events) == [f"m{index}" for index in range(5)]
    assert len({event["event_id"] for event in events}) == len(events)


async def test_pagination_stops_at_the_to_token(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 6)
    first = ok(await alice.messages(room_id, dir="b", limit=2))  # m5, m4
    later = ok(await alice.messages(room_id, dir="b", limit=50, **{"from": first["end"]}))
    assert bodies(later["chunk"])[:2] == ["m3", "m2"]
    bounded = ok(
        await alice.messages(
            room_id, dir="b", limit=50, **{"from": first["start"]}, to=first["end"]
        )
    )
    assert bodies(bounded["chunk"]) == ["m5", "m4"]


async def test_messages_limit_defaults_to_ten(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 12)
    page = ok(await alice.get(f"/rooms/{path_part(room_id)}/messages", dir="b"))
    assert len(page["chunk"]) == 10


async def test_messages_take_the_filters_limit_when_the_query_gives_none(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 12)
    page = ok(await alice.messages(room_id, filter={"limit": 3}))
    assert len(page["chunk"]) == 3


async def test_messages_filter_by_type_and_sender(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await alice.send(room_id, "a1")
    await bob.send(room_id, "b1")
    ok(await alice.send_event(room_id, "org.example.other", {"body": "other"}))
    only_messages = ok(
        await alice.messages(room_id, limit=50, filter={"types": ["m.room.message"]})
    )
    assert {event["type"] for event in only_messages["chunk"]} == {"m.room.message"}
    from_bob = ok(
        await alice.messages(
            room_id, limit=50, filter={"senders": [bob.user_id], "types": ["m.room.*"]}
        )
    )
    assert [e["sender"] for e in from_bob["chunk"]] == [bob.user_id] * len(from_bob["chunk"])
    assert bodies(from_bob["chunk"]) == ["b1"]
    without_messages = ok(
        await alice.messages(room_id, limit=50, filter={"not_types": ["m.room.message"]})
    )
    assert bodies(without_messages["chunk"]) == []


async def test_messages_filter_contains_url(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    await alice.send(room_id, "plain")
    await alice.send(room_id, "picture", msgtype="m.image", url="mxc://localhost/pic")
    with_url = ok(await alice.messages(room_id, limit=50, filter={"contains_url": True}))
    assert bodies(with_url["chunk"]) == ["picture"]
    without_url = ok(
        await alice.messages(
            room_id, limit=50, filter={"contains_url": False, "types": ["m.room.message"]}
        )
    )
    assert bodies(without_url["chunk"]) == ["plain"]


@pytest.mark.parametrize(
    "params",
    [{"dir": "sideways"}, {"dir": "b", "from": "not-a-token"}, {"dir": "b", "limit": "ten"}],
    ids=["bad-dir", "bad-from", "bad-limit"],
)
async def test_messages_with_bad_parameters_is_400(server: SharedServer, params: dict):
    room_id, alice, _ = await room_with_messages(server, 1)
    response = await alice.get(f"/rooms/{path_part(room_id)}/messages", **params)
    assert response.status_code == 400


async def test_messages_with_a_malformed_filter_is_400(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 1)
    response = await alice.get(f"/rooms/{path_part(room_id)}/messages", dir="b", filter="{not json")
    assert response.status_code == 400


async def test_non_member_cannot_read_messages_of_a_private_room(server: SharedServer):
    room_id, _alice, _ = await room_with_messages(server, 2)
    mallory = await register(server)
    assert_error(await mallory.messages(room_id), 403, "M_FORBIDDEN")


# ---- /context


async def test_context_gives_events_around_the_event_and_the_state(server: SharedServer):
    room_id, alice, event_ids = await room_with_messages(server, 7)
    found = ok(await context(alice, room_id, event_ids[3], limit=4))
    assert found["event"]["event_id"] == event_ids[3]
    assert bodies(found["events_before"]) == ["m2", "m1"]  # newest first
    assert bodies(found["events_after"]) == ["m4", "m5"]
    state_types = {event["type"] for event in found["state"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels"} <= state_types
    assert isinstance(found["start"], str) and isinstance(found["end"], str)


async def test_context_tokens_continue_pagination(server: SharedServer):
    room_id, alice, event_ids = await room_with_messages(server, 7)
    found = ok(await context(alice, room_id, event_ids[3], limit=2))
    assert bodies(found["events_before"]) == ["m2"]
    assert bodies(found["events_after"]) == ["m4"]
    earlier = ok(await alice.messages(room_id, dir="b", limit=1, **{"from": found["start"]}))
    assert bodies(earlier["chunk"]) == ["m1"]
    later = ok(await alice.messages(room_id, dir="f", limit=1, **{"from": found["end"]}))
    assert bodies(later["chunk"]) == ["m5"]


async def test_context_applies_the_filter(server: SharedServer):
    room_id, alice, event_ids = await room_with_messages(server, 3)
    ok(await alice.send_event(room_id, "org.example.noise", {}))
    await alice.send(room_id, "m3")
    found = ok(
        await context(alice, room_id, event_ids[2], limit=10, filter={"types": ["m.room.message"]})
    )
    assert [event["type"] for event in found["events_after"]] == ["m.room.message"]


async def test_context_with_lazy_members_has_the_senders_members_and_the_state_then(
    server: SharedServer,
):
    alice, bob, carol = [await register(server) for _ in range(3)]
    room_id = await alice.create_room(preset="public_chat", name="before")
    for user in (bob, carol):
        await user.join(room_id)
    await alice.send(room_id, "m0")
    middle = await bob.send(room_id, "m1")
    await alice.send(room_id, "m2")
    await alice.set_state(room_id, "m.room.name", {"name": "after"})
    lazy = {"lazy_load_members": True, "types": ["m.room.message"]}
    found = ok(await context(alice, room_id, middle, limit=2, filter=lazy))
    assert bodies(found["events_before"]) == ["m0"] and bodies(found["events_after"]) == ["m2"]
    members = {e["state_key"] for e in found["state"] if e["type"] == "m.room.member"}
    assert members == {alice.user_id, bob.user_id}  # carol sent nothing shown
    names = [e["content"]["name"] for e in found["state"] if e["type"] == "m.room.name"]
    assert names == ["before"]  # the state at m2, not the current state
    assert {"m.room.create", "m.room.power_levels"} <= {e["type"] for e in found["state"]}


async def test_context_of_an_unknown_event_is_404(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 1)
    assert_error(await context(alice, room_id, "$missing"), 404, "M_NOT_FOUND")


async def test_non_member_gets_no_context_of_a_private_room(server: SharedServer):
    room_id, _alice, event_ids = await room_with_messages(server, 3)
    mallory = await register(server)
    response = await context(mallory, room_id, event_ids[1])
    assert response.status_code in (403, 404)
    assert "m1" not in response.text


# ---- redactions


async def test_redacted_message_is_served_redacted_to_everyone(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await alice.send(room_id, "oops, my password")
    redaction = ok(await redact_event(alice, room_id, event_id, "r1", reason="typo"))
    for viewer in (alice, bob):
        served = ok(await get_event(viewer, room_id, event_id))
        assert served["content"] == {}
        because = served["unsigned"]["redacted_because"]
        assert because["event_id"] == redaction["event_id"]
        assert because["content"]["reason"] == "typo"
        timeline = ok(await viewer.messages(room_id, limit=50))["chunk"]
        assert "oops, my password" not in json.dumps(timeline)
        found = ok(await context(viewer, room_id, event_id))
        assert found["event"]["content"] == {}


async def test_redaction_event_names_its_target(server: SharedServer):
    room_id, alice, event_ids = await room_with_messages(server, 1)
    redaction_id = ok(await redact_event(alice, room_id, event_ids[0], "r1"))["event_id"]
    redaction = ok(await get_event(alice, room_id, redaction_id))
    assert redaction["type"] == "m.room.redaction"
    assert event_ids[0] in (redaction.get("redacts"), redaction["content"].get("redacts"))


async def test_redaction_with_the_same_txn_id_is_sent_once(server: SharedServer):
    room_id, alice, event_ids = await room_with_messages(server, 1)
    first = ok(await redact_event(alice, room_id, event_ids[0], "same"))
    again = ok(await redact_event(alice, room_id, event_ids[0], "same"))
    assert first == again
    timeline = ok(await alice.messages(room_id, limit=50))["chunk"]
    assert [e["type"] for e in timeline].count("m.room.redaction") == 1


async def test_member_can_redact_their_own_message(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await bob.send(room_id, "regret")
    ok(await redact_event(bob, room_id, event_id, "r1"))
    assert ok(await get_event(alice, room_id, event_id))["content"] == {}


async def test_member_without_power_cannot_redact_others_messages(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await alice.send(room_id, "stays")
    assert_error(await redact_event(bob, room_id, event_id, "r1"), 403, "M_FORBIDDEN")
    served = ok(await get_event(bob, room_id, event_id))
    assert served["content"]["body"] == "stays"


async def test_moderator_can_redact_others_messages(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await bob.send(room_id, "spam")
    ok(await redact_event(alice, room_id, event_id, "r1"))
    assert ok(await get_event(bob, room_id, event_id))["content"] == {}


@pytest.mark.parametrize(
    ("version", "event_type", "content", "kept"),
    [
        (
            "7",
            "m.room.join_rules",
            {"join_rule": "invite", "allow": [{"type": "m.room_membership", "room_id": "!x:y"}]},
            {"join_rule"},
        ),
        (
            "8",
            "m.room.join_rules",
            {"join_rule": "invite", "allow": [{"type": "m.room_membership", "room_id": "!x:y"}]},
            {"join_rule", "allow"},
        ),
        ("10", "m.room.history_visibility", {"history_visibility": "shared", "x": 1}, None),
        ("1", "org.example.state", {"anything": 1}, set()),
    ],
    ids=["v7-join-rules", "v8-join-rules-keep-allow", "v10-history-visibility", "v1-custom"],
)
async def test_redacted_state_keeps_what_the_room_versions_algorithm_keeps(
    server: SharedServer, version: str, event_type: str, content: dict, kept: set | None
):
    alice = await register(server)
    room_id = await alice.create_room(room_version=version)
    event_id = await alice.set_state(room_id, event_type, content)
    original = ok(await get_event(alice, room_id, event_id))
    ok(await redact_event(alice, room_id, event_id, "r1"))
    served = ok(await get_event(alice, room_id, event_id))
    expected = redact(original, get_room_version(version))["content"]
    assert served["content"] == expected
    if kept is not None:
        assert set(served["content"]) == kept


async def test_redacting_a_message_of_another_room_changes_nothing(server: SharedServer):
    alice = await register(server)
    room_a = await alice.create_room()
    room_b = await alice.create_room()
    event_id = await alice.send(room_a, "safe")
    await redact_event(alice, room_b, event_id, "r1")
    assert ok(await get_event(alice, room_a, event_id))["content"]["body"] == "safe"


async def test_stored_event_is_redacted_in_the_database(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    event_id = await alice.send(room_id, "very-secret-words")
    ok(await redact_event(alice, room_id, event_id, "r1"))
    timeline = server.services.rooms.timeline
    pdu_id = timeline.pdu_id(event_id)
    raw = timeline._pdus.get(pdu_id)  # what is on disk, not the cache
    assert b"very-secret-words" not in raw
    assert json.loads(raw)["content"] == {}


# ---- /timestamp_to_event


async def test_timestamp_to_event_forwards_from_the_beginning_finds_the_create_event(
    server: SharedServer,
):
    room_id, alice, _ = await room_with_messages(server, 2)
    found = ok(await timestamp_to_event(alice, room_id, 0, "f"))
    create = ok(await get_event(alice, room_id, found["event_id"]))
    assert create["type"] == "m.room.create"
    assert found["origin_server_ts"] == create["origin_server_ts"]


async def test_timestamp_to_event_backwards_from_the_future_finds_the_newest_event(
    server: SharedServer,
):
    room_id, alice, event_ids = await room_with_messages(server, 3)
    newest = ok(await get_event(alice, room_id, event_ids[-1]))
    found = ok(await timestamp_to_event(alice, room_id, newest["origin_server_ts"] + 10**9, "b"))
    assert found == {"event_id": event_ids[-1], "origin_server_ts": newest["origin_server_ts"]}


async def test_timestamp_to_event_finds_an_event_at_the_exact_time(server: SharedServer):
    room_id, alice, event_ids = await room_with_messages(server, 3)
    middle = ok(await get_event(alice, room_id, event_ids[1]))
    ts = middle["origin_server_ts"]
    for direction in ("f", "b"):
        found = ok(await timestamp_to_event(alice, room_id, ts, direction))
        assert found["origin_server_ts"] == ts


async def test_timestamp_to_event_with_nothing_in_that_direction_is_404(server: SharedServer):
    room_id, alice, event_ids = await room_with_messages(server, 1)
    newest = ok(await get_event(alice, room_id, event_ids[-1]))
    response = await timestamp_to_event(alice, room_id, newest["origin_server_ts"] + 1, "f")
    assert_error(response, 404, "M_NOT_FOUND")
    assert_error(await timestamp_to_event(alice, room_id, 0, "b"), 404, "M_NOT_FOUND")


async def test_timestamp_to_event_needs_dir_and_ts(server: SharedServer):
    room_id, alice, _ = await room_with_messages(server, 1)
    path = f"/rooms/{path_part(room_id)}/timestamp_to_event"
    no_dir = await alice.request("GET", path, params={"ts": 1}, prefix=CLIENT_V1)
    assert no_dir.status_code == 400
    no_ts = await alice.request("GET", path, params={"dir": "f"}, prefix=CLIENT_V1)
    assert_error(no_ts, 400, "M_MISSING_PARAM")


async def test_non_member_cannot_look_up_events_by_time(server: SharedServer):
    room_id, _alice, _ = await room_with_messages(server, 1)
    mallory = await register(server)
    assert_error(await timestamp_to_event(mallory, room_id, 0, "f"), 403, "M_FORBIDDEN")
