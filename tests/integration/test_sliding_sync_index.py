"""The per-user room index of sliding sync, over HTTP: kept as events are written, built once
for accounts whose rooms predate it.

Spec: MSC4186 ("Activity ordering", `bump_stamp`: the last event of a bumping
type; for rooms the user is invited to, the invite's position).
"""

from __future__ import annotations

import dataclasses

import trio

from matrix_conduit.service.sliding_sync.index import TREES
from matrix_conduit.storage import open_database
from tests.support.server import make_config, serving
from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import Connection, room_list, user_without_rooms, window

running_server, server = shared_server_fixtures()


async def test_only_bumping_events_move_a_room_up(server):
    """A state change (a topic) is activity that does not bump; a message does."""
    alice = await user_without_rooms(server)
    first, second = await alice.create_room(), await alice.create_room()
    await alice.set_state(first, "m.room.topic", {"topic": "not a bump"})
    response = await Connection(alice, "a").sync({"lists": {"l": room_list(9)}})
    assert window(response, "l") == [second, first]
    stamps = {room: response["rooms"][room]["bump_stamp"] for room in (first, second)}
    await alice.send(first, "a bump")
    after = await Connection(alice, "b").sync({"lists": {"l": room_list(9)}})
    assert window(after, "l") == [first, second]
    assert after["rooms"][first]["bump_stamp"] > stamps[second] > stamps[first]


async def test_rooms_joined_before_the_index_existed_are_indexed_on_first_use(tmp_path):
    """An upgraded server: the index trees are empty for an account with rooms; its first
    sliding sync builds the index from its memberships and the rooms' last bumping events."""
    config = make_config(tmp_path / "db")
    async with trio.open_nursery() as nursery, serving(nursery, config) as first:
        alice = await user_without_rooms(first)
        bob = await user_without_rooms(first)
        older = await alice.create_room(name="older")
        newer = await alice.create_room(name="newer")
        await alice.send(older, "most recent message")
        invite = await bob.create_room(name="invite")
        await bob.invite(invite, alice)

    database = open_database("leveldb", str(tmp_path / "db"))
    try:
        with database.batch() as batch:
            for name in TREES:
                tree = database.tree(name)
                for key in list(tree.keys_with_prefix(b"")):
                    batch.delete(tree, key)
    finally:
        database.close()

    async with trio.open_nursery() as nursery, serving(nursery, config) as second:
        alice = dataclasses.replace(alice, http=second.client)
        response = await Connection(alice).sync({"lists": {"l": room_list(9)}})
        assert window(response, "l") == [invite, older, newer]
        assert response["lists"]["l"]["count"] == 3
        await alice.send(newer, "and now this one")
        assert window(await Connection(alice, "2").sync({"lists": {"l": room_list(9)}}), "l") == [
            newer,
            invite,
            older,
        ]
