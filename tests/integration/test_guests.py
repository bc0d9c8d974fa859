"""Guest accounts in rooms (issue #14): joining where allowed, leaving when no longer, upgrading.

Spec: `content/client-server-api/modules/guest_access.md` ("Client behaviour":
the endpoints guests may use; "Server behaviour": join only where
`m.room.guest_access` is `can_join`, set guests' membership to `leave` when
it stops being so; upgrading with `guest_access_token`),
`content/client-server-api/modules/history_visibility.md`, and
`data/api/client-server/registration.yaml`.
"""

from __future__ import annotations

import json
from typing import Any

from matrix_conduit.service.devices import DeviceLogin
from matrix_conduit.service.rooms.create import RoomSettings
from tests.support.matrix import (
    CLIENT_V3,
    User,
    assert_error,
    bodies,
    ok,
    path_part,
    register,
)
from tests.support.rooms import open_services
from tests.support.server import make_config, serving
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures(allow_registration=True)

DUMMY = {"type": "m.login.dummy"}


async def register_guest(server: SharedServer) -> User:
    """`POST /register?kind=guest` over HTTP."""
    body = ok(await server.client.post(f"{CLIENT_V3}/register", params={"kind": "guest"}, json={}))
    return User(
        body["user_id"],
        body["device_id"],
        body["access_token"],
        server.client,
        server.config.server_name,
    )


async def sync(user: User, **params: Any) -> dict[str, Any]:
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    return ok(await user.get("/sync", set_presence="offline", **params))


async def guest_room(owner: User, **extra: Any) -> str:
    """A room whose `m.room.guest_access` is `can_join` (the `private_chat` preset's
    default), open to anyone (`join_rule: public`)."""
    return await owner.create_room(
        preset="private_chat",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}}
        ],
        **extra,
    )


async def test_a_guest_joins_a_can_join_room_sends_names_itself_and_syncs_it(
    server: SharedServer,
):
    """Server behaviour: guests may join where `guest_access` is `can_join`; Client
    behaviour: they may send, set their display name and sync."""
    alice = await register(server)
    room_id = await guest_room(alice)
    guest = await register_guest(server)
    ok(await guest.post(f"/rooms/{path_part(room_id)}/join"))
    await guest.send(room_id, "hello from a guest")
    ok(
        await guest.put(
            f"/profile/{path_part(guest.user_id)}/displayname", {"displayname": "Visitor"}
        )
    )
    member = ok(await alice.get_state(room_id, "m.room.member", guest.user_id))
    assert member["displayname"] == "Visitor" and member["membership"] == "join"
    room = (await sync(guest))["rooms"]["join"][room_id]
    assert "hello from a guest" in bodies(room["timeline"]["events"])
    assert "hello from a guest" in bodies(await alice.timeline(room_id))


async def test_a_guest_joins_by_alias_too(server: SharedServer):
    """`POST /join/{roomIdOrAlias}` lets guests in like `/rooms/{roomId}/join` (as Synapse)."""
    alice = await register(server)
    alias_name = f"guests{alice.localpart}"
    room_id = await guest_room(alice, room_alias_name=alias_name)
    guest = await register_guest(server)
    alias = f"#{alias_name}:{server.config.server_name}"
    joined = ok(await guest.post(f"/join/{path_part(alias)}"))
    assert joined["room_id"] == room_id
    assert room_id in await guest.joined_rooms()


async def test_a_guest_cannot_join_where_guest_access_is_forbidden_or_unset(
    server: SharedServer,
):
    """Server behaviour: "MUST only allow guest users to join rooms if the
    `m.room.guest_access` state event is present ... and has ... `can_join`"."""
    alice = await register(server)
    forbidden_room = await alice.create_room(preset="public_chat")
    assert ok(await alice.get_state(forbidden_room, "m.room.guest_access")) == {
        "guest_access": "forbidden"
    }
    unset_room = await alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.guest_access", "state_key": "", "content": {}}],
    )
    guest = await register_guest(server)
    for room_id in (forbidden_room, unset_room):
        for path in (f"/rooms/{path_part(room_id)}/join", f"/join/{path_part(room_id)}"):
            assert_error(await guest.post(path), 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert await guest.joined_rooms() == []
    assert_error(await guest.post("/join/!nowhere:localhost"), 403, "M_GUEST_ACCESS_FORBIDDEN")
    # a registered user joins the same rooms as ever
    bob = await register(server)
    await bob.join(forbidden_room)


async def test_guests_leave_when_guest_access_is_turned_off(server: SharedServer):
    """Server behaviour: "If the `m.room.guest_access` event is changed to stop this from
    being the case, the server MUST set those users' `m.room.member` state to `leave`"."""
    alice = await register(server)
    room_id = await guest_room(alice)
    bob = await register(server)
    await bob.join(room_id)
    guest = await register_guest(server)
    ok(await guest.post(f"/rooms/{path_part(room_id)}/join"))
    since = (await sync(guest))["next_batch"]
    await alice.set_state(room_id, "m.room.guest_access", {"guest_access": "forbidden"})
    left: dict[str, Any] = {}
    for _ in range(5):  # long-polls, each woken by news for the guest
        response = await sync(guest, since=since, timeout=10000)
        since, left = response["next_batch"], response["rooms"]["leave"]
        if room_id in left:
            break
    assert room_id in left
    member = ok(await alice.get_state(room_id, "m.room.member", guest.user_id))
    assert member["membership"] == "leave"
    assert member["reason"]  # says why: guest access was turned off
    bob_member = ok(await alice.get_state(room_id, "m.room.member", bob.user_id))
    assert bob_member["membership"] == "join"
    assert_error(
        await guest.post(f"/rooms/{path_part(room_id)}/join"), 403, "M_GUEST_ACCESS_FORBIDDEN"
    )


async def test_a_guest_sees_what_history_visibility_allows(server: SharedServer):
    """history_visibility: `joined` hides what came before the guest's join; `shared`
    shows it to a member; `world_readable` lets a guest read without joining."""
    alice = await register(server)
    joined_only = await guest_room(alice)
    await alice.set_state(
        joined_only, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    await alice.send(joined_only, "before the guest")
    shared = await guest_room(alice)
    await alice.set_state(shared, "m.room.history_visibility", {"history_visibility": "shared"})
    await alice.send(shared, "shared history")
    readable = await guest_room(alice)
    await alice.set_state(
        readable, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    await alice.send(readable, "for the world")

    guest = await register_guest(server)
    assert bodies(await guest.timeline(readable)) == ["for the world"]
    assert_error(await guest.messages(joined_only), 403, "M_FORBIDDEN")
    for room_id in (joined_only, shared):
        ok(await guest.post(f"/rooms/{path_part(room_id)}/join"))
    await alice.send(joined_only, "after the guest")
    assert bodies(await guest.timeline(joined_only)) == ["after the guest"]
    assert bodies(await guest.timeline(shared)) == ["shared history"]
    rooms = (await sync(guest))["rooms"]["join"]
    assert bodies(rooms[joined_only]["timeline"]["events"]) == ["after the guest"]
    assert bodies(rooms[shared]["timeline"]["events"]) == ["shared history"]


async def test_upgrading_a_guest_keeps_its_user_id_and_rooms(server: SharedServer):
    """Guest Access: "Guest users can also upgrade their account by going through the
    ordinary `register` flow, but specifying ... `guest_access_token`"."""
    alice = await register(server)
    room_id = await guest_room(alice)
    guest = await register_guest(server)
    ok(await guest.post(f"/rooms/{path_part(room_id)}/join"))
    localpart = guest.localpart
    upgraded = ok(
        await server.client.post(
            f"{CLIENT_V3}/register",
            json={
                "username": localpart,
                "password": "a long new password",
                "guest_access_token": guest.access_token,
                "auth": DUMMY,
            },
        )
    )
    assert upgraded["user_id"] == guest.user_id
    user = User(
        upgraded["user_id"],
        upgraded["device_id"],
        upgraded["access_token"],
        server.client,
        server.config.server_name,
    )
    assert ok(await user.get("/account/whoami"))["is_guest"] is False
    assert room_id in await user.joined_rooms()
    # a full account now: rooms of its own, and the password logs in
    await user.create_room()
    login = await server.client.post(
        f"{CLIENT_V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": "a long new password",
        },
    )
    assert ok(login)["user_id"] == guest.user_id


async def test_upgrading_needs_the_guests_own_name_and_a_guest_token(server: SharedServer):
    """Guest Access: `username` must be the guest's localpart; the token must be a guest's."""
    guest = await register_guest(server)
    alice = await register(server)
    other_name = await server.client.post(
        f"{CLIENT_V3}/register",
        json={
            "username": f"not{guest.localpart}",
            "password": "pw",
            "guest_access_token": guest.access_token,
            "auth": DUMMY,
        },
    )
    assert_error(other_name, 400, "M_INVALID_PARAM")
    full_account = await server.client.post(
        f"{CLIENT_V3}/register",
        json={"password": "pw", "guest_access_token": alice.access_token, "auth": DUMMY},
    )
    assert_error(full_account, 400, "M_INVALID_PARAM")
    unknown = await server.client.post(
        f"{CLIENT_V3}/register",
        json={"password": "pw", "guest_access_token": "nonsense", "auth": DUMMY},
    )
    assert_error(unknown, 401, "M_UNKNOWN_TOKEN")
    assert ok(await guest.get("/account/whoami"))["is_guest"] is True


async def test_guests_still_leave_when_access_was_turned_off_just_before_a_restart(
    nursery, tmp_path
):
    """Server behaviour (the MUST above) across a restart: the change is queued in the
    event's own batch, so guests leave once the server runs again (here the change is
    made with no server running at all, the extreme case of a stop right after it)."""
    with open_services(tmp_path) as services:
        alice = (
            await services.registration.register(
                username="alice", password=None, login=DeviceLogin()
            )
        ).user_id
        guest = await services.registration.register(
            username=None, password=None, guest=True, login=DeviceLogin()
        )
        room_id = await services.rooms.creation.create(
            alice,
            RoomSettings(
                room_version="10",
                preset="private_chat",
                initial_state=[
                    {
                        "type": "m.room.join_rules",
                        "state_key": "",
                        "content": {"join_rule": "public"},
                    }
                ],
            ),
        )
        await services.rooms.membership.join(room_id, guest.user_id)
        await services.rooms.builder.send(
            room_id, alice, "m.room.guest_access", {"guest_access": "forbidden"}, ""
        )
        assert services.rooms.state_cache.is_joined(guest.user_id, room_id)
    config = make_config(tmp_path / "db", allow_registration=True)
    async with serving(nursery, config) as restarted:
        tokens = guest.tokens
        assert tokens is not None
        user = User(
            tokens.user_id, tokens.device_id, tokens.access_token, restarted.client, "localhost"
        )
        response = await sync(user, filter={"room": {"include_leave": True}})
        for _ in range(5):  # long-polls, each woken by news for the guest
            if room_id in response["rooms"]["leave"]:
                break
            response = await sync(user, since=response["next_batch"], timeout=10000)
        assert room_id in response["rooms"]["leave"]
