"""Sliding sync lists over HTTP: windows of the room list by recency, filters, invites.

Spec: MSC4186 ("Lists and subscriptions", "Activity ordering",
"SlidingRoomFilter", "SyncListResult"), with MSC3575's request shape
(`ranges`) at `/_matrix/client/unstable/org.matrix.simplified_msc3575/sync`.
"""

from __future__ import annotations

from tests.support.matrix import ok
from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import Connection, room_list, user_without_rooms, window

running_server, server = shared_server_fixtures()


async def test_versions_advertises_simplified_sliding_sync(server):
    response = ok(await server.client.get("/_matrix/client/versions"))
    assert response["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_the_window_holds_the_most_recently_active_rooms_first(server):
    alice = await user_without_rooms(server)
    rooms = [await alice.create_room(name=f"room {n}") for n in range(5)]
    await alice.send(rooms[1], "bump")
    connection = Connection(alice)
    response = await connection.sync({"lists": {"all": room_list(2)}})
    assert response["lists"]["all"]["count"] == 5
    assert window(response, "all") == [rooms[1], rooms[4], rooms[3]]
    assert set(response["rooms"]) == {rooms[1], rooms[4], rooms[3]}
