"""The deprecated sync endpoints: `/events` (long-poll, peeking), `/initialSync`,
`/rooms/{roomId}/initialSync`, `/events/{eventId}`.

Spec: `data/api/client-server/old_sync.yaml`, `peeking_events.yaml` and
`room_initial_sync.yaml`; `content/client-server-api/_index.md` "Syncing"
(only `/sync` and the deprecated `/events` long-poll). Tokens are `/sync`'s;
history visibility applies; a `world_readable` room is readable by users who
are not in it, any other room is not.
"""

from __future__ import annotations

import pytest
import trio

from tests.support.matrix import (
    User,
    assert_error,
    bodies,
    ok,
    path_part,
    register,
    register_many,
    state_of,
)
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

WAKE_UP_BOUND_SECONDS = 30
"""A long-poll that is never woken would hang for its whole timeout (60 s); the test
fails after this long instead (a bound, not a speed measurement)."""


async def world_readable_room(owner: User) -> str:
    return await owner.create_room(
        preset="public_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )


async def stream(user: User, **params) -> dict:
    return ok(await user.get("/events", **params))


async def poll_while(user: User, params: dict, action) -> dict:
    """`GET /events` with a long timeout, started before `action` runs."""
    answer: dict = {}

    async def poll() -> None:
        answer.update(await stream(user, timeout=60_000, **params))

    with trio.fail_after(WAKE_UP_BOUND_SECONDS):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.sleep(0.3)  # let the request reach its wait
            await action()
    return answer


async def test_events_without_from_start_now_and_end_continues_the_stream(server):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await alice.send(room_id, "before")

    first = await stream(alice)
    await bob.send(room_id, "after")
    second = await stream(alice, **{"from": first["end"]})

    assert first["chunk"] == []
    assert bodies(second["chunk"]) == ["after"]
    assert second["chunk"][0]["room_id"] == room_id
    assert second["start"] == first["end"]
    assert int(second["end"]) > int(first["end"])


async def test_a_waiting_events_request_returns_with_the_new_event(server):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    token = (await stream(alice))["end"]

    answer = await poll_while(alice, {"from": token}, lambda: bob.send(room_id, "wake up"))

    assert bodies(answer["chunk"]) == ["wake up"]


async def test_events_of_rooms_the_user_is_not_in_are_not_streamed(server):
    alice, eve = await register_many(server, 2)
    token = (await stream(eve))["end"]
    room_id = await world_readable_room(alice)
    await alice.send(room_id, "not for eve's stream")

    assert (await stream(eve, **{"from": token}))["chunk"] == []


async def test_a_non_member_peeks_into_a_world_readable_room(server):
    alice, eve = await register_many(server, 2)
    room_id = await world_readable_room(alice)
    token = (await stream(eve, room_id=room_id))["end"]

    answer = await poll_while(
        eve, {"from": token, "room_id": room_id}, lambda: alice.send(room_id, "peek")
    )

    assert bodies(answer["chunk"]) == ["peek"]
    assert eve.user_id not in {e.get("state_key") for e in answer["chunk"]}


async def test_peeking_into_a_room_that_is_not_world_readable_is_refused(server):
    alice, eve = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")

    assert_error(await eve.get("/events", room_id=room_id), 403, "M_FORBIDDEN")
    assert_error(await eve.get(f"/rooms/{path_part(room_id)}/initialSync"), 403, "M_FORBIDDEN")


async def test_initial_sync_lists_joined_invited_and_archived_rooms(server):
    alice, bob = await register_many(server, 2)
    joined = await alice.create_room(preset="public_chat", name="Joined")
    for text in ("one", "two", "three"):
        await alice.send(joined, text)
    invited = await bob.create_room(preset="private_chat")
    await bob.invite(invited, alice)
    left = await bob.create_room(preset="public_chat")
    await alice.join(left)
    await alice.send(left, "said before leaving")
    await alice.leave(left)
    await bob.send(left, "said after alice left")

    snapshot = ok(await alice.get("/initialSync", limit=2))
    archived = ok(await alice.get("/initialSync", limit=2, archived="true"))

    rooms = {room["room_id"]: room for room in snapshot["rooms"]}
    assert set(rooms) == {joined, invited}
    room = rooms[joined]
    assert room["membership"] == "join"
    assert bodies(room["messages"]["chunk"]) == ["two", "three"]
    assert "start" in room["messages"]
    assert state_of(room["state"], "m.room.name")["content"] == {"name": "Joined"}
    assert room["visibility"] == "private"
    assert rooms[invited]["membership"] == "invite"
    assert rooms[invited]["invite"]["content"]["membership"] == "invite"
    assert int(snapshot["end"]) > 0
    left_room = {room["room_id"]: room for room in archived["rooms"]}[left]
    assert left_room["membership"] == "leave"
    assert "said after alice left" not in bodies(left_room["messages"]["chunk"])
    assert (
        state_of(left_room["state"], "m.room.member", alice.user_id)["content"]["membership"]
        == "leave"
    )


async def test_initial_sync_end_token_continues_with_events(server):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    end = ok(await alice.get("/initialSync"))["end"]

    await bob.send(room_id, "news")

    assert bodies((await stream(alice, **{"from": end}))["chunk"]) == ["news"]


async def test_room_initial_sync_for_a_member_and_a_peeker(server):
    alice, eve = await register_many(server, 2)
    room_id = await world_readable_room(alice)
    await alice.send(room_id, "hello world")

    member = ok(await alice.get(f"/rooms/{path_part(room_id)}/initialSync"))
    peeker = ok(await eve.get(f"/rooms/{path_part(room_id)}/initialSync"))

    assert member["membership"] == "join"
    assert peeker["membership"] == "leave"
    for snapshot in (member, peeker):
        assert snapshot["room_id"] == room_id
        assert bodies(snapshot["messages"]["chunk"])[-1] == "hello world"
        assert state_of(snapshot["state"], "m.room.create") is not None
        assert isinstance(snapshot["presence"], list)


@pytest.mark.parametrize("world_readable", [True, False])
async def test_event_by_id_follows_history_visibility(server, world_readable):
    alice, eve = await register_many(server, 2)
    room_id = (
        await world_readable_room(alice)
        if world_readable
        else await alice.create_room(preset="public_chat")
    )
    event_id = await alice.send(room_id, "look")

    mine = ok(await alice.get(f"/events/{path_part(event_id)}"))
    theirs = await eve.get(f"/events/{path_part(event_id)}")

    assert mine["content"]["body"] == "look"
    assert mine["room_id"] == room_id
    if world_readable:
        assert ok(theirs)["event_id"] == event_id
    else:
        assert_error(theirs, 404, "M_NOT_FOUND")
    assert_error(await alice.get("/events/$nosuchevent"), 404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    "params",
    [{"from": "not-a-token"}, {"room_id": "not-a-room"}, {"timeout": "soon"}],
)
async def test_bad_parameters_get_400(server, params):
    alice = await register(server)

    response = await alice.get("/events", **params)

    assert_error(response, 400, "M_INVALID_PARAM")
