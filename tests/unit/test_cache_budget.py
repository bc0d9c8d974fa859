"""The in-memory caches are bounded by estimated bytes, not only by entries (issue 19).

`matrix_conduit/lru.py`: a cache at its byte budget evicts its least recently
used entries rather than grow; `cache_memory_mb` is split among the named
caches of a `MemoryBudget`, scaled by `conduit_cache_capacity_modifier`.
"""

from __future__ import annotations

from matrix_conduit.lru import MIB, SHARES, LRUCache, MemoryBudget, event_size


def test_a_cache_at_its_byte_budget_evicts_the_oldest_instead_of_growing() -> None:
    cache: LRUCache[int, str] = LRUCache(1_000_000, max_bytes=1000, sizer=lambda _k, v: len(v))
    for key in range(100):
        cache.put(key, "x" * 100)
        assert cache.bytes <= 1000
    assert len(cache) == 10
    assert cache.get(0) is None
    assert cache.get(99) == "x" * 100
    assert cache.evictions == 90


def test_a_recently_read_entry_outlives_older_ones_at_the_budget() -> None:
    cache: LRUCache[str, bytes] = LRUCache(100, max_bytes=300, sizer=lambda _k, v: len(v))
    for key in "abc":
        cache.put(key, b"." * 100)
    assert cache.get("a") is not None
    cache.put("d", b"." * 100)
    assert "b" not in cache
    assert {key for key in "acd" if key in cache} == {"a", "c", "d"}


def test_an_entry_larger_than_the_whole_budget_is_kept_alone() -> None:
    cache: LRUCache[str, bytes] = LRUCache(100, max_bytes=100, sizer=lambda _k, v: len(v))
    cache.put("small", b"." * 50)
    cache.put("huge", b"." * 500)
    assert len(cache) == 1 and cache.get("huge") is not None


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    cache: LRUCache[str, bytes] = LRUCache(100, max_bytes=1000, sizer=lambda _k, v: len(v))
    for _ in range(50):
        cache.put("same", b"." * 100)
    assert (len(cache), cache.bytes) == (1, 100)
    cache.discard("same")
    assert cache.bytes == 0


def test_the_entry_cap_still_applies_under_a_large_budget() -> None:
    """Conduit's `pdu_cache_capacity` and its derived caps keep working as entry caps."""
    cache: LRUCache[int, int] = LRUCache(5, max_bytes=10 * MIB, sizer=lambda _k, _v: 1)
    for key in range(20):
        cache.put(key, key)
    assert len(cache) == 5


def test_hits_and_misses_are_counted_for_the_admins() -> None:
    cache: LRUCache[str, int] = LRUCache(10, name="demo")
    cache.put("a", 1)
    cache.get("a")
    cache.get("b")
    stats = cache.stats()
    assert (stats.name, stats.hits, stats.misses, stats.hit_rate) == ("demo", 1, 1, 0.5)


def test_the_budget_is_split_by_share_and_scaled_by_the_modifier() -> None:
    budget = MemoryBudget(64, modifier=0.5)
    assert budget.total_bytes == 32 * MIB
    events = budget.cache("events", 150_000)
    assert events.max_bytes == int(32 * MIB * SHARES["events"])
    assert budget.cache("not-shared", 10).max_bytes is None
    assert abs(sum(SHARES.values()) - 1.0) < 1e-9


def test_the_event_cache_of_a_server_evicts_at_its_share(tmp_path) -> None:
    """The real timeline cache: many events put, estimated bytes stay within its share."""
    budget = MemoryBudget(1)
    events = budget.cache("events", 150_000)
    for number in range(10_000):
        events.put(f"$event{number}", {"content": {"body": "hello"}}, event_size(400))
    assert events.max_bytes is not None and events.bytes <= events.max_bytes
    assert len(events) == events.max_bytes // event_size(400)
