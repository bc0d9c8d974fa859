"""Identifiers in URL paths arrive whole; a txnId is scoped to its request path.

Spec: `content/client-server-api/_index.md`, "API Standards" (path
parameters are percent-encoded; Synapse decodes `%2F` inside a segment) and
"Transaction identifiers" (a txnId is scoped to the device *and the request
path*: the same txnId on another path is another request). Room version 3
event ids are standard base64 (`content/rooms/v3.md`, "Event IDs"), so they
may hold `/` and `+`; state keys and txn ids may hold `/` and newlines;
aliases may be Unicode.
"""

from __future__ import annotations

import pytest

from tests.support.matrix import (
    CLIENT_V1,
    User,
    assert_error,
    ok,
    path_part,
    register,
    room_with_members,
)
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

pytestmark = pytest.mark.trio


# ---------------------------------------------------------------- transaction ids


async def test_same_txn_id_in_two_rooms_sends_both_messages(server):
    alice = await register(server)
    first, second = await alice.create_room(), await alice.create_room()
    in_first = ok(await alice.send_event(first, "m.room.message", {"body": "1"}, "same"))
    in_second = ok(await alice.send_event(second, "m.room.message", {"body": "2"}, "same"))
    assert in_first["event_id"] != in_second["event_id"]
    assert [e["content"].get("body") for e in await alice.timeline(second)][-1] == "2"


async def test_same_txn_id_for_two_event_types_sends_both(server):
    alice = await register(server)
    room_id = await alice.create_room()
    message = ok(await alice.send_event(room_id, "m.room.message", {"body": "m"}, "t"))
    custom = ok(await alice.send_event(room_id, "org.example.custom", {"n": 1}, "t"))
    assert message["event_id"] != custom["event_id"]
    types = [e["type"] for e in await alice.timeline(room_id)]
    assert types[-2:] == ["m.room.message", "org.example.custom"]


async def test_same_txn_id_and_path_returns_same_event_id(server):
    alice = await register(server)
    room_id = await alice.create_room()
    first = ok(await alice.send_event(room_id, "m.room.message", {"body": "once"}, "retry"))
    again = ok(await alice.send_event(room_id, "m.room.message", {"body": "once"}, "retry"))
    assert first == again
    assert [e["content"].get("body") for e in await alice.timeline(room_id)].count("once") == 1


async def test_redactions_of_two_events_with_one_txn_id_redact_both(server):
    alice = await register(server)
    room_id = await alice.create_room()
    targets = [await alice.send(room_id, "a"), await alice.send(room_id, "b")]
    redactions = [
        ok(await alice.put(f"/rooms/{path_part(room_id)}/redact/{path_part(t)}/r", {}))
        for t in targets
    ]
    assert redactions[0]["event_id"] != redactions[1]["event_id"]
    for target in targets:
        event = ok(await alice.get(f"/rooms/{path_part(room_id)}/event/{path_part(target)}"))
        assert event["content"] == {}


async def test_a_send_and_a_redaction_with_one_txn_id_are_two_requests(server):
    alice = await register(server)
    room_id = await alice.create_room()
    target = await alice.send(room_id, "to redact")
    sent = ok(await alice.send_event(room_id, "m.room.message", {"body": "x"}, "shared"))
    redaction = ok(
        await alice.put(f"/rooms/{path_part(room_id)}/redact/{path_part(target)}/shared", {})
    )
    assert redaction["event_id"] != sent["event_id"]


async def test_to_device_txn_id_is_scoped_to_the_event_type(server):
    alice, bob = await register(server), await register(server)
    messages = {bob.user_id: {bob.device_id: {"n": 1}}}
    for event_type in ("org.example.one", "org.example.two"):
        ok(await alice.put(f"/sendToDevice/{event_type}/same", {"messages": messages}))
    received = ok(await bob.get("/sync"))["to_device"]["events"]
    assert sorted(e["type"] for e in received) == ["org.example.one", "org.example.two"]


# ---------------------------------------------------------------- ids in paths


async def v3_event_id_with_slash(user: User, room_id: str) -> str:
    """Send messages until one's id holds `/` (each id is a base64 hash: about 1 in 2)."""
    for attempt in range(64):
        event_id = await user.send(room_id, f"message {attempt}")
        if "/" in event_id:
            return event_id
    raise AssertionError("no event id with '/' in 64 messages")


@pytest.fixture
async def v3_room(server):
    room_id, (alice, bob) = await room_with_members(server, 2, room_version="3")
    event_id = await v3_event_id_with_slash(alice, room_id)
    return room_id, alice, bob, event_id


async def test_v3_event_id_with_slash_reaches_event_context_and_relations(v3_room):
    room_id, alice, _, event_id = v3_room
    room, event = path_part(room_id), path_part(event_id)
    assert ok(await alice.get(f"/rooms/{room}/event/{event}"))["event_id"] == event_id
    assert ok(await alice.get(f"/rooms/{room}/context/{event}"))["event"]["event_id"] == event_id
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": "👍"}}
    ok(await alice.send_event(room_id, "m.reaction", reaction))
    for suffix in ("", "/m.annotation", "/m.annotation/m.reaction"):
        chunk = ok(
            await alice.request("GET", f"/rooms/{room}/relations/{event}{suffix}", prefix=CLIENT_V1)
        )["chunk"]
        assert [e["type"] for e in chunk] == ["m.reaction"], suffix


async def test_v3_event_id_with_slash_can_be_receipted_reported_and_redacted(v3_room):
    room_id, alice, bob, event_id = v3_room
    room, event = path_part(room_id), path_part(event_id)
    ok(await bob.post(f"/rooms/{room}/receipt/m.read/{event}", {}))
    ok(await bob.post(f"/rooms/{room}/read_markers", {"m.fully_read": event_id}))
    ok(await bob.post(f"/rooms/{room}/report/{event}", {"reason": "test"}))
    ok(await alice.put(f"/rooms/{room}/redact/{event}/redact-it", {}))
    assert ok(await alice.get(f"/rooms/{room}/event/{event}"))["content"] == {}


@pytest.mark.parametrize("state_key", ["a/b", "a\nb", "100%", "ü/+ %2F"])
async def test_state_keys_with_slashes_newlines_and_percents_round_trip(server, state_key):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.put_state(room_id, "org.example.state", {"key": state_key}, state_key))
    assert ok(await alice.get_state(room_id, "org.example.state", state_key)) == {"key": state_key}


@pytest.mark.parametrize("txn_id", ["a/b", "a\nb", "50%"])
async def test_txn_ids_with_slashes_and_newlines_are_accepted(server, txn_id):
    alice = await register(server)
    room_id = await alice.create_room()
    first = ok(await alice.send_event(room_id, "m.room.message", {"body": "t"}, txn_id))
    again = ok(await alice.send_event(room_id, "m.room.message", {"body": "t"}, txn_id))
    assert first == again


async def test_unicode_alias_with_slash_is_created_and_resolved(server):
    alice = await register(server)
    room_id = await alice.create_room()
    alias = f"#café/ü-{alice.localpart}:{server.config.server_name}"
    ok(await alice.put(f"/directory/room/{path_part(alias)}", {"room_id": room_id}))
    assert ok(await alice.get(f"/directory/room/{path_part(alias)}"))["room_id"] == room_id
    assert await alice.join(alias) == room_id


async def test_a_route_with_an_encoded_slash_still_404s_for_unknown_paths(server):
    alice = await register(server)
    assert_error(await alice.get("/rooms%2Fjoined"), 404, "M_UNRECOGNIZED")


# ---------------------------------------------------------------- values stored before the door


async def test_a_lone_surrogate_stored_before_the_door_check_does_not_break_reads(server):
    """Databases written by older versions may hold such values: reads answer 200 with U+FFFD."""
    alice, bob = await register(server), await register(server)
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    bad = "bad \ud800 value"

    async def store_bad_values() -> None:
        services = server.services
        services.to_device.send(
            alice.user_id, alice.device_id, "org.example", "old", {bob.user_id: {"*": {"t": bad}}}
        )
        services.presence.set_presence(alice.user_id, "online", bad)
        services.devices.set_display_name(alice.user_id, alice.device_id, bad)

    await server.call(store_bad_values)
    synced = ok(await bob.get("/sync"))
    assert synced["to_device"]["events"][0]["content"] == {"t": "bad \ufffd value"}
    keys = ok(await bob.post("/keys/query", {"device_keys": {alice.user_id: []}}))
    assert keys["failures"] == {}
    ok(await bob.messages(room_id))
