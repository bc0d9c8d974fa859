"""`GET /room_summary/{roomIdOrAlias}`: a room's summary, to whom it may be shown.

Spec: `content/client-server-api/_index.md` "Room Summaries",
`data/api/client-server/room_summary.yaml` (v1.15, MSC3266), and its
`RoomSummary` definition: members and invited users see the room; anyone
(without an access token too) sees world-readable, public and knockable
rooms; a restricted room is shown to members of a room its join rule allows;
everyone else gets 404 `M_NOT_FOUND`, as for a room that does not exist.
Also under MSC3266's `/rooms/{roomIdOrAlias}/summary` and the unstable
`im.nheko.summary` paths.
"""

from __future__ import annotations

import pytest

from tests.support.matrix import CLIENT_V1, assert_error, ok, path_part, register
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

PATHS = [
    ("/_matrix/client/v1", "/room_summary/{}"),
    ("/_matrix/client/v1", "/rooms/{}/summary"),
    ("/_matrix/client/unstable", "/im.nheko.summary/rooms/{}/summary"),
    ("/_matrix/client/unstable", "/im.nheko.summary/summary/{}"),
]


async def summary_of(user, room_id_or_alias: str, prefix: str = CLIENT_V1, rule: str = PATHS[0][1]):
    return await user.request("GET", rule.format(path_part(room_id_or_alias)), prefix=prefix)


async def private_room(owner, **extra) -> str:
    return await owner.create_room(
        preset="private_chat",
        name="Cheese",
        topic="Tasty cheese",
        initial_state=[
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
            *extra.pop("initial_state", []),
        ],
        **extra,
    )


@pytest.mark.parametrize(("prefix", "rule"), PATHS)
async def test_a_member_gets_the_summary_with_their_membership(server, prefix, rule):
    alice = await register(server)
    room_id = await private_room(alice, room_version="10")

    summary = ok(await summary_of(alice, room_id, prefix, rule))

    assert summary == {
        "room_id": room_id,
        "name": "Cheese",
        "topic": "Tasty cheese",
        "num_joined_members": 1,
        "world_readable": False,
        "guest_can_join": True,  # the private_chat preset lets guests join
        "join_rule": "invite",
        "room_version": "10",
        "encryption": "m.megolm.v1.aes-sha2",
        "membership": "join",
    }


async def test_an_invited_user_sees_the_room_a_stranger_gets_404(server):
    alice, bob, eve = await register(server), await register(server), await register(server)
    room_id = await private_room(alice)
    await alice.invite(room_id, bob)

    assert ok(await summary_of(bob, room_id))["membership"] == "invite"
    assert_error(await summary_of(eve, room_id), 404, "M_NOT_FOUND")
    assert_error(await summary_of(eve, "!nosuchroom:localhost"), 404, "M_NOT_FOUND")


async def test_without_a_token_only_rooms_anyone_may_peek_at(server):
    alice = await register(server)
    public = await alice.create_room(preset="public_chat", name="Open")
    private = await private_room(alice)

    anonymous = await server.client.get(f"{CLIENT_V1}/room_summary/{path_part(public)}")
    hidden = await server.client.get(f"{CLIENT_V1}/room_summary/{path_part(private)}")

    answer = ok(anonymous)
    assert answer["name"] == "Open"
    assert answer["join_rule"] == "public"
    assert "membership" not in answer
    assert_error(hidden, 404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    "state",
    [
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}},
        {"type": "m.room.join_rules", "content": {"join_rule": "knock"}},
    ],
    ids=["world_readable", "knock"],
)
async def test_world_readable_and_knockable_rooms_are_shown_to_anyone(server, state):
    alice, eve = await register(server), await register(server)
    room_id = await private_room(alice, room_version="10", initial_state=[state])

    summary = ok(await summary_of(eve, room_id))

    assert summary["room_id"] == room_id
    assert summary["membership"] == "leave"


async def test_a_restricted_room_is_shown_to_members_of_the_allowed_room(server):
    alice, bob, eve = await register(server), await register(server), await register(server)
    space = await alice.create_room(preset="public_chat")
    await bob.join(space)
    allow = [{"type": "m.room_membership", "room_id": space}]
    room_id = await private_room(
        alice,
        room_version="10",
        initial_state=[
            {"type": "m.room.join_rules", "content": {"join_rule": "restricted", "allow": allow}}
        ],
    )

    summary = ok(await summary_of(bob, room_id))

    assert summary["join_rule"] == "restricted"
    assert summary["allowed_room_ids"] == [space]
    assert_error(await summary_of(eve, room_id), 404, "M_NOT_FOUND")


async def test_an_alias_names_the_room_and_bad_names_get_400_or_404(server):
    alice = await register(server)
    localpart = f"cheese-{alice.localpart}"
    room_id = await alice.create_room(preset="public_chat", room_alias_name=localpart)

    assert ok(await summary_of(alice, f"#{localpart}:localhost"))["room_id"] == room_id
    assert_error(await summary_of(alice, "#nothing-here:localhost"), 404, "M_NOT_FOUND")
    assert_error(await summary_of(alice, "cheese"), 400, "M_INVALID_PARAM")


async def test_a_banned_user_sees_ban_as_their_membership(server):
    alice, bob = await register(server), await register(server)
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    ok(await alice.membership_action(room_id, "ban", bob))

    assert ok(await summary_of(bob, room_id))["membership"] == "ban"
