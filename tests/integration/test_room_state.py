"""Room state over HTTP: set and read state, members, joined members, canonical alias.

Spec: `content/client-server-api/_index.md`, "Room state" ("Getting state
of a room", "Sending state events"), `data/api/client-server/room_state.yaml`
(`PUT /rooms/{roomId}/state/{eventType}/{stateKey}`), `rooms.yaml` (`GET
/rooms/{roomId}/state`, `.../state/{eventType}/{stateKey}`, `.../members`
with `at`, `membership`, `not_membership`, `.../joined_members`), power
levels in `content/rooms/fragments/v*-auth-rules.md`, and the
`m.room.canonical_alias` event's server rules in "Room aliases" (every
alias must exist and point to the room: 400 `M_BAD_ALIAS`).
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
    state_of,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()


async def full_state(user: User, room_id: str):
    return await user.get(f"/rooms/{path_part(room_id)}/state")


async def members(user: User, room_id: str, **params) -> list[dict]:
    return ok(await user.get(f"/rooms/{path_part(room_id)}/members", **params))["chunk"]


def member_ids(chunk: list[dict]) -> set[str]:
    return {event["state_key"] for event in chunk}


# ---- setting and reading one state event


async def test_state_event_set_is_read_back(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    event_id = await alice.set_state(room_id, "m.room.name", {"name": "Kitchen"})
    assert ok(await alice.get_state(room_id, "m.room.name")) == {"name": "Kitchen"}
    as_event = ok(
        await alice.get(f"/rooms/{path_part(room_id)}/state/m.room.name/", format="event")
    )
    assert as_event["event_id"] == event_id
    assert as_event["state_key"] == ""
    assert as_event["content"] == {"name": "Kitchen"}


async def test_state_key_may_contain_slashes_and_colons(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    key = "org.example/a:b/c"
    await alice.set_state(room_id, "org.example.thing", {"v": 1}, state_key=key)
    assert ok(await alice.get_state(room_id, "org.example.thing", key)) == {"v": 1}


async def test_state_with_an_empty_key_is_reachable_without_the_trailing_slash(
    server: SharedServer,
):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(f"/rooms/{path_part(room_id)}/state/m.room.topic", {"topic": "t"}))
    assert ok(await alice.get(f"/rooms/{path_part(room_id)}/state/m.room.topic")) == {"topic": "t"}


async def test_newer_state_replaces_older(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    first = await alice.set_state(room_id, "m.room.topic", {"topic": "one"})
    await alice.set_state(room_id, "m.room.topic", {"topic": "two"})
    assert ok(await alice.get_state(room_id, "m.room.topic")) == {"topic": "two"}
    event = ok(await alice.get(f"/rooms/{path_part(room_id)}/state/m.room.topic", format="event"))
    assert event["unsigned"]["replaces_state"] == first
    assert event["unsigned"]["prev_content"] == {"topic": "one"}


async def test_setting_identical_state_again_returns_the_same_event(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    first = await alice.set_state(room_id, "m.room.topic", {"topic": "same"})
    again = await alice.set_state(room_id, "m.room.topic", {"topic": "same"})
    assert first == again


async def test_missing_state_is_404(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    assert_error(await alice.get_state(room_id, "m.room.avatar"), 404, "M_NOT_FOUND")


async def test_state_content_must_be_an_object(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    assert_error(await alice.put_state(room_id, "m.room.topic", ["x"]), 400, "M_BAD_JSON")


# ---- who may change state


async def test_user_without_power_cannot_change_the_name(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2, name="Original")
    response = await bob.put_state(room_id, "m.room.name", {"name": "Hijacked"})
    assert_error(response, 403, "M_FORBIDDEN")
    assert ok(await alice.get_state(room_id, "m.room.name")) == {"name": "Original"}


async def test_user_given_power_can_change_the_name(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    levels = ok(await alice.get_state(room_id, "m.room.power_levels"))
    levels["users"][bob.user_id] = 50
    await alice.set_state(room_id, "m.room.power_levels", levels)
    await bob.set_state(room_id, "m.room.name", {"name": "By Bob"})
    assert ok(await alice.get_state(room_id, "m.room.name")) == {"name": "By Bob"}


async def test_user_cannot_raise_their_own_power_level(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    levels = ok(await bob.get_state(room_id, "m.room.power_levels"))
    levels["users"][bob.user_id] = 100
    response = await bob.put_state(room_id, "m.room.power_levels", levels)
    assert_error(response, 403, "M_FORBIDDEN")
    current = ok(await alice.get_state(room_id, "m.room.power_levels"))
    assert bob.user_id not in current["users"]


async def test_user_cannot_set_another_users_member_state_directly(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    response = await bob.put_state(room_id, "m.room.member", {"membership": "leave"}, alice.user_id)
    assert_error(response, 403, "M_FORBIDDEN")


async def test_custom_state_needs_state_default(server: SharedServer):
    room_id, (_alice, bob) = await room_with_members(server, 2)
    response = await bob.put_state(room_id, "org.example.config", {"on": True})
    assert_error(response, 403, "M_FORBIDDEN")


async def test_non_member_cannot_set_state(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    response = await bob.put_state(room_id, "m.room.topic", {"topic": "outsider"})
    assert_error(response, 403, "M_FORBIDDEN")


# ---- the whole state


async def test_full_state_holds_one_event_per_type_and_key(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2, name="Hall")
    await alice.set_state(room_id, "m.room.topic", {"topic": "first"})
    await alice.set_state(room_id, "m.room.topic", {"topic": "second"})
    state = ok(await full_state(alice, room_id))
    keys = [(event["type"], event["state_key"]) for event in state]
    assert len(keys) == len(set(keys))
    assert state_of(state, "m.room.topic")["content"]["topic"] == "second"
    assert state_of(state, "m.room.name")["content"] == {"name": "Hall"}
    assert state_of(state, "m.room.member", bob.user_id)["content"]["membership"] == "join"
    assert all(event["room_id"] == room_id for event in state)


async def test_non_member_cannot_read_the_state_of_a_private_room(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(name="Secret name")
    response = await full_state(bob, room_id)
    assert_error(response, 403, "M_FORBIDDEN")
    assert "Secret name" not in response.text
    assert_error(await bob.get_state(room_id, "m.room.name"), 403, "M_FORBIDDEN")


async def test_state_of_an_unknown_room_is_403(server: SharedServer):
    alice = await register(server)
    assert_error(await full_state(alice, "!unknown:localhost"), 403, "M_FORBIDDEN")


async def test_former_member_sees_the_state_as_it_was_when_they_left(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2, name="Before")
    await bob.leave(room_id)
    await alice.set_state(room_id, "m.room.name", {"name": "After"})
    assert ok(await bob.get_state(room_id, "m.room.name")) == {"name": "Before"}
    state = ok(await full_state(bob, room_id))
    assert state_of(state, "m.room.name")["content"] == {"name": "Before"}
    assert state_of(state, "m.room.member", bob.user_id)["content"]["membership"] == "leave"


# ---- /members and /joined_members


async def test_members_lists_every_membership(server: SharedServer):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    dave = await register(server)
    await alice.invite(room_id, dave)
    await carol.leave(room_id)
    chunk = await members(alice, room_id)
    by_user = {event["state_key"]: event["content"]["membership"] for event in chunk}
    assert by_user == {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "leave",
        dave.user_id: "invite",
    }
    assert all(event["type"] == "m.room.member" for event in chunk)


async def test_members_filtered_by_membership_and_not_membership(server: SharedServer):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    await carol.leave(room_id)
    assert member_ids(await members(alice, room_id, membership="join")) == {
        alice.user_id,
        bob.user_id,
    }
    assert member_ids(await members(alice, room_id, not_membership="join")) == {carol.user_id}
    assert member_ids(await members(alice, room_id, not_membership="leave")) == {
        alice.user_id,
        bob.user_id,
    }


async def test_members_at_a_token_gives_the_members_of_that_moment(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    token = ok(await alice.messages(room_id, dir="b", limit=1))["start"]
    carol = await register(server)
    await carol.join(room_id)
    await bob.leave(room_id)
    then = await members(alice, room_id, at=token)
    assert {e["state_key"]: e["content"]["membership"] for e in then} == {
        alice.user_id: "join",
        bob.user_id: "join",
    }
    now = await members(alice, room_id)
    assert carol.user_id in member_ids(now)


@pytest.mark.parametrize(
    "params",
    [{"membership": "joined"}, {"not_membership": "x"}, {"at": "not-a-token"}],
    ids=["bad-membership", "bad-not-membership", "bad-at"],
)
async def test_members_with_bad_parameters_is_400(server: SharedServer, params: dict):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.get(f"/rooms/{path_part(room_id)}/members", **params)
    assert response.status_code == 400


async def test_non_member_cannot_list_the_members_of_a_private_room(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room()
    response = await bob.get(f"/rooms/{path_part(room_id)}/members")
    assert_error(response, 403, "M_FORBIDDEN")
    assert alice.user_id not in response.text


async def test_joined_members_gives_profiles_of_joined_users_only(server: SharedServer):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    ok(await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Bob"}))
    avatar = "mxc://localhost/bob"
    ok(await bob.put(f"/profile/{bob.user_id}/avatar_url", {"avatar_url": avatar}))
    await carol.leave(room_id)
    joined = ok(await alice.get(f"/rooms/{path_part(room_id)}/joined_members"))["joined"]
    assert set(joined) == {alice.user_id, bob.user_id}
    assert joined[bob.user_id] == {"display_name": "Bob", "avatar_url": avatar}


async def test_non_member_cannot_list_joined_members(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room()
    response = await bob.get(f"/rooms/{path_part(room_id)}/joined_members")
    assert_error(response, 403, "M_FORBIDDEN")


# ---- m.room.canonical_alias


async def add_alias(user: User, alias: str, room_id: str) -> None:
    ok(await user.put(f"/directory/room/{path_part(alias)}", {"room_id": room_id}))


async def test_canonical_alias_pointing_to_the_room_is_accepted(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    await add_alias(alice, "#canon:localhost", room_id)
    await add_alias(alice, "#alt:localhost", room_id)
    content = {"alias": "#canon:localhost", "alt_aliases": ["#alt:localhost"]}
    await alice.set_state(room_id, "m.room.canonical_alias", content)
    assert ok(await alice.get_state(room_id, "m.room.canonical_alias")) == content


async def test_canonical_alias_that_does_not_exist_is_400_bad_alias(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.put_state(
        room_id, "m.room.canonical_alias", {"alias": "#nope:localhost"}
    )
    assert_error(response, 400, "M_BAD_ALIAS")
    assert_error(await alice.get_state(room_id, "m.room.canonical_alias"), 404, "M_NOT_FOUND")


async def test_canonical_alias_of_another_room_is_400_bad_alias(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    other = await alice.create_room(room_alias_name="elsewhere")
    response = await alice.put_state(
        room_id, "m.room.canonical_alias", {"alias": "#elsewhere:localhost"}
    )
    assert_error(response, 400, "M_BAD_ALIAS")
    assert other != room_id


async def test_alt_alias_that_does_not_point_here_is_400_bad_alias(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room(room_alias_name="mainalias")
    response = await alice.put_state(
        room_id,
        "m.room.canonical_alias",
        {"alias": "#mainalias:localhost", "alt_aliases": ["#missing:localhost"]},
    )
    assert_error(response, 400, "M_BAD_ALIAS")


@pytest.mark.parametrize(
    "content",
    [{"alias": "not-an-alias"}, {"alt_aliases": "#a:localhost"}, {"alt_aliases": [5]}],
    ids=["malformed-alias", "alt-aliases-not-a-list", "alt-alias-not-a-string"],
)
async def test_malformed_canonical_alias_is_400_invalid_param(server: SharedServer, content: dict):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.put_state(room_id, "m.room.canonical_alias", content)
    assert_error(response, 400, "M_INVALID_PARAM")


async def test_canonical_alias_can_be_cleared(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room(room_alias_name="clearme")
    await alice.set_state(room_id, "m.room.canonical_alias", {})
    assert ok(await alice.get_state(room_id, "m.room.canonical_alias")) == {}
