"""Membership between one of our servers and a real Synapse, both directions, over TLS.

Every test runs twice: once with the room on Synapse and the visitor ours
(`synapse_room_our_visitor`), once the other way round. Each side's view is
what its own client API shows through long-poll `/sync`. Synapse 1.163 makes
rooms of version 12 (no server part in the id: joins by id name the server);
ours make version 10. Spec: `content/server-server-api.md` "Joining Rooms",
"Inviting to a room", "Leaving Rooms (Rejecting Invites)";
`content/client-server-api/_index.md` "Room membership".
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.matrix import ok, path_part
from tests.support.synapse_rooms import (
    DIRECTIONS,
    Peers,
    has_bodies,
    has_membership,
    joined,
    shared_room,
    sides,
)

pytestmark = pytest.mark.parametrize("direction", DIRECTIONS)


async def _accounts(both: Peers, direction: str):
    home_side, visitor_side = sides(direction)
    return await both.account_on(home_side), await both.account_on(visitor_side)


async def test_a_user_joins_a_room_of_the_other_server_by_id(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id = await home.create_room(preset="public_chat", name="By id")
    home_sync = home.sync()
    await home_sync.once()

    answer = ok(await visitor.join(room_id, server_name=home.server_name))

    assert answer["room_id"] == room_id
    await home_sync.until(joined(visitor.user_id, room_id))
    visitor_sync = visitor.sync()
    await visitor_sync.until(joined(visitor.user_id, room_id))
    name = [e for e in visitor_sync.state[room_id] if e["type"] == "m.room.name"]
    assert name and name[-1]["content"]["name"] == "By id"


async def test_a_user_joins_a_room_of_the_other_server_by_its_alias(both, direction):
    home, visitor = await _accounts(both, direction)
    local = f"interop{secrets.token_hex(4)}"
    room_id = await home.create_room(preset="public_chat", room_alias_name=local)
    alias = f"#{local}:{home.server_name}"
    home_sync = home.sync()
    await home_sync.once()

    answer = ok(await visitor.join(alias))

    assert answer["room_id"] == room_id
    await home_sync.until(joined(visitor.user_id, room_id))


async def test_an_invited_user_of_the_other_server_accepts_without_naming_a_server(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id = await home.create_room(preset="private_chat", name="Invite only")
    home_sync, visitor_sync = home.sync(), visitor.sync()
    await home_sync.once()
    await visitor_sync.once()

    ok(await home.room_action(room_id, "invite", {"user_id": visitor.user_id}))

    invite_state = await visitor_sync.until(lambda sync: sync.invites.get(room_id))
    member = [e for e in invite_state if e["type"] == "m.room.member"]
    assert any(e["state_key"] == visitor.user_id and e["sender"] == home.user_id for e in member), (
        invite_state
    )
    assert any(e["type"] == "m.room.name" for e in invite_state), invite_state
    await home_sync.until(has_membership(visitor.user_id, room_id, "invite"))
    ok(await visitor.room_action(room_id, "join"))
    await home_sync.until(joined(visitor.user_id, room_id))
    await visitor_sync.until(joined(visitor.user_id, room_id))


async def test_an_invited_user_of_the_other_server_rejects_the_invite(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id = await home.create_room(preset="private_chat")
    home_sync, visitor_sync = home.sync(), visitor.sync()
    await home_sync.once()
    await visitor_sync.once()
    ok(await home.room_action(room_id, "invite", {"user_id": visitor.user_id}))
    await visitor_sync.until(lambda sync: sync.invites.get(room_id))

    ok(await visitor.room_action(room_id, "leave"))

    await home_sync.until(has_membership(visitor.user_id, room_id, "leave"))
    await visitor_sync.until(lambda sync: room_id in sync.left)
    member = ok(await home.state(room_id, "m.room.member", visitor.user_id))
    assert member["membership"] == "leave"


async def test_a_user_of_the_other_server_leaves_and_both_sides_see_it(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)

    ok(await visitor.room_action(room_id, "leave"))

    await home_sync.until(has_membership(visitor.user_id, room_id, "leave"))
    await visitor_sync.until(lambda sync: room_id in sync.left)
    assert room_id not in ok(await visitor.request("GET", "/joined_rooms"))["joined_rooms"]


async def test_a_moderator_kicks_a_user_of_the_other_server(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)

    ok(await home.room_action(room_id, "kick", {"user_id": visitor.user_id, "reason": "out"}))

    kick = await visitor_sync.until(
        lambda sync: room_id in sync.left and sync.member_event(room_id, visitor.user_id, "leave")
    )
    assert kick["sender"] == home.user_id
    assert kick["content"].get("reason") == "out"
    await home_sync.until(has_membership(visitor.user_id, room_id, "leave"))


async def test_a_banned_user_of_the_other_server_cannot_rejoin_until_unbanned(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)

    ok(await home.room_action(room_id, "ban", {"user_id": visitor.user_id, "reason": "spam"}))

    ban = await visitor_sync.until(lambda sync: sync.member_event(room_id, visitor.user_id, "ban"))
    assert ban["sender"] == home.user_id
    refused = await visitor.join(room_id, server_name=home.server_name)
    assert refused.status_code == 403, refused.text
    assert refused.json()["errcode"] == "M_FORBIDDEN"

    ok(await home.room_action(room_id, "unban", {"user_id": visitor.user_id}))

    # The unban goes to no server in the room but the home one (Synapse sends a
    # leave about a user of a server that is not in the room only to rescind an
    # invite), so the visitor learns of it by joining.
    await home_sync.until(has_membership(visitor.user_id, room_id, "leave"))
    ok(await visitor.join(room_id, server_name=home.server_name))
    await home_sync.until(joined(visitor.user_id, room_id))
    await visitor_sync.until(joined(visitor.user_id, room_id))


async def test_a_user_who_left_a_room_of_the_other_server_rejoins_and_talks_again(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)
    ok(await visitor.room_action(room_id, "leave"))
    await home_sync.until(has_membership(visitor.user_id, room_id, "leave"))
    await home.send(room_id, "while you were away")

    ok(await visitor.join(room_id, server_name=home.server_name))

    await home_sync.until(joined(visitor.user_id, room_id))
    await visitor_sync.until(joined(visitor.user_id, room_id))
    await home.send(room_id, "welcome back")
    await visitor_sync.until(has_bodies(room_id, "welcome back"))
    back_id = await visitor.send(room_id, "glad to be back")
    await home_sync.until(lambda sync: sync.event(room_id, back_id))


async def test_a_second_user_of_a_server_already_in_the_room_joins_and_hears_it(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, _ = await shared_room(home, visitor)
    second = await both.account_on(sides(direction)[1])
    second_sync = second.sync()
    await second_sync.once()

    ok(await second.join(room_id, server_name=home.server_name))

    await home_sync.until(joined(second.user_id, room_id))
    await second_sync.until(joined(second.user_id, room_id))
    said = await home.send(room_id, "hello to both of you")
    await second_sync.until(lambda sync: sync.event(room_id, said))
    reply = await second.send(room_id, "hello from the second one")
    await home_sync.until(lambda sync: sync.event(room_id, reply))


async def test_a_restricted_room_admits_a_user_of_the_other_server_only_through_membership(
    both, direction
):
    """v10 `restricted` join rule: the resident server picks an authorising user
    (`join_authorised_via_users_server`) and signs the join (room version 8+)."""
    home, visitor = await _accounts(both, direction)
    space_id = await home.create_room(preset="public_chat", room_version="10")
    rule = {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": space_id}],
    }
    restricted_id = await home.create_room(
        preset="private_chat",
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": rule}],
    )
    home_sync = home.sync()
    await home_sync.once()

    refused = await visitor.join(restricted_id, server_name=home.server_name)
    assert refused.status_code == 403, refused.text
    ok(await visitor.join(space_id, server_name=home.server_name))
    await home_sync.until(joined(visitor.user_id, space_id))
    ok(await visitor.join(restricted_id, server_name=home.server_name))

    await home_sync.until(joined(visitor.user_id, restricted_id))
    join = home_sync.member_event(restricted_id, visitor.user_id, "join")
    assert join["content"].get("join_authorised_via_users_server") == home.user_id


async def test_each_server_shows_the_other_servers_user_profile(both, direction):
    home, visitor = await _accounts(both, direction)
    ok(
        await visitor.request(
            "PUT", f"/profile/{path_part(visitor.user_id)}/displayname", {"displayname": "Vic"}
        )
    )

    profile = await home.request("GET", f"/profile/{path_part(visitor.user_id)}")

    assert ok(profile).get("displayname") == "Vic"
    room_id, home_sync, _ = await shared_room(home, visitor)
    join = home_sync.member_event(room_id, visitor.user_id, "join")
    assert join["content"].get("displayname") == "Vic"


async def test_a_moderator_of_the_other_server_kicks_and_bans_a_user_of_the_rooms_server(
    both, direction
):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)
    local = await both.account_on(sides(direction)[0])
    ok(await local.join(room_id))
    await visitor_sync.until(joined(local.user_id, room_id))
    levels = ok(await home.state(room_id, "m.room.power_levels"))
    levels["users"][visitor.user_id] = 50
    levels_id = ok(await home.put_state(room_id, "m.room.power_levels", levels))["event_id"]
    await visitor_sync.until(lambda sync: sync.event(room_id, levels_id))

    ok(await visitor.room_action(room_id, "kick", {"user_id": local.user_id, "reason": "k"}))

    kick = await home_sync.until(lambda sync: sync.member_event(room_id, local.user_id, "leave"))
    assert kick["sender"] == visitor.user_id
    ok(await visitor.room_action(room_id, "ban", {"user_id": local.user_id}))
    ban = await home_sync.until(lambda sync: sync.member_event(room_id, local.user_id, "ban"))
    assert ban["sender"] == visitor.user_id
    refused = await local.join(room_id)
    assert refused.status_code == 403, refused.text
