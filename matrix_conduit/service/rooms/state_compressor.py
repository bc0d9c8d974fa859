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
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Layer:
    shortstatehash: int
    full: frozenset[Entry]
    added: frozenset[Entry]
    removed: frozenset[Entry]
    _mapping: dict[int, int] = field(default_factory=dict, compare=False)

    def mapping(self) -> Mapping[int, int]:
        """The snapshot as {short state key: short event id} (built once)."""
        if not self._mapping and self.full:
            self._mapping.update((from_u64(item[:8]), from_u64(item[8:])) for item in self.full)
        return self._mapping


def _layers_size(_shortstatehash: int, layers: list[Layer]) -> int:
    """Estimated bytes: the top layer's entries (its parents are counted where cached)."""
    return STATE_LAYER_ENTRY_BYTES * (len(layers[-1].full) + 1)


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
            layers = [Layer(shortstatehash, added, added, removed)]
        else:
            parents = self.layers(parent)
            full = (parents[-1].full - removed) | added
            layers = [*parents, Layer(shortstatehash, full, added, removed)]
        self._layers.put(shortstatehash, layers)
        return layers

    def full_state(self, shortstatehash: int) -> Layer:
        return self.layers(shortstatehash)[-1]

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
        frozen_added, frozen_removed = frozenset(added), frozenset(removed)
        base = parents[-1].full if parents else frozenset()
        full = (base - frozen_removed) | frozen_added
        self._layers.put(
            shortstatehash, [*parents, Layer(shortstatehash, full, frozen_added, frozen_removed)]
        )
