"""Room aliases and the public room directory over HTTP.

Spec: `content/client-server-api/_index.md`, "Room aliases" and "Listing
rooms"; `data/api/client-server/directory.yaml` (`PUT`/`GET`/`DELETE
/directory/room/{roomAlias}`: taken → 409, unknown → 404; `GET
/rooms/{roomId}/aliases`: members only), `list_public_rooms.yaml` (`GET`/`PUT
/directory/list/room/{roomId}`, `GET`/`POST /publicRooms` with `limit`,
`since` and `filter.generic_search_term`, the PublishedRoomsChunk fields).

Rooms are published on a server shared by the whole module, so directory
tests find their own rooms by a search term unique to the test.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.matrix import (
    CLIENT_V3,
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

_unique = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_unique)}"


def alias_path(alias: str) -> str:
    return f"/directory/room/{path_part(alias)}"


async def put_alias(user: User, alias: str, room_id: str):
    return await user.put(alias_path(alias), {"room_id": room_id})


async def room_aliases(user: User, room_id: str):
    return await user.get(f"/rooms/{path_part(room_id)}/aliases")


# ---- aliases


async def test_alias_resolves_to_its_room_until_deleted(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    alias = f"#{unique('kitchen')}:localhost"
    ok(await put_alias(alice, alias, room_id))
    resolved = ok(await alice.get(alias_path(alias)))
    assert resolved == {"room_id": room_id, "servers": ["localhost"]}
    ok(await alice.request("DELETE", alias_path(alias)))
    assert_error(await alice.get(alias_path(alias)), 404, "M_NOT_FOUND")


async def test_alias_with_a_slash_can_be_created_resolved_and_joined(server: SharedServer):
    alice, bob = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    alias = f"#{unique('team/general')}:localhost"
    ok(await put_alias(alice, alias, room_id))
    assert ok(await alice.get(alias_path(alias)))["room_id"] == room_id
    assert await bob.join(alias) == room_id
    ok(await alice.request("DELETE", alias_path(alias)))


async def test_alias_lookup_needs_no_access_token(server: SharedServer):
    alice = await register(server)
    alias = unique("open")
    room_id = await alice.create_room(room_alias_name=alias)
    response = await server.client.get(f"{CLIENT_V3}{alias_path(f'#{alias}:localhost')}")
    assert ok(response)["room_id"] == room_id


async def test_alias_that_exists_cannot_be_created_again(server: SharedServer):
    alice = await register(server)
    first = await alice.create_room()
    second = await alice.create_room()
    alias = f"#{unique('dup')}:localhost"
    ok(await put_alias(alice, alias, first))
    assert_error(await put_alias(alice, alias, second), 409, "M_UNKNOWN")
    assert ok(await alice.get(alias_path(alias)))["room_id"] == first


async def test_only_members_can_give_a_room_an_alias(server: SharedServer):
    alice, mallory = await register_many(server, 2)
    room_id = await alice.create_room(preset="public_chat")
    alias = f"#{unique('hijack')}:localhost"
    assert_error(await put_alias(mallory, alias, room_id), 403, "M_FORBIDDEN")
    assert_error(await alice.get(alias_path(alias)), 404, "M_NOT_FOUND")


async def test_alias_on_another_server_cannot_be_created_here(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await put_alias(alice, "#room:elsewhere.example", room_id)
    assert response.status_code == 400


@pytest.mark.parametrize("alias", ["no-hash:localhost", "#no-server"])
async def test_malformed_alias_is_400(server: SharedServer, alias: str):
    alice = await register(server)
    room_id = await alice.create_room()
    assert (await put_alias(alice, alias, room_id)).status_code == 400
    assert (await alice.get(alias_path(alias))).status_code == 400


async def test_deleting_an_unknown_alias_is_404(server: SharedServer):
    alice = await register(server)
    response = await alice.request("DELETE", alias_path(f"#{unique('ghost')}:localhost"))
    assert_error(response, 404, "M_NOT_FOUND")


async def test_member_without_power_cannot_delete_someone_elses_alias(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    alias = f"#{unique('keep')}:localhost"
    ok(await put_alias(alice, alias, room_id))
    assert_error(await bob.request("DELETE", alias_path(alias)), 403, "M_FORBIDDEN")
    assert ok(await bob.get(alias_path(alias)))["room_id"] == room_id


async def test_alias_creator_can_delete_their_alias_without_power(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    alias = f"#{unique('bobs')}:localhost"
    ok(await put_alias(bob, alias, room_id))
    ok(await bob.request("DELETE", alias_path(alias)))
    assert_error(await alice.get(alias_path(alias)), 404, "M_NOT_FOUND")


async def test_room_moderator_can_delete_a_members_alias(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    alias = f"#{unique('modded')}:localhost"
    ok(await put_alias(bob, alias, room_id))
    ok(await alice.request("DELETE", alias_path(alias)))
    assert_error(await alice.get(alias_path(alias)), 404, "M_NOT_FOUND")


async def test_room_aliases_lists_the_rooms_local_aliases(server: SharedServer):
    alice = await register(server)
    name = unique("listed")
    room_id = await alice.create_room(room_alias_name=name)
    other = f"#{unique('other')}:localhost"
    ok(await put_alias(alice, other, room_id))
    aliases = ok(await room_aliases(alice, room_id))["aliases"]
    assert sorted(aliases) == sorted([f"#{name}:localhost", other])


async def test_non_member_cannot_list_a_private_rooms_aliases(server: SharedServer):
    alice, mallory = await register_many(server, 2)
    room_id = await alice.create_room(room_alias_name=unique("hidden"))
    response = await room_aliases(mallory, room_id)
    assert_error(response, 403, "M_FORBIDDEN")
    assert "hidden" not in response.text


async def test_anyone_can_list_a_world_readable_rooms_aliases(server: SharedServer):
    alice, reader = await register_many(server, 2)
    name = unique("readable")
    room_id = await alice.create_room(
        room_alias_name=name,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    assert ok(await room_aliases(reader, room_id))["aliases"] == [f"#{name}:localhost"]


# ---- room visibility in the directory


def visibility_path(room_id: str) -> str:
    return f"/directory/list/room/{path_part(room_id)}"


async def test_room_owner_can_publish_and_unpublish_a_room(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    assert ok(await alice.get(visibility_path(room_id))) == {"visibility": "private"}
    ok(await alice.put(visibility_path(room_id), {"visibility": "public"}))
    assert ok(await alice.get(visibility_path(room_id))) == {"visibility": "public"}
    ok(await alice.put(visibility_path(room_id), {"visibility": "private"}))
    assert ok(await alice.get(visibility_path(room_id))) == {"visibility": "private"}


async def test_member_without_power_cannot_publish_a_room(server: SharedServer):
    room_id, (alice, bob) = await room_with_members(server, 2, visibility="private")
    response = await bob.put(visibility_path(room_id), {"visibility": "public"})
    assert_error(response, 403, "M_FORBIDDEN")
    assert ok(await alice.get(visibility_path(room_id))) == {"visibility": "private"}


async def test_visibility_of_an_unknown_room_is_404(server: SharedServer):
    alice = await register(server)
    assert_error(await alice.get(visibility_path("!nope:localhost")), 404, "M_NOT_FOUND")


async def test_bad_visibility_value_is_400(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    response = await alice.put(visibility_path(room_id), {"visibility": "everyone"})
    assert response.status_code == 400


# ---- /publicRooms


async def search(user: User, term: str, **body) -> dict:
    return ok(await user.post("/publicRooms", {"filter": {"generic_search_term": term}, **body}))


async def test_public_room_appears_with_its_summary(server: SharedServer):
    alice, bob = await register_many(server, 2)
    term = unique("summary")
    alias = unique("summaryalias")
    room_id = await alice.create_room(
        visibility="public",
        name=f"Room {term}",
        topic="All about it",
        room_alias_name=alias,
    )
    await bob.join(room_id)
    found = await search(bob, term)
    assert found["total_room_count_estimate"] == 1
    (chunk,) = found["chunk"]
    assert chunk == {
        "room_id": room_id,
        "name": f"Room {term}",
        "topic": "All about it",
        "canonical_alias": f"#{alias}:localhost",
        "num_joined_members": 2,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
    }


async def test_private_rooms_are_not_listed(server: SharedServer):
    alice = await register(server)
    term = unique("private")
    await alice.create_room(name=f"Room {term}")
    assert (await search(alice, term))["chunk"] == []


async def test_unpublished_room_leaves_the_list(server: SharedServer):
    alice = await register(server)
    term = unique("unpublish")
    room_id = await alice.create_room(visibility="public", name=term)
    assert len((await search(alice, term))["chunk"]) == 1
    ok(await alice.put(visibility_path(room_id), {"visibility": "private"}))
    assert (await search(alice, term))["chunk"] == []


async def test_public_rooms_are_listed_without_an_access_token(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room(visibility="public", name=unique("anon"))
    listed = ok(await server.client.get(f"{CLIENT_V3}/publicRooms"))
    assert room_id in {room["room_id"] for room in listed["chunk"]}


async def test_searching_public_rooms_needs_an_access_token(server: SharedServer):
    response = await server.client.post(f"{CLIENT_V3}/publicRooms", json={})
    assert_error(response, 401, "M_MISSING_TOKEN")


async def test_public_rooms_are_paginated_with_limit_and_since(server: SharedServer):
    alice = await register(server)
    term = unique("paged")
    room_ids = {await alice.create_room(visibility="public", name=f"{term} {n}") for n in range(5)}
    seen: list[str] = []
    since = None
    pages = 0
    while True:
        body = {"limit": 2}
        if since is not None:
            body["since"] = since
        page = await search(alice, term, **body)
        pages += 1
        assert len(page["chunk"]) <= 2
        assert page["total_room_count_estimate"] == 5
        seen.extend(room["room_id"] for room in page["chunk"])
        if pages > 1:
            assert "prev_batch" in page
        since = page.get("next_batch")
        if since is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(room_ids)


async def test_get_public_rooms_honours_limit_and_since(server: SharedServer):
    alice = await register(server)
    for _ in range(3):
        await alice.create_room(visibility="public", name=unique("getpaged"))
    first = ok(await alice.get("/publicRooms", limit=2))
    assert len(first["chunk"]) == 2
    second = ok(await alice.get("/publicRooms", limit=2, since=first["next_batch"]))
    first_ids = {room["room_id"] for room in first["chunk"]}
    assert not first_ids & {room["room_id"] for room in second["chunk"]}


async def test_bigger_rooms_are_listed_first(server: SharedServer):
    alice, bob, carol = await register_many(server, 3)
    term = unique("size")
    small = await alice.create_room(visibility="public", name=f"{term} small")
    big = await alice.create_room(visibility="public", name=f"{term} big")
    await bob.join(big)
    await carol.join(big)
    found = await search(alice, term)
    assert [room["room_id"] for room in found["chunk"]] == [big, small]


async def test_search_matches_topic_and_alias_case_insensitively(server: SharedServer):
    alice = await register(server)
    term = unique("needle")
    by_topic = await alice.create_room(visibility="public", topic=f"Has the {term.upper()}")
    by_alias = await alice.create_room(visibility="public", room_alias_name=term + "x")
    found = await search(alice, term)
    assert {room["room_id"] for room in found["chunk"]} == {by_topic, by_alias}


@pytest.mark.parametrize("params", [{"limit": "many"}, {"since": "garbage"}])
async def test_bad_public_rooms_parameters_are_400(server: SharedServer, params: dict):
    alice = await register(server)
    assert (await alice.get("/publicRooms", **params)).status_code == 400
