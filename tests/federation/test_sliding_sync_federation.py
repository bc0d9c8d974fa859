"""Sliding sync of rooms on another server: invites over federation, the join, live messages.

Spec: MSC4186 (the server list holds invites, joins, and their bump stamps),
`content/server-server-api.md` "Inviting to a room" (the invite is kept
outside the room's timeline on the invitee's server, with stripped state).
Two of our servers over TLS.
"""

from __future__ import annotations

import pytest

from tests.support.federation import FederatingServer, start_federating
from tests.support.matrix import ok, path_part, register
from tests.support.remote_membership import eventually
from tests.support.sliding_sync import Connection, bodies, room_list, user_without_rooms, window


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def test_an_invite_from_another_server_is_listed_then_joined_then_live(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await user_without_rooms(b.server)
    own = await bob.create_room(name="bob's own")
    room_id = await alice.create_room(name="Remote")
    connection = Connection(bob)
    await connection.sync({"lists": {"l": room_list(9, timeline_limit=3)}})

    await alice.invite(room_id, bob)
    invited = await connection.sync()
    assert window(invited, "l") == [room_id, own]
    entry = invited["rooms"][room_id]
    assert entry["membership"] == "invite"
    assert entry["name"] == "Remote"

    ok(await bob.post(f"/rooms/{path_part(room_id)}/join"))
    joined = await connection.sync()
    assert joined["rooms"][room_id]["membership"] == "join"
    assert joined["rooms"][room_id]["initial"] is True

    await alice.send(room_id, "over federation")

    async def arrived() -> bool:
        return bodies((await connection.sync(timeout=1000))["rooms"].get(room_id, {})) == [
            "over federation"
        ]

    await eventually(arrived)
    assert window(await Connection(bob, "again").sync({"lists": {"l": room_list(9)}}), "l") == [
        room_id,
        own,
    ]
