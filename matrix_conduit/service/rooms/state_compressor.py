"""Room state snapshots, stored as layered diffs of 16-byte entries.

A snapshot ("shortstatehash") is a set of entries, each the short id of a
`(type, state_key)` pair followed by the short id of the event (8 + 8 bytes).
Snapshots are stored as a diff against a parent snapshot, and the layering
keeps chains short: a new diff that is large compared with its parent's diff
is merged into it and saved one level up (Conduit's scheme), and no chain is
more than four layers deep. So a message (no state change) stores nothing
here, a membership change in a room of 10,000 members stores a diff of one or
two entries, and loading any snapshot reads at most four diffs.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...lru import STATE_LAYER_ENTRY_BYTES, LRUCache, MemoryBudget
from ...storage import Database, WriteBatch
from ...storage.kv import from_u64, u64
from ..globals import Globals

TREES = ("shortstatehash_statediff",)

MAX_LAYERS = 4
Entry = bytes
"""16 bytes: short state key (8, big-endian) + short event id (8)."""


def entry(short_state_key: int, short_event_id: int) -> Entry:
    return u64(short_state_key) + u64(short_event_id)


class Layer:
    """One snapshot: its diff against the layer below, and (built when asked) its whole content.

    `full` and `mapping()` are built on first use, from the parent's when it has
    them (a copy at C speed plus the diff), so a state change in a room of
    10,000 members costs the diff, and a copy only when someone reads the whole.
    """

    __slots__ = ("_full", "_mapping", "_parent", "added", "removed", "shortstatehash")

    def __init__(
        self,
        shortstatehash: int,
        added: frozenset[Entry],
        removed: frozenset[Entry],
        parent: Layer | None,
        full: frozenset[Entry] | None = None,
    ) -> None:
        self.shortstatehash = shortstatehash
        self.added = added
        self.removed = removed
        self._parent = parent
        self._full = full if full is not None else (added if parent is None else None)
        self._mapping: dict[int, int] | None = None

    @property
    def full(self) -> frozenset[Entry]:
        if self._full is None:
            assert self._parent is not None
            self._full = (self._parent.full - self.removed) | self.added
        return self._full

    def __len__(self) -> int:
        """Entries in the snapshot (from the parent's count when `full` is not built)."""
        if self._full is not None or self._parent is None:
            return len(self.full)
        return len(self._parent) - len(self.removed) + len(self.added)

    def mapping(self) -> Mapping[int, int]:
        """The snapshot as {short state key: short event id} (built once)."""
        if self._mapping is None:
            parent = self._parent
            if parent is not None and (parent._mapping is not None or self._full is None):
                mapping = dict(parent.mapping())
                for item in self.removed:
                    key = from_u64(item[:8])
                    if mapping.get(key) == from_u64(item[8:]):
                        del mapping[key]
                mapping.update((from_u64(item[:8]), from_u64(item[8:])) for item in self.added)
            else:
                mapping = {from_u64(item[:8]): from_u64(item[8:]) for item in self.full}
            self._mapping = mapping
        return self._mapping

    def get(self, short_state_key: int) -> int | None:
        """The event of one key, without building the whole mapping when it is not built."""
        if self._mapping is not None or self._parent is None or len(self.added) > 32:
            return self.mapping().get(short_state_key)
        key = u64(short_state_key)
        for item in self.added:
            if item[:8] == key:
                return from_u64(item[8:])
        for item in self.removed:
            if item[:8] == key:
                return None
        return self._parent.get(short_state_key)


def _layers_size(_shortstatehash: int, layers: list[Layer]) -> int:
    """Estimated bytes: the top layer's entries (its parents are counted where cached)."""
    return STATE_LAYER_ENTRY_BYTES * (len(layers[-1]) + 1)


class StateCompressor:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        cache_capacity: int,
        memory: MemoryBudget | None = None,
    ) -> None:
        self._globals = globals_
        self._diffs = db.tree("shortstatehash_statediff")
        self._layers: LRUCache[int, list[Layer]] = (memory or MemoryBudget(96.0)).cache(
            "state_layers", cache_capacity, _layers_size
        )

    def layers(self, shortstatehash: int) -> list[Layer]:
        """The layers of a snapshot, from its root (a full snapshot) to itself."""
        cached = self._layers.get(shortstatehash)
        if cached is not None:
            return cached
        raw = self._diffs.get(u64(shortstatehash))
        if raw is None:
            raise KeyError(f"unknown state snapshot {shortstatehash}")
        parent = from_u64(raw[:8])
        added_count = from_u64(raw[8:16])
        body = raw[16:]
        split = added_count * 16
        added = frozenset(body[i : i + 16] for i in range(0, split, 16))
        removed = frozenset(body[i : i + 16] for i in range(split, len(body), 16))
        if parent == 0:
            layers = [Layer(shortstatehash, added, removed, None)]
        else:
            parents = self.layers(parent)
            layers = [*parents, Layer(shortstatehash, added, removed, parents[-1])]
        self._layers.put(shortstatehash, layers)
        return layers

    def full_state(self, shortstatehash: int) -> Layer:
        return self.layers(shortstatehash)[-1]

    def save_change(
        self, parent: int, added: set[Entry], removed: set[Entry], batch: WriteBatch
    ) -> int:
        """Store `parent` changed by a known diff (a state event: an entry or two).

        What `save` does without comparing two whole snapshots: the cost is the
        diff's (and a fold into the parent's diff now and then), not the room's.
        """
        shortstatehash = self._globals.next_count()
        parents = self.layers(parent)
        self._save_from_diff(
            shortstatehash, set(added), set(removed), len(added) + len(removed), parents, batch
        )
        return shortstatehash

    def save(self, new_full: frozenset[Entry], parent: int | None, batch: WriteBatch) -> int:
        """Store a snapshot whose full content is `new_full`; returns its shortstatehash."""
        shortstatehash = self._globals.next_count()
        if parent is None:
            self._save_from_diff(shortstatehash, set(new_full), set(), len(new_full), [], batch)
        else:
            parents = self.layers(parent)
            parent_full = parents[-1].full
            added = set(new_full - parent_full)
            removed = set(parent_full - new_full)
            self._save_from_diff(
                shortstatehash, added, removed, len(added) + len(removed), parents, batch
            )
        return shortstatehash

    def _save_from_diff(
        self,
        shortstatehash: int,
        added: set[Entry],
        removed: set[Entry],
        diff_to_sibling: int,
        parents: list[Layer],
        batch: WriteBatch,
    ) -> None:
        diff_size = len(added) + len(removed)
        if parents and (
            len(parents) >= MAX_LAYERS
            or diff_size * diff_size
            >= 2 * diff_to_sibling * (len(parents[-1].added) + len(parents[-1].removed))
        ):
            # Too deep, or this diff is large next to the parent's: fold it into
            # the parent's diff and save the result one level up.
            parent = parents[-1]
            merged_added = set(parent.added)
            merged_removed = set(parent.removed)
            for item in removed:
                if item in merged_added:
                    merged_added.remove(item)
                else:
                    merged_removed.add(item)
            for item in added:
                if item in merged_removed:
                    merged_removed.remove(item)
                else:
                    merged_added.add(item)
            self._save_from_diff(
                shortstatehash, merged_added, merged_removed, diff_size, parents[:-1], batch
            )
            return
        parent_hash = parents[-1].shortstatehash if parents else 0
        batch.put(
            self._diffs,
            u64(shortstatehash),
            u64(parent_hash)
            + u64(len(added))
            + b"".join(sorted(added))
            + b"".join(sorted(removed)),
        )
        layer = Layer(
            shortstatehash,
            frozenset(added),
            frozenset(removed),
            parents[-1] if parents else None,
        )
        self._layers.put(shortstatehash, [*parents, layer])
