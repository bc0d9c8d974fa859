"""History visibility, enforced on every read path.

Spec: `content/client-server-api/modules/history_visibility.md`, "Server
behaviour": an event is visible by the state at that event — world_readable
to anyone; to members while joined; `shared` also to users who joined at any
point after it; `invited` also to invited users; the visibility event itself
and the user's own membership events judged before *or* after. Read paths:
`GET /rooms/{roomId}/messages`, `/context/{eventId}`, `/event/{eventId}`,
`/state`, `/members` (`rooms.yaml`, `message_pagination.yaml`,
`event_context.yaml`); a user who may not read a room gets 403
`M_FORBIDDEN` (or 404 for a single event), never another room's data.
"""

from __future__ import annotations

import pytest

from tests.support.matrix import (
    User,
    assert_error,
    bodies,
    ok,
    path_part,
    register_many,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()


async def room_with_visibility(owner: User, visibility: str, **create) -> str:
    create.setdefault("preset", "public_chat")
    return await owner.create_room(
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": visibility}}
        ],
        **create,
    )


async def visible_bodies(user: User, room_id: str) -> list[str]:
    """The messages `user` can page through in the room, oldest first."""
    page = ok(await user.messages(room_id, dir="f", limit=100))
    return bodies(page["chunk"])


async def get_event(user: User, room_id: str, event_id: str):
    return await user.get(f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}")


async def context(user: User, room_id: str, event_id: str):
    return await user.get(f"/rooms/{path_part(room_id)}/context/{path_part(event_id)}")


# ---- a member's view of history before they joined


@pytest.mark.parametrize(
    ("visibility", "seen_by_late_joiner"),
    [
        ("world_readable", ["before invite", "after invite", "after join"]),
        ("shared", ["before invite", "after invite", "after join"]),
        ("invited", ["after invite", "after join"]),
        ("joined", ["after join"]),
    ],
)
async def test_late_joiner_sees_history_as_the_visibility_allows(
    server: SharedServer, visibility: str, seen_by_late_joiner: list[str]
):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, visibility, preset="private_chat")
    await alice.send(room_id, "before invite")
    await alice.invite(room_id, bob)
    await alice.send(room_id, "after invite")
    await bob.join(room_id)
    await alice.send(room_id, "after join")
    assert await visible_bodies(bob, room_id) == seen_by_late_joiner
    assert await visible_bodies(alice, room_id) == ["before invite", "after invite", "after join"]


@pytest.mark.parametrize("visibility", ["invited", "joined"])
async def test_hidden_history_is_hidden_from_every_read_path(server: SharedServer, visibility: str):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, visibility)
    hidden = await alice.send(room_id, "before bob")
    await bob.join(room_id)
    assert_error(await get_event(bob, room_id, hidden), 404, "M_NOT_FOUND")
    assert (await context(bob, room_id, hidden)).status_code in (403, 404)
    page = ok(await bob.messages(room_id, dir="b", limit=100))
    assert hidden not in {event["event_id"] for event in page["chunk"]}


async def test_invited_user_can_read_invited_history_before_joining(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "invited", preset="private_chat")
    await alice.send(room_id, "before invite")
    await alice.invite(room_id, bob)
    after = await alice.send(room_id, "for the invitee")
    assert ok(await get_event(bob, room_id, after))["content"]["body"] == "for the invitee"
    assert await visible_bodies(bob, room_id) == ["for the invitee"]


# ---- after leaving


@pytest.mark.parametrize("visibility", ["shared", "invited", "joined"])
async def test_former_member_sees_history_up_to_leaving_only(server: SharedServer, visibility: str):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, visibility)
    await bob.join(room_id)
    await alice.send(room_id, "while bob was here")
    await bob.leave(room_id)
    later = await alice.send(room_id, "after bob left")
    assert await visible_bodies(bob, room_id) == ["while bob was here"]
    assert_error(await get_event(bob, room_id, later), 404, "M_NOT_FOUND")


async def test_banned_user_sees_nothing_after_the_ban(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "shared")
    await bob.join(room_id)
    await alice.send(room_id, "before the ban")
    ok(await alice.membership_action(room_id, "ban", bob))
    await alice.send(room_id, "after the ban")
    assert await visible_bodies(bob, room_id) == ["before the ban"]


async def test_former_member_can_still_read_history_of_a_world_readable_room(
    server: SharedServer,
):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "world_readable")
    await bob.join(room_id)
    await bob.leave(room_id)
    await alice.send(room_id, "after bob left")
    assert await visible_bodies(bob, room_id) == ["after bob left"]


# ---- non-members


@pytest.mark.parametrize("visibility", ["shared", "invited", "joined"])
async def test_non_member_cannot_read_a_rooms_history(server: SharedServer, visibility: str):
    alice, mallory = await register_many(server, 2)
    room_id = await room_with_visibility(alice, visibility, name="Members only")
    event_id = await alice.send(room_id, "members only")
    responses = [
        await mallory.messages(room_id),
        await mallory.get(f"/rooms/{path_part(room_id)}/state"),
        await mallory.get(f"/rooms/{path_part(room_id)}/members"),
        await mallory.get(f"/rooms/{path_part(room_id)}/joined_members"),
        await mallory.get_state(room_id, "m.room.name"),
    ]
    for response in responses:
        assert_error(response, 403, "M_FORBIDDEN")
        assert "members only" not in response.text.lower()
    for response in (
        await get_event(mallory, room_id, event_id),
        await context(mallory, room_id, event_id),
    ):
        assert response.status_code in (403, 404)
        assert "members only" not in response.text


async def test_non_member_can_read_a_world_readable_room(server: SharedServer):
    alice, guest = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "world_readable", name="Open book")
    event_id = await alice.send(room_id, "for everyone")
    assert await visible_bodies(guest, room_id) == ["for everyone"]
    assert ok(await get_event(guest, room_id, event_id))["content"]["body"] == "for everyone"
    assert ok(await context(guest, room_id, event_id))["event"]["event_id"] == event_id
    assert ok(await guest.get_state(room_id, "m.room.name")) == {"name": "Open book"}
    member_chunk = ok(await guest.get(f"/rooms/{path_part(room_id)}/members"))["chunk"]
    assert {event["state_key"] for event in member_chunk} == {alice.user_id}


async def test_non_member_cannot_post_to_a_world_readable_room(server: SharedServer):
    alice, guest = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "world_readable", preset="private_chat")
    response = await guest.send_event(room_id, "m.room.message", {"body": "hi"})
    assert_error(response, 403, "M_FORBIDDEN")


# ---- changes of visibility


async def test_each_event_is_judged_by_the_visibility_at_that_event(server: SharedServer):
    alice, mallory = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "world_readable")
    await alice.send(room_id, "public era")
    await alice.set_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    await alice.send(room_id, "private era")
    # the room is no longer world readable now: an outsider cannot page it at all
    assert_error(await mallory.messages(room_id), 403, "M_FORBIDDEN")
    await mallory.join(room_id)
    await mallory.leave(room_id)
    # a former member pages what the visibility allowed at each event
    assert await visible_bodies(mallory, room_id) == ["public era"]


async def test_visibility_change_event_is_visible_if_before_or_after_allows(
    server: SharedServer,
):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "joined")
    change = await alice.set_state(
        room_id, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    assert ok(await get_event(bob, room_id, change))["content"] == {
        "history_visibility": "world_readable"
    }


async def test_own_join_is_visible_even_in_a_joined_only_room(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await room_with_visibility(alice, "joined")
    await alice.send(room_id, "before bob")
    await bob.join(room_id)
    page = ok(await bob.messages(room_id, dir="b", limit=100))
    assert page["chunk"][0]["type"] == "m.room.member"
    assert page["chunk"][0]["state_key"] == bob.user_id
    assert "before bob" not in bodies(page["chunk"])


# ---- one room never shows another's data


async def test_an_event_is_only_served_under_its_own_room(server: SharedServer):
    alice, bob = await register_many(server, 2)
    secret_room = await alice.create_room()
    secret = await alice.send(secret_room, "secret")
    bobs_room = await bob.create_room()
    for response in (
        await get_event(bob, bobs_room, secret),
        await context(bob, bobs_room, secret),
    ):
        assert_error(response, 404, "M_NOT_FOUND")
        assert "secret" not in response.text
    page = ok(await bob.messages(bobs_room, dir="b", limit=100))
    assert {event["room_id"] for event in page["chunk"]} == {bobs_room}


async def test_pagination_tokens_of_another_room_do_not_leak_its_events(server: SharedServer):
    alice, bob = await register_many(server, 2)
    secret_room = await alice.create_room()
    await alice.send(secret_room, "secret one")
    token = ok(await alice.messages(secret_room, dir="b", limit=1))["start"]
    bobs_room = await bob.create_room()
    await bob.send(bobs_room, "bob's own")
    page = ok(await bob.messages(bobs_room, dir="b", limit=100, **{"from": token}))
    assert "secret" not in str(page)
    assert {event["room_id"] for event in page["chunk"]} <= {bobs_room}
