"""Rooms of every stable version shared with a real Synapse: joined, and talked in both ways.

Room versions change the event format (event ids: v1–2 `$id:server`, v3
base64, v4+ URL-safe base64), the redaction and auth rules, and (v12) room ids
without a server part; `make_join`/`send_join` must carry each one across.
Each version runs with the room on ours and with the room on Synapse. Spec:
`content/rooms/v1.md` … `v12.md`, `content/server-server-api.md` "Joining Rooms".
"""

from __future__ import annotations

import pytest

from tests.support.synapse_rooms import (
    DIRECTIONS,
    has_bodies,
    shared_room,
    sides,
)

VERSIONS = [str(version) for version in range(1, 13)]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("version", VERSIONS)
async def test_a_room_of_each_version_is_joined_across_and_carries_messages_both_ways(
    both, direction, version
):
    home_side, visitor_side = sides(direction)
    home, visitor = await both.account_on(home_side), await both.account_on(visitor_side)

    room_id, home_sync, visitor_sync = await shared_room(home, visitor, room_version=version)

    create = [e for e in visitor_sync.state[room_id] if e["type"] == "m.room.create"]
    assert create and create[-1]["content"].get("room_version", "1") == version
    visitor_id = await visitor.send(room_id, f"from the visitor in v{version}")
    home_id = await home.send(room_id, f"from home in v{version}")
    seen = await home_sync.until(lambda sync: sync.event(room_id, visitor_id))
    assert seen["content"]["body"] == f"from the visitor in v{version}"
    await visitor_sync.until(has_bodies(room_id, f"from home in v{version}"))
    assert visitor_sync.event(room_id, home_id) is not None
