"""Room summaries of rooms this server is not in, between two of ours and with Synapse.

Spec: `content/client-server-api/_index.md` "Room Summaries",
`data/api/client-server/room_summary.yaml` (`via`: "the servers to attempt to
request the summary from when the local server cannot generate it"), answered
from the other server's `GET /hierarchy/{roomId}` (server-server
`space_hierarchy.yaml`), as Synapse does (MSC3266). A room its server will
not describe is 404, as an unknown one.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.federation import FederatingServer, start_federating
from tests.support.matrix import CLIENT_V1, assert_error, ok, path_part, register
from tests.support.synapse_rooms import DIRECTIONS, Account, Peers, sides


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def summary(user, room: str, **params):
    """`GET /_matrix/client/v1/room_summary/{room}` as `user` (a User or an Account)."""
    return await user.http.get(
        f"{CLIENT_V1}/room_summary/{path_part(room)}",
        params=params or None,
        headers={"Authorization": f"Bearer {user.access_token}"},
    )


async def test_a_room_of_another_server_is_summarised_by_its_server(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    alias = f"lobby{secrets.token_hex(3)}"
    room_id = await alice.create_room(
        preset="public_chat", name="Lobby", topic="Say hi", room_alias_name=alias
    )

    by_id = ok(await summary(bob, room_id))
    by_alias = ok(await summary(bob, f"#{alias}:{a.name}"))

    for answer in (by_id, by_alias):
        assert answer["room_id"] == room_id
        assert answer["name"] == "Lobby" and answer["topic"] == "Say hi"
        assert answer["join_rule"] == "public"
        assert answer["num_joined_members"] == 1
        assert answer["membership"] == "leave"
        assert "children_state" not in answer


async def test_a_private_room_of_another_server_is_404(pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    room_id = await alice.create_room(preset="private_chat", name="Secret")

    assert_error(await summary(bob, room_id), 404, "M_NOT_FOUND")


async def _accounts(both: Peers, direction: str) -> tuple[Account, Account]:
    home_side, visitor_side = sides(direction)
    return await both.account_on(home_side), await both.account_on(visitor_side)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_the_other_servers_public_room_is_summarised_through_via(both, direction):
    """Synapse's rooms are v12 (no server in the id): `via` names the server to ask."""
    home, visitor = await _accounts(both, direction)
    room_id = await home.create_room(preset="public_chat", name="Interop lobby")

    answer = ok(await summary(visitor, room_id, via=home.server_name))

    assert answer["room_id"] == room_id
    assert answer["name"] == "Interop lobby"
    assert answer["join_rule"] == "public"
    assert answer["num_joined_members"] == 1
    assert answer["membership"] == "leave"


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_the_other_servers_private_room_is_not_found(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id = await home.create_room(preset="private_chat", name="Hidden")

    assert_error(await summary(visitor, room_id, via=home.server_name), 404, "M_NOT_FOUND")
