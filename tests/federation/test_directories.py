"""Room directories and space hierarchies across two of our servers over TLS.

Spec: `content/server-server-api.md` "Published Room Directory"
(`public_rooms.yaml`: `GET`/`POST /publicRooms`) and "Spaces"
(`space_hierarchy.yaml`: `GET /hierarchy/{roomId}`); the client side,
`list_public_rooms.yaml` (`server` names the directory's server) and
`space_hierarchy.yaml` ("Where a child room is unknown to the local server,
federation is used to fill in the details"). Alice's rooms live on A; bob,
on B, sees them through B.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio

from matrix_conduit.service.federation import public_rooms
from matrix_conduit.service.federation.errors import RemoteError
from tests.support.directories import (
    add_child,
    hierarchy,
    hierarchy_pages,
    list_public_rooms,
    new_space,
    search_every_page,
    search_public_rooms,
)
from tests.support.federation import FederatingServer, serve_https, start_federating
from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.remote_membership import join

PUBLIC_ROOMS = "/_matrix/federation/v1/publicRooms"


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


def unique(word: str) -> str:
    return f"{word}{secrets.token_hex(4)}"


async def publish(user: User, name: str, **create: Any) -> str:
    return await user.create_room(visibility="public", preset="public_chat", name=name, **create)


def ids(answer: dict[str, Any], key: str = "chunk") -> list[str]:
    return [room["room_id"] for room in answer[key]]


# ---- public rooms


async def test_a_user_searches_the_public_rooms_of_another_server(pair):
    """`POST /publicRooms?server=A` on B: A's filtered list, with A's summaries."""
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    term = unique("garden")
    room_id = await publish(alice, f"The {term}", topic="Roses", room_alias_name=term)
    await publish(alice, "Something else")
    space_id = await new_space(alice, f"{term} space", visibility="public")

    answer = ok(await search_public_rooms(bob, {"filter": {"generic_search_term": term}}, a.name))

    assert sorted(ids(answer)) == sorted([room_id, space_id])
    room = next(r for r in answer["chunk"] if r["room_id"] == room_id)
    assert room["name"] == f"The {term}" and room["topic"] == "Roses"
    assert room["canonical_alias"] == f"#{term}:{a.name}"
    assert room["num_joined_members"] == 1 and room["join_rule"] == "public"
    spaces = {"filter": {"generic_search_term": term, "room_types": ["m.space"]}}
    assert ids(ok(await search_public_rooms(bob, spaces, a.name))) == [space_id]


async def test_another_servers_rooms_are_paginated_with_its_own_tokens(pair):
    """`limit` and `since` go to A as they are; every room once, over GET and POST."""
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    term = unique("paged")
    rooms = {await publish(alice, f"{term} {n}") for n in range(5)}

    pages = await search_every_page(bob, a.name, term, limit=2)

    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(room for page in pages for room in page) == sorted(rooms)
    first = ok(await list_public_rooms(bob, server=a.name, limit=3))
    second = ok(await list_public_rooms(bob, server=a.name, limit=3, since=first["next_batch"]))
    assert len(first["chunk"]) == 3 and not set(ids(first)) & set(ids(second))
    assert rooms <= set(ids(first)) | set(ids(second))
    assert first["total_room_count_estimate"] == 5


async def test_the_federation_endpoint_answers_a_signed_get_and_post(pair):
    a, b = pair
    alice = await register(a.server)
    term = unique("direct")
    room_id = await publish(alice, term)
    client = b.federation.client

    listed = await client.request(a.name, "GET", PUBLIC_ROOMS, query={"limit": "0"})
    searched = await client.request(
        a.name, "POST", PUBLIC_ROOMS, body={"filter": {"generic_search_term": term}}
    )
    other_network = await client.request(
        a.name, "GET", PUBLIC_ROOMS, query={"third_party_instance_id": "irc"}
    )

    assert room_id in ids(listed) and ids(searched) == [room_id]
    assert other_network["chunk"] == []  # no bridge publishes rooms here
    with pytest.raises(RemoteError) as raised:
        await client.request(
            a.name,
            "POST",
            PUBLIC_ROOMS,
            body={"include_all_networks": True, "third_party_instance_id": "irc"},
        )
    assert (raised.value.status, raised.value.errcode) == (400, "M_INVALID_PARAM")


async def test_a_server_that_keeps_its_directory_to_itself_answers_403(nursery, ca, tmp_path):
    """`allow_public_rooms_over_federation = false`: 403 `M_FORBIDDEN` for servers,
    and so for the users of other servers."""
    a = await start_federating(
        nursery, ca, tmp_path / "a", "127.0.0.2", allow_public_rooms_over_federation=False
    )
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server), await register(b.server)
    room_id = await publish(alice, unique("private"))

    with pytest.raises(RemoteError) as raised:
        await b.federation.client.request(a.name, "GET", PUBLIC_ROOMS)

    assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")
    assert_error(await list_public_rooms(bob, server=a.name), 403, "M_FORBIDDEN")
    assert_error(await search_public_rooms(bob, {}, a.name), 403, "M_FORBIDDEN")
    assert room_id in ids(ok(await list_public_rooms(alice)))  # its own users still see it


async def test_a_peer_that_is_down_is_a_clear_502(pair):
    a, b = pair
    bob = await register(b.server)
    await a.stop()

    error = assert_error(await list_public_rooms(bob, server=a.name), 502, "M_UNKNOWN")
    assert a.name in error["error"] and "unreachable" in error["error"]
    searched = await search_public_rooms(bob, {"filter": {"generic_search_term": "x"}}, a.name)
    assert a.name in assert_error(searched, 502, "M_UNKNOWN")["error"]
    # asked again at once (A is now backed off for everything else): the same clear answer
    assert_error(await list_public_rooms(bob, server=a.name), 502, "M_UNKNOWN")


async def test_a_peer_that_never_answers_is_a_502_at_the_deadline(
    nursery, ca, tmp_path, monkeypatch
):
    """The client's request is bounded by our deadline, not by the peer."""
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    bob = await register(b.server)

    async def silent(method: str, path: str, body: Any) -> tuple[int, Any]:
        await trio.sleep_forever()
        raise AssertionError("never answers")

    peer = await serve_https(nursery, ca, "127.0.0.12", silent)
    monkeypatch.setattr(public_rooms, "DEADLINE_SECONDS", 1.0)

    error = assert_error(await list_public_rooms(bob, server=peer), 502, "M_UNKNOWN")

    assert peer in error["error"] and "did not answer within 1 s" in error["error"]


async def test_a_peer_without_filtered_search_gets_its_whole_list_filtered_here(
    nursery, ca, tmp_path
):
    """A POST answered 404 `M_UNRECOGNIZED` falls back to the GET, filtered by us; what
    the peer sends is checked: entries without a room id are dropped, wrong types fixed."""
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    bob = await register(b.server)
    requests: list[tuple[str, str]] = []
    rooms = [
        {"room_id": "!tulips:peer", "name": "Tulips", "num_joined_members": 3},
        {"room_id": "!cars:peer", "name": "Cars", "num_joined_members": 9},
        {"name": "No id: Tulip fans"},
        {"room_id": "!odd:peer", "topic": "tulip", "num_joined_members": "many", "name": 5},
    ]

    async def old_peer(method: str, path: str, body: Any) -> tuple[int, Any]:
        requests.append((method, path.split("?")[0]))
        if method == "POST":
            return 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
        return 200, {"chunk": rooms, "total_room_count_estimate": 4}

    peer = await serve_https(nursery, ca, "127.0.0.13", old_peer)

    answer = ok(await search_public_rooms(bob, {"filter": {"generic_search_term": "TULIP"}}, peer))

    assert requests == [("POST", PUBLIC_ROOMS), ("GET", PUBLIC_ROOMS)]
    assert answer["chunk"] == [
        {
            "room_id": "!tulips:peer",
            "name": "Tulips",
            "num_joined_members": 3,
            "world_readable": False,
            "guest_can_join": False,
        },
        {
            "room_id": "!odd:peer",
            "topic": "tulip",
            "num_joined_members": 0,
            "world_readable": False,
            "guest_can_join": False,
        },
    ]


async def test_a_peer_answering_no_room_list_is_a_502(nursery, ca, tmp_path):
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    bob = await register(b.server)

    async def confused(method: str, path: str, body: Any) -> tuple[int, Any]:
        return 200, {"chunk": "not a list"}

    peer = await serve_https(nursery, ca, "127.0.0.14", confused)

    error = assert_error(await list_public_rooms(bob, server=peer), 502, "M_UNKNOWN")
    assert "no room list" in error["error"]


async def test_another_servers_directory_needs_a_login_and_a_server_name(pair):
    """Our own list is open to anyone; relaying to other servers is for our users only."""
    a, b = pair
    anonymous = await b.client.get("/_matrix/client/v3/publicRooms", params={"server": a.name})
    assert_error(anonymous, 401, "M_MISSING_TOKEN")
    bob = await register(b.server)
    assert_error(await list_public_rooms(bob, server="not a server!"), 400, "M_INVALID_PARAM")
    assert ok(await list_public_rooms(bob, server=b.name))["chunk"] == []


# ---- space hierarchies


async def space_on_a(alice: User, a: FederatingServer) -> dict[str, str]:
    """On A: a public space with a public room, a private room, a subspace (holding a
    world-readable invite-only room), and a room restricted to members of `members`."""
    rooms = {"space": await new_space(alice, "Top")}
    rooms["public"] = await alice.create_room(preset="public_chat", name="Lobby")
    rooms["private"] = await alice.create_room(preset="private_chat", name="Secret")
    rooms["subspace"] = await new_space(alice, "Sub")
    rooms["readable"] = await alice.create_room(
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    rooms["members"] = await alice.create_room(preset="public_chat", name="Members")
    rooms["restricted"] = await alice.create_room(
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": rooms["members"]}],
                },
            }
        ],
    )
    await add_child(alice, rooms["space"], rooms["public"], a.name, order="a", suggested=True)
    await add_child(alice, rooms["space"], rooms["private"], a.name, order="b")
    await add_child(alice, rooms["space"], rooms["subspace"], a.name, order="c")
    await add_child(alice, rooms["space"], rooms["restricted"], a.name, order="d")
    await add_child(alice, rooms["subspace"], rooms["readable"], a.name)
    return rooms


async def test_a_user_walks_a_space_of_another_server(pair):
    """B is in none of the rooms: each comes from A's `/hierarchy`; bob sees the rooms
    he may peek at or join (not the private one, nor the restricted one: B has nobody
    in its allowed room)."""
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    rooms = await space_on_a(alice, a)

    answer = ok(await hierarchy(bob, rooms["space"]))

    walked = [rooms["space"], rooms["public"], rooms["subspace"], rooms["readable"]]
    assert ids(answer, "rooms") == walked
    top = answer["rooms"][0]
    assert top["name"] == "Top" and top["room_type"] == "m.space"
    assert [c["state_key"] for c in top["children_state"]] == [
        rooms["public"],
        rooms["private"],
        rooms["subspace"],
        rooms["restricted"],
    ]
    child = top["children_state"][0]
    assert child["type"] == "m.space.child" and child["sender"] == alice.user_id
    assert child["content"]["via"] == [a.name] and isinstance(child["origin_server_ts"], int)
    assert answer["rooms"][1]["name"] == "Lobby" and answer["rooms"][1]["children_state"] == []
    assert answer["rooms"][3]["world_readable"] is True


async def test_a_remote_restricted_room_is_walked_by_a_member_of_its_allowed_room(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    rooms = await space_on_a(alice, a)
    ok(await join(bob, rooms["members"], via=a.name))

    answer = ok(await hierarchy(bob, rooms["space"]))

    assert ids(answer, "rooms") == [
        rooms["space"],
        rooms["public"],
        rooms["subspace"],
        rooms["restricted"],
        rooms["readable"],
    ]
    assert answer["rooms"][3]["allowed_room_ids"] == [rooms["members"]]


async def test_a_remote_space_is_paged_and_its_depth_and_suggestions_kept(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    rooms = await space_on_a(alice, a)

    pages = await hierarchy_pages(bob, rooms["space"], limit=2)
    shallow = ok(await hierarchy(bob, rooms["space"], max_depth=1))
    suggested = ok(await hierarchy(bob, rooms["space"], suggested_only="true"))

    assert pages == [[rooms["space"], rooms["public"]], [rooms["subspace"], rooms["readable"]]]
    assert ids(shallow, "rooms") == [rooms["space"], rooms["public"], rooms["subspace"]]
    assert ids(suggested, "rooms") == [rooms["space"], rooms["public"]]


async def test_a_child_on_another_server_comes_from_its_via(pair):
    """A space of B lists a room of A that B is not in: B asks A for it."""
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    remote_child = await alice.create_room(preset="public_chat", name="Over there")
    local_child = await bob.create_room(preset="public_chat", name="Here")
    space = await new_space(bob, "Bob's")
    await add_child(bob, space, remote_child, a.name, order="2")
    await add_child(bob, space, local_child, b.name, order="1")  # `order` before age

    answer = ok(await hierarchy(bob, space))

    assert ids(answer, "rooms") == [space, local_child, remote_child]
    assert answer["rooms"][2]["name"] == "Over there"


async def test_a_v12_space_of_another_server_is_found_through_via(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    space = await new_space(alice, "New style", room_version="12")

    assert_error(await hierarchy(bob, space), 403, "M_FORBIDDEN")  # no server to ask
    assert ids(ok(await hierarchy(bob, space, via=a.name)), "rooms") == [space]


async def test_the_hierarchy_endpoint_shows_a_server_what_it_may_see(pair):
    """Federation `/hierarchy`: the room, its children for that server, the ones it may not
    see as `inaccessible_children`; 404 for a room it may not see or we are not in."""
    a, b = pair
    alice = await register(a.server)
    rooms = await space_on_a(alice, a)
    client = b.federation.client

    def path(room_id: str) -> str:
        return f"/_matrix/federation/v1/hierarchy/{path_part(room_id)}"

    answer = await client.request(a.name, "GET", path(rooms["space"]))

    assert answer["room"]["room_id"] == rooms["space"]
    assert answer["room"]["room_version"] == "10"
    assert len(answer["room"]["children_state"]) == 4
    assert sorted(ids(answer, "children")) == sorted([rooms["public"], rooms["subspace"]])
    assert sorted(answer["inaccessible_children"]) == sorted(
        [rooms["private"], rooms["restricted"]]
    )
    suggested = await client.request(
        a.name, "GET", path(rooms["space"]), query={"suggested_only": "true"}
    )
    assert ids(suggested, "children") == [rooms["public"]]
    for hidden in (rooms["private"], "!unknown:" + a.name):
        with pytest.raises(RemoteError) as raised:
            await client.request(a.name, "GET", path(hidden))
        assert (raised.value.status, raised.value.errcode) == (404, "M_NOT_FOUND")


async def test_a_restricted_room_is_shown_to_a_server_with_a_user_in_its_allowed_room(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    rooms = await space_on_a(alice, a)
    ok(await join(bob, rooms["members"], via=a.name))
    path = f"/_matrix/federation/v1/hierarchy/{path_part(rooms['space'])}"

    answer = await b.federation.client.request(a.name, "GET", path)

    restricted = next(r for r in answer["children"] if r["room_id"] == rooms["restricted"])
    assert restricted["join_rule"] == "restricted"
    assert restricted["allowed_room_ids"] == [rooms["members"]]
    assert answer["inaccessible_children"] == [rooms["private"]]


async def test_a_space_whose_server_is_down_is_a_clear_502_and_its_children_are_skipped(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    remote_space = await new_space(alice, "Far away")
    remote_child = await alice.create_room(preset="public_chat")
    local_space = await new_space(bob, "Near")
    await add_child(bob, local_space, remote_child, a.name)
    await a.stop()

    error = assert_error(await hierarchy(bob, remote_space), 502, "M_UNKNOWN")
    assert a.name in error["error"]
    assert ids(ok(await hierarchy(bob, local_space)), "rooms") == [local_space]


async def test_a_peers_hierarchy_answer_is_checked_before_a_client_sees_it(nursery, ca, tmp_path):
    """Children without a `via`, of another type or not naming a room are dropped, summary
    fields keep their spec types, and an answer about another room is no answer."""
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    bob = await register(b.server)
    peer_name: list[str] = []

    def room(name: str) -> str:
        return f"!{name}:{peer_name[0]}"

    async def sloppy_peer(method: str, path: str, body: Any) -> tuple[int, Any]:
        asked = path.split("?")[0].rsplit("/", 1)[1]
        child = {"type": "m.space.child", "sender": "@x:y", "origin_server_ts": 5}
        answer = {
            "room": {
                "room_id": room("space") if "space" in asked else room("other"),
                "name": "Sloppy",
                "num_joined_members": -3,
                "join_rule": "public",
                "room_type": "m.space",
                "children_state": [
                    {**child, "state_key": room("kept"), "content": {"via": [peer_name[0]]}},
                    {**child, "state_key": room("novia"), "content": {"via": []}},
                    {**child, "type": "m.space.parent", "state_key": room("parent")},
                    {**child, "state_key": "not a room", "content": {"via": ["x"]}},
                    "not an event",
                ],
            },
            "children": [
                {"room_id": room("kept"), "name": "Kept", "join_rule": "public", "extra": "x"}
            ],
            "inaccessible_children": [],
        }
        return 200, answer

    peer_name.append(await serve_https(nursery, ca, "127.0.0.15", sloppy_peer))

    answer = ok(await hierarchy(bob, room("space")))

    assert ids(answer, "rooms") == [room("space"), room("kept")]
    space, kept = answer["rooms"]
    assert space["num_joined_members"] == 0
    assert [c["state_key"] for c in space["children_state"]] == [room("kept")]
    assert kept == {
        "room_id": room("kept"),
        "name": "Kept",
        "join_rule": "public",
        "num_joined_members": 0,
        "world_readable": False,
        "guest_can_join": False,
        "children_state": [],
    }
    error = assert_error(await hierarchy(bob, room("wrong")), 502, "M_UNKNOWN")
    assert "no hierarchy" in error["error"]


async def test_a_child_whose_server_acl_denies_the_asking_server_is_inaccessible_to_it(pair):
    """Spec "Server Access Control Lists": a denied server takes no part in the room, so
    `/hierarchy` does not describe it to that server (and refuses it as the root)."""
    a, b = pair
    alice = await register(a.server)
    rooms = await space_on_a(alice, a)
    acl = {"allow": ["*"], "deny": ["127.0.0.3"], "allow_ip_literals": True}
    await alice.set_state(rooms["public"], "m.room.server_acl", acl)
    await alice.set_state(rooms["subspace"], "m.room.server_acl", acl)
    client = b.federation.client

    answer = await client.request(
        a.name, "GET", f"/_matrix/federation/v1/hierarchy/{path_part(rooms['space'])}"
    )

    assert rooms["public"] in answer["inaccessible_children"]
    assert rooms["public"] not in ids(answer, "children")
    with pytest.raises(RemoteError) as raised:
        await client.request(
            a.name, "GET", f"/_matrix/federation/v1/hierarchy/{path_part(rooms['subspace'])}"
        )
    assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"filter": {"room_types": "m.space"}}, "M_BAD_JSON"),
        ({"filter": {"room_types": [5]}}, "M_BAD_JSON"),
        ({"limit": -1}, "M_INVALID_PARAM"),
        ({"include_all_networks": "yes"}, "M_BAD_JSON"),
        ({"include_all_networks": True, "third_party_instance_id": "irc"}, "M_INVALID_PARAM"),
    ],
)
async def test_a_malformed_search_of_another_server_is_400_before_anything_is_sent(
    pair, body, errcode, monkeypatch
):
    a, b = pair
    bob = await register(b.server)
    sent: list[str] = []
    real_request = b.federation.client.request

    async def recording(destination: str, method: str, path: str, **kwargs: Any) -> Any:
        sent.append(path)
        return await real_request(destination, method, path, **kwargs)

    monkeypatch.setattr(b.federation.client, "request", recording)

    assert_error(await search_public_rooms(bob, body, a.name), 400, errcode)
    assert_error(
        await hierarchy(bob, "!space:" + a.name, via="not a server!"), 400, "M_INVALID_PARAM"
    )
    assert sent == []
