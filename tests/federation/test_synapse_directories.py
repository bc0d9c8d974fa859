"""Public room directories and space hierarchies between one of our servers and Synapse.

Each test about a directory or a space runs both ways: the rooms on Synapse and the
visitor ours (`synapse_room_our_visitor`), then the other way round; each side
is driven through its own client API. Spec: `content/server-server-api.md`
"Published Room Directory" (`public_rooms.yaml`) and "Spaces"
(`space_hierarchy.yaml`); client-server `list_public_rooms.yaml` (`server`)
and `space_hierarchy.yaml`. Synapse's rooms are version 12 (ids without a
server), so `m.space.child` events and joins name the server. Synapse walks a
space only if it is in the space itself (it answers 403 otherwise), so the
visitor joins the space; the children come from the other server's
`/hierarchy`.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio

from tests.support.directories import (
    add_child,
    hierarchy,
    hierarchy_pages,
    list_public_rooms,
    new_space,
    search_every_page,
    search_public_rooms,
)
from tests.support.federation import start_federating
from tests.support.matrix import assert_error, ok, register
from tests.support.remote_membership import eventually
from tests.support.synapse import running_synapse
from tests.support.synapse_rooms import DIRECTIONS, Account, Peers, our_errors, peers, sides

OWN_SYNAPSE_ADDRESS = "127.0.0.51"
"""For the test that stops its Synapse: a Synapse of its own, beside the module's."""


async def _accounts(both: Peers, direction: str) -> tuple[Account, Account]:
    home_side, visitor_side = sides(direction)
    return await both.account_on(home_side), await both.account_on(visitor_side)


def ids(answer: dict[str, Any], key: str) -> list[str]:
    return [room["room_id"] for room in answer[key]]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_a_user_searches_and_pages_the_public_rooms_of_the_other_server(both, direction):
    home, visitor = await _accounts(both, direction)
    term = f"interop{secrets.token_hex(4)}"
    rooms = {
        await home.create_room(visibility="public", preset="public_chat", name=f"{term} {n}")
        for n in range(3)
    }

    async def all_three() -> list[list[str]] | None:
        pages = await search_every_page(visitor, home.server_name, term, limit=2)
        return pages if sorted(r for page in pages for r in page) == sorted(rooms) else None

    pages = await eventually(all_three)  # Synapse lists a new room once its stats are in

    assert [len(page) for page in pages] == [2, 1]
    answer = ok(
        await search_public_rooms(
            visitor, {"filter": {"generic_search_term": term}}, home.server_name
        )
    )
    room = answer["chunk"][0]
    assert room["name"].startswith(term) and room["num_joined_members"] == 1
    assert room["join_rule"] == "public" and room["world_readable"] is False
    listed = ok(await list_public_rooms(visitor, server=home.server_name))
    assert rooms <= {room["room_id"] for room in listed["chunk"]}


async def test_synapse_relays_the_403_of_a_server_that_keeps_its_directory_to_itself(
    both, nursery, tmp_path
):
    """`allow_public_rooms_over_federation = false` on ours: Synapse's user is told
    M_FORBIDDEN, and our own users still see the room."""
    closed = await start_federating(
        nursery,
        both.synapse.ca,
        tmp_path / "closed",
        "127.0.0.3",
        allow_public_rooms_over_federation=False,
    )
    alice = await register(closed.server)
    room_id = await alice.create_room(visibility="public", preset="public_chat", name="Closed")
    visitor = await both.synapse_account()

    assert_error(await list_public_rooms(visitor, server=closed.name), 403, "M_FORBIDDEN")
    searched = await search_public_rooms(
        visitor, {"filter": {"generic_search_term": "Closed"}}, closed.name
    )
    assert_error(searched, 403, "M_FORBIDDEN")
    own = ok(await list_public_rooms(alice))
    assert room_id in {room["room_id"] for room in own["chunk"]}


async def _space(home: Account) -> dict[str, str]:
    """On home: a public space with a public room, a private room and a public subspace
    holding a world-readable invite-only room."""
    rooms = {"space": await new_space(home, "Interop space")}
    rooms["public"] = await home.create_room(preset="public_chat", name="Lobby")
    rooms["private"] = await home.create_room(preset="private_chat", name="Secret")
    rooms["subspace"] = await new_space(home, "Interop subspace")
    rooms["readable"] = await home.create_room(
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    via = home.server_name
    await add_child(home, rooms["space"], rooms["public"], via, order="a")
    await add_child(home, rooms["space"], rooms["private"], via, order="b")
    await add_child(home, rooms["space"], rooms["subspace"], via, order="c")
    await add_child(home, rooms["subspace"], rooms["readable"], via)
    return rooms


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_a_member_of_a_space_walks_its_rooms_on_the_other_server(both, direction):
    """The visitor's server is in the space only: every child comes from the home
    server's `/hierarchy`; the private room stays hidden; pages of two keep the walk."""
    home, visitor = await _accounts(both, direction)
    rooms = await _space(home)
    ok(await visitor.join(rooms["space"], server_name=home.server_name))
    walked = [rooms["space"], rooms["public"], rooms["subspace"], rooms["readable"]]

    answer = ok(await hierarchy(visitor, rooms["space"]))

    assert ids(answer, "rooms") == walked
    lobby = answer["rooms"][1]
    assert lobby["name"] == "Lobby" and lobby["join_rule"] == "public"
    assert answer["rooms"][2]["room_type"] == "m.space"
    children = [c["state_key"] for c in answer["rooms"][0]["children_state"]]
    assert children == [rooms["public"], rooms["private"], rooms["subspace"]]
    assert await hierarchy_pages(visitor, rooms["space"], limit=2) == [walked[:2], walked[2:]]
    shallow = ok(await hierarchy(visitor, rooms["space"], max_depth=1))
    assert ids(shallow, "rooms") == walked[:3]


async def test_our_user_walks_a_synapse_space_our_server_is_not_in(both):
    """The root too comes from Synapse's `/hierarchy`, through `via` (a v12 id names no
    server); without one there is nobody to ask."""
    home, visitor = await _accounts(both, DIRECTIONS[0])
    rooms = await _space(home)

    assert_error(await hierarchy(visitor, rooms["space"]), 403, "M_FORBIDDEN")
    answer = ok(await hierarchy(visitor, rooms["space"], via=home.server_name))

    walked = [rooms["space"], rooms["public"], rooms["subspace"], rooms["readable"]]
    assert ids(answer, "rooms") == walked
    assert answer["rooms"][0]["name"] == "Interop space"


async def test_a_synapse_that_is_down_is_a_clear_502_and_a_walked_space_stays_cached(
    nursery, ca, tmp_path, caplog
):
    """Bounded and clear when the other server is down: its directory is 502 naming it,
    a space never walked is 502, and a space walked a moment ago is still answered
    from what Synapse said then (the spec: "cached for a period of time")."""
    with running_synapse(ca, tmp_path / "synapse", OWN_SYNAPSE_ADDRESS) as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            home, visitor = await both.synapse_account(), await both.our_account()
            rooms = await _space(home)
            other_space = await new_space(home, "Never walked")
            walked = ok(await hierarchy(visitor, rooms["space"], via=synapse.server_name))

            await trio.to_thread.run_sync(synapse.stop)

            listed = await list_public_rooms(visitor, server=synapse.server_name)
            assert synapse.server_name in assert_error(listed, 502, "M_UNKNOWN")["error"]
            never = await hierarchy(visitor, other_space, via=synapse.server_name)
            assert synapse.server_name in assert_error(never, 502, "M_UNKNOWN")["error"]
            cached = ok(await hierarchy(visitor, rooms["space"], via=synapse.server_name))
            assert ids(cached, "rooms") == ids(walked, "rooms")
        assert not our_errors(caplog.records), our_errors(caplog.records)
