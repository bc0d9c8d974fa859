"""Least-recently-used caches bounded by entries and by estimated bytes.

Every in-memory cache of the server is an `LRUCache`. Each has an entry cap
(Conduit's keys: `pdu_cache_capacity` for events, and the caps derived from
it) and, when built from a `MemoryBudget`, a byte cap: its share of
`cache_memory_mb`. A put that takes the cache over either cap evicts the
least recently used entries until it fits again (the newest entry is always
kept, so a single entry larger than the whole share is still cached, alone).

Bytes are estimates, never measured per entry (`sys.getsizeof` over nested
dicts would cost more than the cache saves). Each cache is given a `sizer`,
a cheap function of the key and value; the constants those use
(`EVENT_BYTES_PER_JSON_BYTE`, `*_ENTRY_BYTES` below) were measured once with
`tracemalloc` (allocated bytes after filling a cache with 10,000 typical
entries, divided by the entries, OrderedDict node included; `bench/memory.py
entries` repeats the measurement). Shared objects (one event dict
in both event caches, one state key tuple in several snapshots) are counted in
each cache that holds them: the sum over-estimates, so the budget holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MIB = 1024 * 1024

EVENT_BYTES_PER_JSON_BYTE = 5
"""A parsed event (dicts, strings) takes about this many bytes per byte of its JSON
(measured: 3,937 bytes for a 742-byte message)."""
EVENT_OVERHEAD_BYTES = 300
"""A parsed event's fixed cost: its dicts and the cache entry, whatever its size."""
SHORT_ID_ENTRY_BYTES = 210
"""An event id (str) ↔ short id (int) entry, key, value and node, plus the id's
length (measured: 250 bytes with a 44-character id)."""
STATE_KEY_ENTRY_BYTES = 250
"""A `(type, state_key)` tuple ↔ short id entry, plus both strings' lengths
(measured: 283 bytes for a member's key)."""
STATE_MAP_ENTRY_BYTES = 120
"""One `(type, state_key) -> event_id` slot of a state snapshot: 30 bytes measured when
its strings are shared with the short id caches, about 250 when not."""
STATE_LAYER_ENTRY_BYTES = 200
"""One 16-byte entry of a compressor layer: its bytes object, set slots and mapping slot
(measured: 195)."""
MEMBER_ENTRY_BYTES = 90
"""One user id (or room id) in a cached member set: 52 bytes measured with the string
shared, more when the set alone holds it."""
SMALL_ENTRY_BYTES = 300
"""A small record (a count, a flag, a short tuple): key, value and node."""


def event_size(json_length: int) -> int:
    """The estimated bytes of a parsed event whose canonical JSON is `json_length` bytes."""
    return EVENT_OVERHEAD_BYTES + EVENT_BYTES_PER_JSON_BYTE * json_length


class LRUCache(Generic[K, V]):
    """An LRU cache capped at `capacity` entries and, if given, `max_bytes` estimated bytes."""

    def __init__(
        self,
        capacity: int,
        *,
        name: str = "",
        max_bytes: int | None = None,
        sizer: Callable[[K, V], int] | None = None,
    ) -> None:
        self.name = name
        self.capacity = max(1, capacity)
        self.max_bytes = max_bytes
        self._sizer = sizer
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.bytes = 0
        """The estimated bytes of the entries held now."""
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: K) -> V | None:
        try:
            self._items.move_to_end(key)
        except KeyError:
            self.misses += 1
            return None
        self.hits += 1
        return self._items[key][0]

    def peek(self, key: K) -> V | None:
        """The value without counting a hit or a miss, and without refreshing it."""
        item = self._items.get(key)
        return item[0] if item is not None else None

    def put(self, key: K, value: V, size: int | None = None) -> None:
        """Keep `value`; `size` (estimated bytes) overrides the cache's sizer."""
        if size is None:
            size = self._sizer(key, value) if self._sizer is not None else 0
        old = self._items.get(key)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, size)
        self._items.move_to_end(key)
        self.bytes += size
        items = self._items
        while len(items) > 1 and (
            len(items) > self.capacity
            or (self.max_bytes is not None and self.bytes > self.max_bytes)
        ):
            _, (_, evicted_size) = items.popitem(last=False)
            self.bytes -= evicted_size
            self.evictions += 1

    def discard(self, key: K) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= item[1]

    def clear(self) -> None:
        """Forget everything (the admin room's `clear-caches`): entries are reloaded on use."""
        self._items.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def stats(self) -> CacheStats:
        """Entries, estimated bytes, caps and hit counts, for `service/cache_stats.py`."""
        return CacheStats(
            name=self.name,
            entries=len(self._items),
            capacity=self.capacity,
            bytes=self.bytes,
            max_bytes=self.max_bytes,
            hits=self.hits,
            misses=self.misses,
            evictions=self.evictions,
        )


@dataclass(frozen=True)
class CacheStats:
    name: str
    entries: int
    capacity: int
    bytes: int
    max_bytes: int | None
    hits: int
    misses: int
    evictions: int

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups since start (None before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entries": self.entries,
            "capacity": self.capacity,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "hit_rate": self.hit_rate,
        }


SHARES: dict[str, float] = {
    "events": 0.28,
    "notification_counts": 0.02,
    "events_by_pdu_id": 0.10,
    "event_short_ids": 0.06,
    "short_event_ids": 0.06,
    "state_key_short_ids": 0.02,
    "short_state_keys": 0.02,
    "state_snapshots": 0.12,
    "state_layers": 0.13,
    "current_state": 0.10,
    "room_members": 0.04,
    "room_servers": 0.01,
    "invited_members": 0.01,
    "member_counts": 0.01,
    "user_rooms": 0.02,
}
"""Each cache's share of `cache_memory_mb`. Events get the most: a message read
(sync, /messages, federation) needs the event itself, and a miss costs a database
read and a JSON parse. The state caches share a third: a miss there rebuilds a
snapshot from the compressor's diffs (for a big room, tens of thousands of entries).
The short id caches are cheap per entry and hit on every state read. Tuned with
`bench/memory.py`, whose big-room load reports each cache's hit rate."""


class MemoryBudget:
    """`cache_memory_mb` (times `conduit_cache_capacity_modifier`), split into named caches.

    Every cache made here is listed by `caches()`, which `service/cache_stats.py`
    reports. Caches not in `SHARES` get no byte cap (small ones capped by entries).
    """

    def __init__(self, memory_mb: float, modifier: float = 1.0) -> None:
        self.total_bytes = max(1, int(memory_mb * modifier * MIB))
        self.modifier = modifier
        self._caches: dict[str, LRUCache[Any, Any]] = {}

    def share(self, name: str) -> int | None:
        fraction = SHARES.get(name)
        return max(1, int(self.total_bytes * fraction)) if fraction is not None else None

    def cache(
        self, name: str, capacity: int, sizer: Callable[[Any, Any], int] | None = None
    ) -> LRUCache[Any, Any]:
        """A new cache called `name`: at most `capacity` entries and its share of the budget."""
        cache: LRUCache[Any, Any] = LRUCache(
            capacity, name=name, max_bytes=self.share(name), sizer=sizer
        )
        self._caches[name] = cache
        return cache

    def caches(self) -> Iterator[LRUCache[Any, Any]]:
        return iter(list(self._caches.values()))

    def clear(self) -> None:
        """Empty every cache of the budget (they refill on use)."""
        for cache in self.caches():
            cache.clear()
