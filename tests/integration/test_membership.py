"""Room membership over HTTP: join, invite, leave, forget, kick, ban, unban, knock.

Spec: `content/client-server-api/_index.md`, "Room membership" ("Joining
rooms", "Knocking on rooms" (room versions 7+), "Restricted rooms" (8+),
"Leaving rooms", "Banning users in a room") and the OpenAPI of
`joining.yaml` (`/join/{roomIdOrAlias}`, `/rooms/{roomId}/join`),
`inviting.yaml`, `leaving.yaml` (`/leave`, `/forget`), `kicking.yaml`,
`banning.yaml`, `knocking.yaml`, `joined_rooms.yaml`; the membership rules
of `content/rooms/fragments/v*-auth-rules.md`; and, for profile changes
reaching rooms, "Events on change of profile information".
"""

from __future__ import annotations

import pytest

from tests.support.matrix import (
    User,
    assert_error,
    ok,
    path_part,
    register,
    register_many,
    room_with_members,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()


async def membership_of(viewer: User, room_id: str, user: User) -> str | None:
    response = await viewer.get_state(room_id, "m.room.member", user.user_id)
    if response.status_code == 404:
        return None
    return ok(response)["membership"]


async def member_event(viewer: User, room_id: str, user: User) -> dict:
    return ok(await viewer.get_state(room_id, "m.room.member", user.user_id))


# ---- joining


async def test_join_public_room_by_id(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    assert await bob.join(room_id) == room_id
    assert await membership_of(alice, room_id, bob) == "join"
    assert room_id in await bob.joined_rooms()


async def test_join_by_alias_answers_the_room_id(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat", room_alias_name="joinme")
    assert await bob.join("#joinme:localhost") == room_id
    assert await membership_of(alice, room_id, bob) == "join"


async def test_rooms_room_id_join_endpoint_joins(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    answer = ok(await bob.post(f"/rooms/{path_part(room_id)}/join"))
    assert answer == {"room_id": room_id}
    assert await bob.joined_rooms() == [room_id]


async def test_join_reason_is_kept_in_the_member_event(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    ok(await bob.post(f"/join/{path_part(room_id)}", {"reason": "saying hi"}))
    assert (await member_event(alice, room_id, bob))["reason"] == "saying hi"


async def test_join_unknown_alias_is_404(server: SharedServer):
    bob = await register(server)
    response = await bob.post(f"/join/{path_part('#nowhere:localhost')}")
    assert_error(response, 404, "M_NOT_FOUND")


async def test_join_unknown_room_is_404(server: SharedServer):
    bob = await register(server)
    response = await bob.post(f"/join/{path_part('!unknown:localhost')}")
    assert_error(response, 404, "M_NOT_FOUND")


async def test_join_something_that_is_not_a_room_id_or_alias_is_400(server: SharedServer):
    bob = await register(server)
    response = await bob.post("/join/not-a-room")
    assert response.status_code == 400


async def test_invite_only_room_cannot_be_joined_uninvited(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="private_chat")
    response = await bob.post(f"/join/{path_part(room_id)}")
    assert_error(response, 403, "M_FORBIDDEN")
    assert await bob.joined_rooms() == []


async def test_joining_twice_keeps_the_user_joined(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await bob.join(room_id)
    assert await bob.joined_rooms() == [room_id]


# ---- inviting


async def test_invited_user_can_join_an_invite_only_room(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob)
    assert await membership_of(alice, room_id, bob) == "invite"
    await bob.join(room_id)
    assert await membership_of(alice, room_id, bob) == "join"


async def test_invite_reason_is_kept(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room()
    ok(await alice.membership_action(room_id, "invite", bob, reason="come along"))
    assert (await member_event(alice, room_id, bob))["reason"] == "come along"


async def test_inviting_a_user_who_does_not_exist_is_404(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.membership_action(room_id, "invite", "@ghost:localhost")
    assert_error(response, 404, "M_NOT_FOUND")


async def test_inviting_an_invalid_user_id_is_400(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.membership_action(room_id, "invite", "not a user")
    assert response.status_code == 400


async def test_inviting_a_member_is_403(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    response = await alice.membership_action(room_id, "invite", bob)
    assert_error(response, 403, "M_FORBIDDEN")


async def test_non_member_cannot_invite(server: SharedServer):
    alice, bob, carol = await register_many(server, 3)
    room_id = await alice.create_room(preset="public_chat")
    response = await bob.membership_action(room_id, "invite", carol)
    assert_error(response, 403, "M_FORBIDDEN")


async def test_member_below_the_invite_level_cannot_invite(server: SharedServer):
    alice, bob, carol = await register_many(server, 3)
    room_id = await alice.create_room(
        preset="public_chat", power_level_content_override={"invite": 50}
    )
    await bob.join(room_id)
    response = await bob.membership_action(room_id, "invite", carol)
    assert_error(response, 403, "M_FORBIDDEN")
    assert await membership_of(alice, room_id, carol) is None


async def test_invite_is_declined_by_leaving(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    await bob.leave(room_id)
    assert await membership_of(alice, room_id, bob) == "leave"
    response = await bob.post(f"/join/{path_part(room_id)}")
    assert_error(response, 403, "M_FORBIDDEN")


async def test_invite_can_be_withdrawn_by_a_kick(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    ok(await alice.membership_action(room_id, "kick", bob))
    assert await membership_of(alice, room_id, bob) == "leave"


# ---- leaving and forgetting


async def test_leave_removes_the_room_from_joined_rooms(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await bob.leave(room_id)
    assert await bob.joined_rooms() == []
    assert await membership_of(alice, room_id, bob) == "leave"


async def test_leave_reason_is_kept(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await bob.post(f"/rooms/{path_part(room_id)}/leave", {"reason": "bye"}))
    assert (await member_event(alice, room_id, bob))["reason"] == "bye"


async def test_leaving_a_room_one_is_not_in_is_403(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    response = await bob.post(f"/rooms/{path_part(room_id)}/leave")
    assert_error(response, 403, "M_FORBIDDEN")


async def test_left_user_can_rejoin_a_public_room(server: SharedServer):
    room_id, (_, bob) = await room_with_members(server, 2)
    await bob.leave(room_id)
    await bob.join(room_id)
    assert await bob.joined_rooms() == [room_id]


async def test_forget_before_leaving_is_400(server: SharedServer):
    room_id, (_, bob) = await room_with_members(server, 2)
    response = await bob.post(f"/rooms/{path_part(room_id)}/forget")
    assert response.status_code == 400
    assert await bob.joined_rooms() == [room_id]


async def test_forgotten_room_history_is_no_longer_readable(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await alice.send(room_id, "while bob was here")
    await bob.leave(room_id)
    ok(await bob.messages(room_id))  # a left member still reads what they saw
    ok(await bob.post(f"/rooms/{path_part(room_id)}/forget"))
    assert_error(await bob.messages(room_id), 403, "M_FORBIDDEN")


# ---- kicking


async def test_moderator_can_kick_a_member(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.membership_action(room_id, "kick", bob, reason="spam"))
    event = await member_event(alice, room_id, bob)
    assert event == {"membership": "leave", "reason": "spam"}
    assert await bob.joined_rooms() == []


async def test_kicked_user_can_rejoin_a_public_room(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.membership_action(room_id, "kick", bob))
    await bob.join(room_id)
    assert await membership_of(alice, room_id, bob) == "join"


async def test_member_without_power_cannot_kick(server: SharedServer):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    response = await bob.membership_action(room_id, "kick", carol)
    assert_error(response, 403, "M_FORBIDDEN")
    assert await membership_of(alice, room_id, carol) == "join"


async def test_member_cannot_kick_someone_with_more_power(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(
        server, 2, power_level_content_override={"kick": 0}
    )
    response = await bob.membership_action(room_id, "kick", alice)
    assert_error(response, 403, "M_FORBIDDEN")


async def test_kicking_someone_not_in_the_room_is_403(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room()
    response = await alice.membership_action(room_id, "kick", bob)
    assert_error(response, 403, "M_FORBIDDEN")


# ---- banning


async def test_banned_user_is_removed_and_cannot_rejoin(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.membership_action(room_id, "ban", bob, reason="trouble"))
    assert await member_event(alice, room_id, bob) == {"membership": "ban", "reason": "trouble"}
    assert await bob.joined_rooms() == []
    response = await bob.post(f"/join/{path_part(room_id)}")
    assert_error(response, 403, "M_FORBIDDEN")
    assert await membership_of(alice, room_id, bob) == "ban"


async def test_banned_user_cannot_be_invited(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.membership_action(room_id, "ban", bob))
    response = await alice.membership_action(room_id, "invite", bob)
    assert_error(response, 403, "M_FORBIDDEN")


async def test_a_user_who_never_joined_can_be_banned_in_advance(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    ok(await alice.membership_action(room_id, "ban", bob))
    assert_error(await bob.post(f"/join/{path_part(room_id)}"), 403, "M_FORBIDDEN")


async def test_member_without_power_cannot_ban(server: SharedServer):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    response = await bob.membership_action(room_id, "ban", carol)
    assert_error(response, 403, "M_FORBIDDEN")
    assert await membership_of(alice, room_id, carol) == "join"


async def test_unbanned_user_can_join_again(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.membership_action(room_id, "ban", bob))
    ok(await alice.membership_action(room_id, "unban", bob))
    assert await membership_of(alice, room_id, bob) == "leave"
    await bob.join(room_id)
    assert await membership_of(alice, room_id, bob) == "join"


async def test_unbanning_someone_not_banned_is_403(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    response = await alice.membership_action(room_id, "unban", bob)
    assert_error(response, 403, "M_FORBIDDEN")
    assert await membership_of(alice, room_id, bob) == "join"


async def test_member_without_power_cannot_unban(server: SharedServer):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    ok(await alice.membership_action(room_id, "ban", carol))
    response = await bob.membership_action(room_id, "unban", carol)
    assert_error(response, 403, "M_FORBIDDEN")
    assert await membership_of(alice, room_id, carol) == "ban"


async def test_banned_user_cannot_unban_themselves_by_leaving(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.membership_action(room_id, "ban", bob))
    response = await bob.post(f"/rooms/{path_part(room_id)}/leave")
    assert response.status_code == 403
    assert await membership_of(alice, room_id, bob) == "ban"


# ---- knocking (room versions 7+)


async def knock(user: User, room_id: str, **body) -> object:
    return await user.post(f"/knock/{path_part(room_id)}", body)


async def test_knock_on_a_knock_room_then_get_invited_and_join(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    assert ok(await knock(bob, room_id, reason="let me in")) == {"room_id": room_id}
    event = await member_event(alice, room_id, bob)
    assert event["membership"] == "knock"
    assert event["reason"] == "let me in"
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    assert await membership_of(alice, room_id, bob) == "join"


async def test_knock_by_alias(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(
        room_version="7",
        room_alias_name="knockknock",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    assert ok(await knock(bob, "#knockknock:localhost")) == {"room_id": room_id}
    assert await membership_of(alice, room_id, bob) == "knock"


async def test_knocking_user_cannot_just_join(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    ok(await knock(bob, room_id))
    assert_error(await bob.post(f"/join/{path_part(room_id)}"), 403, "M_FORBIDDEN")


async def test_knock_can_be_withdrawn_by_leaving(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    ok(await knock(bob, room_id))
    await bob.leave(room_id)
    assert await membership_of(alice, room_id, bob) == "leave"


async def test_knock_on_an_invite_only_room_is_403(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(room_version="10", preset="private_chat")
    assert_error(await knock(bob, room_id), 403, "M_FORBIDDEN")


async def test_knock_in_a_room_version_before_7_is_403(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(room_version="6")
    assert_error(await knock(bob, room_id), 403, "M_FORBIDDEN")


async def test_banned_user_cannot_knock(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    ok(await alice.membership_action(room_id, "ban", bob))
    assert_error(await knock(bob, room_id), 403, "M_FORBIDDEN")


# ---- restricted rooms (room versions 8+)


async def restricted_room(owner: User, version: str, allowed_room: str, rule="restricted") -> str:
    return await owner.create_room(
        room_version=version,
        initial_state=[
            {
                "type": "m.room.join_rules",
                "content": {
                    "join_rule": rule,
                    "allow": [{"type": "m.room_membership", "room_id": allowed_room}],
                },
            }
        ],
    )


@pytest.mark.parametrize("version", ["8", "10"])
async def test_member_of_an_allowed_room_can_join_a_restricted_room(
    server: SharedServer, version: str
):
    alice, bob = await register_many(server, 2)
    space = await alice.create_room(preset="public_chat")
    await bob.join(space)
    room_id = await restricted_room(alice, version, space)
    await bob.join(room_id)
    event = await member_event(alice, room_id, bob)
    assert event["membership"] == "join"
    assert event["join_authorised_via_users_server"] == alice.user_id


async def test_knock_restricted_room_lets_allowed_members_join_in_v10(server: SharedServer):
    alice, bob = await register_many(server, 2)
    space = await alice.create_room(preset="public_chat")
    await bob.join(space)
    room_id = await restricted_room(alice, "10", space, rule="knock_restricted")
    await bob.join(room_id)
    assert await membership_of(alice, room_id, bob) == "join"


async def test_user_outside_the_allowed_rooms_cannot_join_a_restricted_room(
    server: SharedServer,
):
    alice, bob = await register_many(server, 2)
    space = await alice.create_room(preset="private_chat")
    room_id = await restricted_room(alice, "9", space)
    assert_error(await bob.post(f"/join/{path_part(room_id)}"), 403, "M_FORBIDDEN")
    assert await bob.joined_rooms() == []


async def test_invited_user_joins_a_restricted_room_without_an_authoriser(server: SharedServer):
    alice, bob = await register_many(server, 2)
    space = await alice.create_room(preset="private_chat")
    room_id = await restricted_room(alice, "9", space)
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    event = await member_event(alice, room_id, bob)
    assert event["membership"] == "join"
    assert "join_authorised_via_users_server" not in event


async def test_restricted_join_rule_in_a_v7_room_acts_as_invite_only(server: SharedServer):
    alice, bob = await register_many(server, 2)
    space = await alice.create_room(preset="public_chat")
    await bob.join(space)
    room_id = await restricted_room(alice, "7", space)
    assert_error(await bob.post(f"/join/{path_part(room_id)}"), 403, "M_FORBIDDEN")


# ---- /joined_rooms


async def test_joined_rooms_lists_exactly_the_joined_rooms(server: SharedServer):
    alice, bob = await register_many(server, 2)
    joined = [await alice.create_room(preset="public_chat") for _ in range(3)]
    invited = await bob.create_room()
    await bob.invite(invited, alice)
    left = await bob.create_room(preset="public_chat")
    await alice.join(left)
    await alice.leave(left)
    assert sorted(await alice.joined_rooms()) == sorted(joined)


async def test_joined_rooms_needs_an_access_token(server: SharedServer):
    response = await server.client.get("/_matrix/client/v3/joined_rooms")
    assert_error(response, 401, "M_MISSING_TOKEN")


# ---- profile changes reach the rooms


async def test_display_name_change_updates_the_member_event_in_joined_rooms(
    server: SharedServer,
):
    room_id, (alice, bob) = await room_with_members(server, 2)
    other_room = await bob.create_room()
    ok(await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Bobby"}))
    for viewer, room in ((alice, room_id), (bob, other_room)):
        event = await member_event(viewer, room, bob)
        assert event == {"membership": "join", "displayname": "Bobby"}


async def test_avatar_change_updates_the_member_event(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    avatar = "mxc://localhost/abcdef"
    ok(await bob.put(f"/profile/{bob.user_id}/avatar_url", {"avatar_url": avatar}))
    assert (await member_event(alice, room_id, bob))["avatar_url"] == avatar


async def test_profile_change_does_not_touch_rooms_the_user_left(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await bob.leave(room_id)
    ok(await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Gone"}))
    assert await member_event(alice, room_id, bob) == {"membership": "leave"}


async def test_joining_after_a_profile_change_carries_the_new_profile(server: SharedServer):
    alice, bob = await register_many(server, 2)
    ok(await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "B"}))
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    assert (await member_event(alice, room_id, bob))["displayname"] == "B"


async def test_deactivated_user_leaves_rooms_and_declines_invites(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    other_room = await alice.create_room()
    await alice.invite(other_room, bob)
    await server.call(server.services.users.deactivate, bob.user_id)
    members = ok(await alice.get(f"/rooms/{room_id}/joined_members"))["joined"]
    assert bob.user_id not in members
    invite_state = ok(await alice.get(f"/rooms/{other_room}/state/m.room.member/{bob.user_id}"))
    assert invite_state["membership"] == "leave"
