"""The caches of a real server stay within `cache_memory_mb`, and admins can read their figures.

Issue 19: every in-memory cache is bounded by a memory budget; the figures
(entries, estimated bytes, hit rates) are what the admin room's
`memory-usage` and metrics show (`service/cache_stats.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from matrix_conduit.config import build_config
from matrix_conduit.service import Services
from matrix_conduit.service.cache_stats import CacheStats
from matrix_conduit.storage import open_database
from tests.support.rooms import ALICE, public_room


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[Services]:
    """A server whose caches may hold 1 MiB together."""
    config = build_config(
        {
            "server_name": "localhost",
            "database_backend": "leveldb",
            "database_path": str(tmp_path),
            "cache_memory_mb": 1.0,
        }
    )
    db = open_database("leveldb", str(tmp_path / "db"))
    try:
        yield Services(config, db)
    finally:
        db.close()


def test_a_busy_room_keeps_every_cache_within_its_share_and_old_events_still_read(
    small_server: Services,
) -> None:
    rooms = small_server.rooms

    async def fill() -> list[str]:
        room_id = await public_room(small_server)
        sent = []
        for number in range(400):
            body = {"msgtype": "m.text", "body": f"message {number} " + "x" * 400}
            sent.append(await rooms.builder.send(room_id, ALICE, "m.room.message", body))
        return sent

    sent = trio.run(fill)
    stats = CacheStats(rooms.memory)
    events = {cache.name: cache for cache in stats.caches()}["events"]
    assert events.evictions > 0
    for cache in stats.caches():
        assert cache.max_bytes is None or cache.bytes <= cache.max_bytes, cache
    assert rooms.timeline.get_event(sent[0])["content"]["body"].startswith("message 0 ")
    report = stats.report()
    assert report["estimated_bytes"] <= report["budget_bytes"]


def test_the_report_names_each_cache_with_its_hit_rate(small_server: Services) -> None:
    rooms = small_server.rooms
    room_id = trio.run(public_room, small_server)
    rooms.state.current_state_ids(room_id)
    rooms.state.current_state_ids(room_id)
    stats = CacheStats(rooms.memory)
    by_name = {cache["name"]: cache for cache in stats.report()["caches"]}
    assert {"events", "state_snapshots", "state_layers", "current_state"} <= set(by_name)
    assert by_name["current_state"]["hits"] >= 1
    assert "current_state:" in stats.summary()
    stats.clear()
    assert all(cache.entries == 0 for cache in stats.caches())
    assert rooms.state.current_state_ids(room_id)[("m.room.create", "")]
