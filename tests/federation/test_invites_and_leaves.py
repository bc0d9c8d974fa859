"""Invites, rejections, leaves, kicks and bans between two of our servers over TLS.

Spec: `content/server-server-api.md` "Inviting to a room" (`/invite` v2: the
invited server signs; stripped state for the invitee), "Leaving Rooms (Rejecting
Invites)" (`make_leave`/`send_leave` through the inviting server; a local leave
when it is unreachable); `content/client-server-api/_index.md` "Room membership"
(accepting an invite needs no `via`).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.federation import FederatingServer, start_federating
from tests.support.matrix import User, ok, path_part, register, state_of
from tests.support.remote_membership import eventually, join, refuse_v2


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def membership_seen_by(user: User, room_id: str, target: User | str) -> str | None:
    user_id = target if isinstance(target, str) else target.user_id
    response = await user.get_state(room_id, "m.room.member", user_id)
    return response.json().get("membership") if response.status_code == 200 else None


async def invited_rooms(user: User) -> dict[str, Any]:
    return ok(await user.get("/sync"))["rooms"]["invite"]


@pytest.mark.parametrize("room_version", ["1", "10", "12"])
async def test_an_invite_reaches_the_other_server_and_is_accepted_without_via(pair, room_version):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(room_version=room_version, name="Private")

    await alice.invite(room_id, bob)

    invite = (await invited_rooms(bob))[room_id]["invite_state"]["events"]
    assert state_of(invite, "m.room.name")["content"]["name"] == "Private"
    assert state_of(invite, "m.room.member", bob.user_id)["sender"] == alice.user_id
    assert await membership_seen_by(alice, room_id, bob) == "invite"

    ok(await bob.post(f"/rooms/{path_part(room_id)}/join"))

    assert room_id in await bob.joined_rooms()
    assert room_id not in await invited_rooms(bob)
    assert await membership_seen_by(alice, room_id, bob) == "join"


async def test_a_rejected_invite_is_a_leave_through_the_inviting_server(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)

    await bob.leave(room_id)

    assert await membership_seen_by(alice, room_id, bob) == "leave"
    sync = ok(await bob.get("/sync", filter='{"room":{"include_leave":true}}'))
    assert room_id not in sync["rooms"]["invite"]
    assert room_id in sync["rooms"]["leave"]


async def test_an_invite_is_rejected_here_alone_when_the_inviting_server_is_down(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    await a.stop()

    await bob.leave(room_id)

    assert room_id not in await invited_rooms(bob)
    assert room_id not in await bob.joined_rooms()


async def _shared_room(a: FederatingServer, b: FederatingServer) -> tuple[User, User, str]:
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    ok(await join(bob, room_id, via=a.name))
    return alice, bob, room_id


async def test_a_remote_member_leaves_and_the_room_sees_it(pair):
    a, b = pair
    alice, bob, room_id = await _shared_room(a, b)

    await bob.leave(room_id)

    await eventually(lambda: _is(alice, room_id, bob, "leave"))
    assert room_id not in await bob.joined_rooms()


async def test_a_remote_member_is_kicked_and_their_server_sees_it(pair):
    a, b = pair
    alice, bob, room_id = await _shared_room(a, b)

    ok(await alice.membership_action(room_id, "kick", bob, reason="bye"))

    await eventually(lambda: _not_joined(bob, room_id))
    assert await membership_seen_by(alice, room_id, bob) == "leave"


async def test_a_remote_member_is_banned_and_unbanned_across_servers(pair):
    a, b = pair
    alice, bob, room_id = await _shared_room(a, b)

    ok(await alice.membership_action(room_id, "ban", bob))
    await eventually(lambda: _not_joined(bob, room_id))
    assert await membership_seen_by(alice, room_id, bob) == "ban"
    rejoin = await join(bob, room_id, via=a.name)
    assert rejoin.status_code == 403, rejoin.text

    ok(await alice.membership_action(room_id, "unban", bob))
    assert await membership_seen_by(alice, room_id, bob) == "leave"
    ok(await join(bob, room_id, via=a.name))
    assert await membership_seen_by(alice, room_id, bob) == "join"


async def test_a_remote_member_in_a_shared_room_can_kick_a_local_one(pair):
    a, b = pair
    alice, bob, room_id = await _shared_room(a, b)
    carol = await register(a.server)
    await carol.join(room_id)
    power = ok(await alice.get_state(room_id, "m.room.power_levels"))
    power["users"][bob.user_id] = 100
    await alice.set_state(room_id, "m.room.power_levels", power)
    await eventually(lambda: _power_of(bob, room_id, bob.user_id, 100))
    await eventually(lambda: _is(bob, room_id, carol, "join"))

    ok(await bob.membership_action(room_id, "kick", carol))

    await eventually(lambda: _is(alice, room_id, carol, "leave"))


async def _is(observer: User, room_id: str, target: User, membership: str) -> bool:
    return await membership_seen_by(observer, room_id, target) == membership


async def _not_joined(user: User, room_id: str) -> bool:
    return room_id not in await user.joined_rooms()


async def _power_of(observer: User, room_id: str, user_id: str, level: int) -> bool:
    response = await observer.get_state(room_id, "m.room.power_levels")
    return response.status_code == 200 and response.json()["users"].get(user_id) == level


async def test_invites_and_rejections_fall_back_to_the_v1_endpoints(pair, monkeypatch):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(room_version="2")
    a_paths = refuse_v2(monkeypatch, a)
    b_paths = refuse_v2(monkeypatch, b)

    await alice.invite(room_id, bob)
    assert room_id in await invited_rooms(bob)
    await bob.leave(room_id)

    assert await membership_seen_by(alice, room_id, bob) == "leave"
    assert any(path.startswith("/_matrix/federation/v1/invite/") for path in a_paths)
    assert any(path.startswith("/_matrix/federation/v1/send_leave/") for path in b_paths)


async def test_an_invite_of_a_user_the_other_server_does_not_have_is_not_found(pair):
    a, b = pair
    alice = await register(a.server)
    room_id = await alice.create_room()

    ghost = f"@ghost:{b.name}"

    response = await alice.membership_action(room_id, "invite", ghost)

    assert response.status_code == 404, response.text
    assert response.json()["errcode"] == "M_NOT_FOUND"
    assert await membership_seen_by(alice, room_id, ghost) is None


async def test_an_invite_of_a_user_on_a_server_that_is_down_fails_and_changes_nothing(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room()
    await b.stop()

    response = await alice.membership_action(room_id, "invite", bob)

    assert response.status_code == 502, response.text
    assert await membership_seen_by(alice, room_id, bob) is None


async def test_an_invite_into_a_room_this_server_is_already_in_arrives_as_a_room_event(pair):
    a, b = pair
    alice = await register(a.server)
    carol = await register(a.server)
    bob = await register(b.server)
    room_id = await bob.create_room(preset="private_chat")
    await bob.invite(room_id, alice)
    await eventually(lambda: _invited(alice, room_id))
    ok(await alice.post(f"/rooms/{path_part(room_id)}/join"))

    await bob.invite(room_id, carol)

    await eventually(lambda: _invited(carol, room_id))
    ok(await carol.post(f"/rooms/{path_part(room_id)}/join"))
    await eventually(lambda: _is(bob, room_id, carol, "join"))


async def _invited(user: User, room_id: str) -> bool:
    return room_id in await invited_rooms(user)


async def test_a_deactivated_account_declines_its_invites_from_other_servers(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)

    await b.server.services.users.deactivate(bob.user_id)

    assert await membership_seen_by(alice, room_id, bob) == "leave"
