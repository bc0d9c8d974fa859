"""`GET /sync`: initial and incremental syncs, limited timelines, long-polling, filters.

Spec: `content/client-server-api/_index.md` ("Syncing", "Filtering",
"Lazy-loading room members") and `data/api/client-server/sync.yaml`.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from tests.support.matrix import User, bodies, ok, register, room_with_members, state_of
from tests.support.server import TestServer


async def sync(user: User, **params: Any) -> dict[str, Any]:
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    return ok(await user.get("/sync", **params))


def joined(response: dict[str, Any], room_id: str) -> dict[str, Any]:
    return response["rooms"]["join"][room_id]


def timeline_bodies(response: dict[str, Any], room_id: str) -> list[str]:
    return bodies(joined(response, room_id)["timeline"]["events"])


async def test_initial_sync_has_the_room_its_state_and_recent_messages(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1, name="Garden")
    await alice.send(room_id, "first")
    response = await sync(alice)
    room = joined(response, room_id)
    assert "first" in bodies(room["timeline"]["events"])
    assert response["next_batch"]
    all_state = room["state"]["events"] + room["timeline"]["events"]
    assert state_of(all_state, "m.room.name")["content"] == {"name": "Garden"}
    assert state_of(all_state, "m.room.create") is not None
    assert room["timeline"]["prev_batch"]


async def test_incremental_sync_has_only_what_is_new(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    await alice.send(room_id, "old")
    first = await sync(alice)
    await alice.send(room_id, "new")
    second = await sync(alice, since=first["next_batch"])
    assert timeline_bodies(second, room_id) == ["new"]
    third = await sync(alice, since=second["next_batch"])
    assert room_id not in third["rooms"]["join"]


async def test_limited_timeline_carries_the_state_changed_in_the_gap(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1, name="Before")
    start = await sync(alice)
    await alice.set_state(room_id, "m.room.name", {"name": "During the gap"})
    for number in range(5):
        await alice.send(room_id, f"message {number}")
    response = await sync(
        alice, since=start["next_batch"], filter={"room": {"timeline": {"limit": 3}}}
    )
    room = joined(response, room_id)
    assert room["timeline"]["limited"] is True
    assert bodies(room["timeline"]["events"]) == ["message 2", "message 3", "message 4"]
    name = state_of(room["state"]["events"], "m.room.name")
    assert name is not None and name["content"] == {"name": "During the gap"}


async def test_unlimited_incremental_sync_has_no_state_section_entries(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    start = await sync(alice)
    await alice.set_state(room_id, "m.room.topic", {"topic": "news"})
    room = joined(await sync(alice, since=start["next_batch"]), room_id)
    assert room["timeline"]["limited"] is False
    assert room["state"]["events"] == []
    assert state_of(room["timeline"]["events"], "m.room.topic")["content"]["topic"] == "news"


async def test_long_poll_returns_when_a_message_arrives(server: TestServer, nursery):
    room_id, (alice, bob) = await room_with_members(server, 2)
    start = await sync(bob)
    received: list[dict[str, Any]] = []

    async def poll() -> None:
        received.append(await sync(bob, since=start["next_batch"], timeout=60_000))

    nursery.start_soon(poll)
    await trio.sleep(0.2)  # let the request reach the server and start waiting
    await alice.send(room_id, "wake up")
    with trio.fail_after(30):
        while not received:
            await trio.sleep(0.01)
    assert timeline_bodies(received[0], room_id) == ["wake up"]


async def test_empty_long_poll_answers_after_its_timeout(server: TestServer):
    _, (alice,) = await room_with_members(server, 1)
    start = await sync(alice)
    response = await sync(alice, since=start["next_batch"], timeout=50)
    assert response["rooms"]["join"] == {}
    assert response["next_batch"] == start["next_batch"]


async def test_invited_user_sees_stripped_state_only(server: TestServer):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(name="Secret plans")
    await alice.send(room_id, "not for bob yet")
    await alice.invite(room_id, bob)
    response = await sync(bob)
    assert room_id not in response["rooms"]["join"]
    invite_state = response["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert state_of(invite_state, "m.room.name")["content"] == {"name": "Secret plans"}
    member = state_of(invite_state, "m.room.member", bob.user_id)
    assert member["content"]["membership"] == "invite"
    assert all(set(event) <= {"type", "state_key", "content", "sender"} for event in invite_state)
    assert "not for bob yet" not in json.dumps(response)


async def test_member_who_left_stops_receiving_the_room(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    start = await sync(bob)
    await bob.leave(room_id)
    after_leave = await sync(bob, since=start["next_batch"])
    left = after_leave["rooms"]["leave"][room_id]
    leave_event = state_of(left["timeline"]["events"], "m.room.member", bob.user_id)
    assert leave_event["content"]["membership"] == "leave"
    await alice.send(room_id, "bob is gone")
    later = await sync(bob, since=after_leave["next_batch"])
    assert room_id not in later["rooms"]["join"]
    assert room_id not in later["rooms"]["leave"]
    assert "bob is gone" not in json.dumps(later)


async def test_room_joined_since_the_token_arrives_with_full_state(server: TestServer):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(preset="public_chat", name="Open house")
    start = await sync(bob)
    await bob.join(room_id)
    room = joined(await sync(bob, since=start["next_batch"]), room_id)
    everything = room["state"]["events"] + room["timeline"]["events"]
    assert state_of(everything, "m.room.name")["content"] == {"name": "Open house"}
    assert state_of(everything, "m.room.create") is not None


async def test_timeline_filter_selects_types_and_limit(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    for number in range(4):
        await alice.send(room_id, f"m{number}")
    await alice.send_event(room_id, "org.example.custom", {"x": 1})
    response = await sync(
        alice, filter={"room": {"timeline": {"types": ["m.room.message"], "limit": 2}}}
    )
    events = joined(response, room_id)["timeline"]["events"]
    assert [event["type"] for event in events] == ["m.room.message", "m.room.message"]
    assert bodies(events) == ["m2", "m3"]


async def test_room_filter_excludes_rooms(server: TestServer):
    alice = await register(server)
    kept = await alice.create_room()
    dropped = await alice.create_room()
    response = await sync(alice, filter={"room": {"not_rooms": [dropped]}})
    assert kept in response["rooms"]["join"]
    assert dropped not in response["rooms"]["join"]


async def test_lazy_loading_sends_only_the_timeline_senders_members(server: TestServer):
    room_id, users = await room_with_members(server, 4)
    alice, bob = users[0], users[1]
    await bob.send(room_id, "from bob")
    response = await sync(
        alice,
        filter={"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}},
    )
    room = joined(response, room_id)
    members = {
        event["state_key"] for event in room["state"]["events"] if event["type"] == "m.room.member"
    }
    assert members == {bob.user_id, alice.user_id}


async def test_event_fields_keeps_only_the_named_fields(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    await alice.send(room_id, "trimmed")
    response = await sync(
        alice,
        filter={"event_fields": ["type", "content.body"], "room": {"timeline": {"limit": 1}}},
    )
    (event,) = joined(response, room_id)["timeline"]["events"]
    assert event == {"type": "m.room.message", "content": {"body": "trimmed"}}


async def test_full_state_resends_the_state_on_an_incremental_sync(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1, name="Full")
    start = await sync(alice)
    response = await sync(alice, since=start["next_batch"], full_state="true")
    room = joined(response, room_id)
    assert state_of(room["state"]["events"], "m.room.name")["content"] == {"name": "Full"}


async def test_summary_counts_members_and_names_heroes(server: TestServer):
    room_id, users = await room_with_members(server, 3)
    summary = joined(await sync(users[0]), room_id)["summary"]
    assert summary["m.joined_member_count"] == 3
    assert summary["m.invited_member_count"] == 0
    assert sorted(summary["m.heroes"]) == sorted(user.user_id for user in users[1:])


async def test_unread_counts_follow_push_rules_and_highlight_mentions(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await alice.send(room_id, "hello all")
    await alice.send(room_id, "hey, look", **{"m.mentions": {"user_ids": [bob.user_id]}})
    counts = joined(await sync(bob), room_id)["unread_notifications"]
    assert counts == {"notification_count": 2, "highlight_count": 1}
    await bob.send(room_id, "read it")
    counts = joined(await sync(bob), room_id)["unread_notifications"]
    assert counts == {"notification_count": 0, "highlight_count": 0}


async def test_own_messages_carry_the_transaction_id_for_the_sending_device(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "x"}, "t-1"))
    mine = joined(await sync(alice), room_id)["timeline"]["events"][-1]
    theirs = joined(await sync(bob), room_id)["timeline"]["events"][-1]
    assert mine["unsigned"]["transaction_id"] == "t-1"
    assert "transaction_id" not in theirs.get("unsigned", {})


async def test_invalid_since_token_is_a_clear_400(server: TestServer):
    alice = await register(server)
    response = await alice.get("/sync", since="not-a-token")
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"


async def test_unknown_filter_id_is_404(server: TestServer):
    alice = await register(server)
    response = await alice.get("/sync", filter="12345")
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"


async def test_every_message_arrives_exactly_once_in_order_under_concurrent_senders(
    server: TestServer,
):
    """Two clients long-poll while eight senders post concurrently: no gaps, no repeats."""
    room_id, users = await room_with_members(server, 10)
    listeners, senders = users[:2], users[2:]
    per_sender = 15
    expected = {f"{sender.localpart}:{n}" for sender in senders for n in range(per_sender)}
    seen: dict[str, list[str]] = {listener.user_id: [] for listener in listeners}
    start_tokens = {
        listener.user_id: (await sync(listener))["next_batch"] for listener in listeners
    }
    done = trio.Event()

    async def listen(listener: User) -> None:
        token = start_tokens[listener.user_id]
        while True:
            response = await sync(
                listener, since=token, timeout=1000, filter={"room": {"timeline": {"limit": 500}}}
            )
            token = response["next_batch"]
            room = response["rooms"]["join"].get(room_id)
            if room is not None:
                assert room["timeline"]["limited"] is False
                seen[listener.user_id].extend(bodies(room["timeline"]["events"]))
            if done.is_set() and set(seen[listener.user_id]) >= expected:
                return

    async def send_all(sender: User) -> None:
        for number in range(per_sender):
            await sender.send(room_id, f"{sender.localpart}:{number}")

    async with trio.open_nursery() as listening:
        for listener in listeners:
            listening.start_soon(listen, listener)
        async with trio.open_nursery() as sending:
            for sender in senders:
                sending.start_soon(send_all, sender)
        done.set()
    order = await listeners[0].timeline(room_id, limit=500)
    server_order = [body for body in bodies(order) if body in expected]
    for listener in listeners:
        received = seen[listener.user_id]
        assert len(received) == len(set(received)), "a message arrived twice"
        assert received == server_order, "messages arrived out of order or with a gap"
