"""Big rooms and many rooms (issue 19): incremental state, membership sets, quiet rooms.

A state change in a big room is stored and cached as its diff
(`rooms/state.py`, `rooms/state_compressor.py`); the membership sets follow
each change (`rooms/state_cache.py`); an incremental `/sync` leaves out rooms
where nothing happened since the token, from memory, and a token from before
a restart still gets what happened before it (spec: client-server-api
"Syncing": every change after `since` is delivered).
"""

from __future__ import annotations

from pathlib import Path

import trio

from matrix_conduit.service.rooms.state import ChangedState
from matrix_conduit.service.sync import SyncRequest
from tests.support.rooms import ALICE, BOB, open_services, public_room


def test_state_after_many_joins_is_exact_in_memory_and_after_a_restart(tmp_path: Path) -> None:
    members = [f"@member{number}:localhost" for number in range(300)]

    async def fill(services) -> tuple[str, dict]:
        room_id = await public_room(services)
        for member in members:
            await services.rooms.membership.join(room_id, member)
        await services.rooms.membership.leave(room_id, members[7])
        return room_id, dict(services.rooms.state.current_state_ids(room_id))

    with open_services(tmp_path) as services:
        room_id, in_memory = trio.run(fill, services)
        assert services.rooms.state_cache.joined_members(room_id) == {
            ALICE,
            BOB,
            *(m for m in members if m != members[7]),
        }
        assert services.rooms.state_cache.joined_servers(room_id) == {"localhost"}
    with open_services(tmp_path) as reopened:
        assert dict(reopened.rooms.state.current_state_ids(room_id)) == in_memory
        member = in_memory[("m.room.member", members[7])]
        assert reopened.rooms.timeline.get_event(member)["content"]["membership"] == "leave"
        assert len(reopened.rooms.state_cache.joined_members(room_id)) == 2 + 299


def test_a_changed_state_reads_like_the_whole_mapping_and_flattens_as_it_grows() -> None:
    base = {("m.room.member", f"@u{number}:x"): f"$e{number}" for number in range(10_000)}
    state = ChangedState.with_change(base, ("m.room.member", "@u1:x"), "$new")
    state = ChangedState.with_change(state, ("m.room.topic", ""), "$topic")
    expected = {**base, ("m.room.member", "@u1:x"): "$new", ("m.room.topic", ""): "$topic"}
    assert isinstance(state, ChangedState)
    assert dict(state) == expected and len(state) == len(expected)
    assert ("m.room.topic", "") in state and state.get(("m.room.name", "")) is None
    flattened = 0
    for number in range(200):
        state = ChangedState.with_change(state, ("m.room.member", f"@u{number}:x"), "$later")
        flattened += not isinstance(state, ChangedState)
    assert flattened == 1  # once the changes outgrew the square root of the state
    assert state[("m.room.member", "@u150:x")] == "$later" and len(state) == len(expected)


def _sync(services, user_id: str, since: int | None) -> dict:
    return trio.run(services.sync.sync, SyncRequest(user_id, None, since))


def test_only_rooms_with_news_appear_in_an_incremental_sync(tmp_path: Path) -> None:
    with open_services(tmp_path) as services:
        rooms = [trio.run(public_room, services) for _ in range(4)]
        send = services.rooms.builder.send
        earlier = [trio.run(send, room, ALICE, "m.room.message", {"body": "a"}) for room in rooms]
        since = int(_sync(services, BOB, None)["next_batch"])
        assert _sync(services, BOB, since)["rooms"]["join"] == {}
        trio.run(send, rooms[0], ALICE, "m.room.message", {"body": "hi"})
        services.receipts.set_receipt(rooms[1], ALICE, "m.read", earlier[1], thread_id=None, ts=1)
        services.account_data.set(BOB, rooms[2], "org.example.tag", {"a": 1})
        joined = _sync(services, BOB, since)["rooms"]["join"]
        assert set(joined) == {rooms[0], rooms[1], rooms[2]}


def test_a_token_from_before_a_restart_still_gets_what_came_before_it(tmp_path: Path) -> None:
    with open_services(tmp_path) as services:
        room_id = trio.run(public_room, services)
        since = int(_sync(services, BOB, None)["next_batch"])
        event = trio.run(
            services.rooms.builder.send, room_id, ALICE, "m.room.message", {"body": "before"}
        )
        services.receipts.set_receipt(room_id, ALICE, "m.read", event, thread_id=None, ts=1)
    with open_services(tmp_path) as restarted:
        entry = _sync(restarted, BOB, since)["rooms"]["join"][room_id]
        assert [e["event_id"] for e in entry["timeline"]["events"]] == [event]
        assert entry["ephemeral"]["events"][0]["type"] == "m.receipt"
