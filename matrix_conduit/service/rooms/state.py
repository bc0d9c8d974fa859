"""The state of each room: now, and before and after any event.

Spec: `content/server-server-api.md` ("Room State Resolution" overview) and
`content/client-server-api/_index.md` ("Room state"). The current state of a
room and the state before and after each of its events are snapshots of the
state compressor; this service maps them to `(type, state_key) -> event_id`
and keeps the current state of every room in memory once read (a message
reads it to choose its auth events).

The state after an event is recorded only where it differs from the state
before (an accepted state event): a message stores one entry, not two.
Federation needs both readers: an incoming event's state before is the state
after its prev_events, resolved where they fork.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from ...lru import STATE_MAP_ENTRY_BYTES, LRUCache, MemoryBudget
from ...storage import Database, WriteBatch
from ...storage.kv import from_u64, u64
from ..cluster import Cluster
from ..coherence import Invalidations
from .short import ShortIds, StateKey
from .state_compressor import StateCompressor, entry

TREES = ("roomid_shortstatehash", "shorteventid_shortstatehash", "shorteventid_statehashafter")

StateIds = Mapping[StateKey, str]
EMPTY_STATE: StateIds = MappingProxyType({})


class ChangedState(Mapping[StateKey, str]):
    """A read-only state map: `base` with a few entries set anew.

    The current state after one state event is the state before with one entry
    changed; copying 10,000 entries for it would make every join in a big room
    cost the room's size. The changes are flattened into a new base once they
    outnumber the square root of the state (at least 64): amortised, a change
    costs about that many entries copied, not the whole state.
    """

    __slots__ = ("_base", "_changes", "_length")

    def __init__(self, base: StateIds, changes: dict[StateKey, str]) -> None:
        self._base = base
        self._changes = changes
        self._length: int | None = None

    @classmethod
    def with_change(cls, state: StateIds, key: StateKey, event_id: str) -> StateIds:
        if isinstance(state, ChangedState):
            base, changes = state._base, {**state._changes, key: event_id}
        else:
            base, changes = state, {key: event_id}
        if len(changes) > max(64, int(len(base) ** 0.5)):
            return MappingProxyType({**base, **changes})
        return cls(base, changes)

    def __getitem__(self, key: StateKey) -> str:
        changed = self._changes.get(key)
        return changed if changed is not None else self._base[key]

    def __contains__(self, key: object) -> bool:
        return key in self._changes or key in self._base

    def __iter__(self) -> Iterator[StateKey]:
        yield from self._changes
        changes = self._changes
        yield from (key for key in self._base if key not in changes)

    def __len__(self) -> int:
        if self._length is None:
            base = self._base
            self._length = len(base) + sum(1 for key in self._changes if key not in base)
        return self._length


class SnapshotView(Mapping[StateKey, str]):
    """A snapshot read key by key (`RoomState.event_id_at`), built whole only if iterated.

    History visibility asks two keys of the state before each event; going back
    through the joins of a big room, each has its own snapshot, and converting
    each whole (10,000 entries) made paging quadratic.
    """

    __slots__ = ("_shortstatehash", "_state")

    def __init__(self, state: RoomState, shortstatehash: int) -> None:
        self._state = state
        self._shortstatehash = shortstatehash

    def __getitem__(self, key: StateKey) -> str:
        event_id = self._state.event_id_at(self._shortstatehash, key)
        if event_id is None:
            raise KeyError(key)
        return event_id

    def __iter__(self) -> Iterator[StateKey]:
        return iter(self._state.state_ids(self._shortstatehash))

    def __len__(self) -> int:
        return len(self._state.state_ids(self._shortstatehash))


def _state_size(state: StateIds) -> int:
    return STATE_MAP_ENTRY_BYTES * (len(state) + 1)


class RoomState:
    def __init__(
        self,
        db: Database,
        short: ShortIds,
        compressor: StateCompressor,
        cache_capacity: int,
        memory: MemoryBudget | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        memory = memory or MemoryBudget(96.0)
        self._short = short
        self._compressor = compressor
        self._room_hash = db.tree("roomid_shortstatehash")
        self._event_hash = db.tree("shorteventid_shortstatehash")
        self._event_hash_after = db.tree("shorteventid_statehashafter")
        self._current: LRUCache[str, tuple[int, StateIds]] = memory.cache(
            "current_state", cache_capacity * 10, lambda _, value: _state_size(value[1])
        )
        self._snapshots: LRUCache[int, StateIds] = memory.cache(
            "state_snapshots", cache_capacity, lambda _, value: _state_size(value)
        )
        self._moved = Invalidations.forgetting(cluster, "current_state", self._current)
        """Rooms whose current state another process moved (snapshots never change)."""

    # ---- reading

    def current_shortstatehash(self, room_id: str) -> int | None:
        cached = self._current.get(room_id)
        if cached is not None:
            return cached[0]
        stored = self._room_hash.get(room_id.encode())
        return from_u64(stored) if stored is not None else None

    def current_state_ids(self, room_id: str) -> StateIds:
        """The room's current state (read-only; a new mapping after each change)."""
        cached = self._current.get(room_id)
        if cached is not None:
            return cached[1]
        shortstatehash = self.current_shortstatehash(room_id)
        if shortstatehash is None:
            return EMPTY_STATE
        state = self.state_ids(shortstatehash)
        self._current.put(room_id, (shortstatehash, state))
        return state

    def state_ids(self, shortstatehash: int) -> StateIds:
        """The snapshot `shortstatehash` as `(type, state_key) -> event_id`."""
        cached = self._snapshots.get(shortstatehash)
        if cached is not None:
            return cached
        derived = self._from_cached_ancestor(shortstatehash)
        if derived is not None:
            self._snapshots.put(shortstatehash, derived)
            return derived
        mapping = self._compressor.full_state(shortstatehash).mapping()
        state = MappingProxyType(
            {
                self._short.state_key(short_key): self._short.event_id(short_event)
                for short_key, short_event in mapping.items()
            }
        )
        self._snapshots.put(shortstatehash, state)
        return state

    def _from_cached_ancestor(self, shortstatehash: int) -> StateIds | None:
        """The snapshot as a cached layer below it plus the diffs above that layer, when
        those only add or replace entries: a few short ids looked up, not the whole
        state of a big room converted again (None: build it whole)."""
        layers = self._compressor.layers(shortstatehash)
        for depth in range(len(layers) - 2, -1, -1):
            base = self._snapshots.peek(layers[depth].shortstatehash)
            if base is None:
                continue
            above = layers[depth + 1 :]
            if sum(len(layer.added) for layer in above) > 256:
                return None
            state = base
            for layer in above:
                added = {item[:8] for item in layer.added}
                if any(item[:8] not in added for item in layer.removed):
                    return None  # an entry removed (state resolution): not an overlay
                for item in layer.added:
                    state = ChangedState.with_change(
                        state,
                        self._short.state_key(from_u64(item[:8])),
                        self._short.event_id(from_u64(item[8:])),
                    )
            return state
        return None

    def event_id_at(self, shortstatehash: int, key: StateKey) -> str | None:
        """One entry of a snapshot, without converting the whole snapshot."""
        cached = self._snapshots.peek(shortstatehash)
        if cached is not None:
            return cached.get(key)
        short_key = self._short.existing_short_state_key(key)
        if short_key is None:
            return None
        short_event = self._compressor.full_state(shortstatehash).get(short_key)
        return self._short.event_id(short_event) if short_event is not None else None

    def state_view_before(self, short_event_id: int) -> StateIds | None:
        """The state before the event, as a `SnapshotView` unless it is cached whole."""
        shortstatehash = self.shortstatehash_before(short_event_id)
        if shortstatehash is None:
            return None
        cached = self._snapshots.get(shortstatehash)
        return cached if cached is not None else SnapshotView(self, shortstatehash)

    def shortstatehash_before(self, short_event_id: int) -> int | None:
        stored = self._event_hash.get(u64(short_event_id))
        return from_u64(stored) if stored is not None else None

    def state_ids_before(self, short_event_id: int) -> StateIds | None:
        """The state before the event (None if the event has no recorded state)."""
        shortstatehash = self.shortstatehash_before(short_event_id)
        return self.state_ids(shortstatehash) if shortstatehash is not None else None

    def shortstatehash_after(self, short_event_id: int) -> int | None:
        stored = self._event_hash_after.get(u64(short_event_id))
        if stored is None:
            return self.shortstatehash_before(short_event_id)
        return from_u64(stored)

    def state_ids_after(self, short_event_id: int) -> StateIds | None:
        """The state after the event (None if the event has no recorded state)."""
        shortstatehash = self.shortstatehash_after(short_event_id)
        return self.state_ids(shortstatehash) if shortstatehash is not None else None

    def state_before_event(self, event_id: str) -> StateIds | None:
        """The state before `event_id` (None if unknown, or an outlier's)."""
        short = self._short.existing_short_event_id(event_id)
        return self.state_ids_before(short) if short is not None else None

    def state_after_event(self, event_id: str) -> StateIds | None:
        """The state after `event_id`: before it, plus it if it is an accepted state event."""
        short = self._short.existing_short_event_id(event_id)
        return self.state_ids_after(short) if short is not None else None

    def shortstatehash_after_event(self, event_id: str) -> int | None:
        short = self._short.existing_short_event_id(event_id)
        return self.shortstatehash_after(short) if short is not None else None

    def changes_between(self, old: int | None, new: int) -> dict[StateKey, str | None]:
        """What differs from snapshot `old` to `new`: key -> event id (None: removed).

        Reads both snapshots whole: for a current state that moves other than
        by one event on top of it (a fork resolved), not for every message.
        """
        old_map = self._compressor.full_state(old).mapping() if old is not None else {}
        new_map = self._compressor.full_state(new).mapping()
        changes: dict[StateKey, str | None] = {
            self._short.state_key(short_key): self._short.event_id(short_event)
            for short_key, short_event in new_map.items()
            if old_map.get(short_key) != short_event
        }
        for short_key in old_map.keys() - new_map.keys():
            changes[self._short.state_key(short_key)] = None
        return changes

    # ---- writing (within the caller's batch)

    def record_event_state(
        self, short_event_id: int, before: int | None, after: int | None, batch: WriteBatch
    ) -> None:
        """Record the state before and after an event (after only where it differs)."""
        if before is not None:
            batch.put(self._event_hash, u64(short_event_id), u64(before))
        if after is not None and after != before:
            batch.put(self._event_hash_after, u64(short_event_id), u64(after))

    def save_with_event(
        self,
        parent: int | None,
        state_key: StateKey,
        event_id: str,
        batch: WriteBatch,
    ) -> int:
        """A new snapshot: `parent` with `state_key` now pointing at `event_id`."""
        short_key = self._short.short_state_key(state_key, batch)
        short_event = self._short.short_event_id(event_id, batch)
        if parent is None:
            return self._compressor.save(frozenset({entry(short_key, short_event)}), None, batch)
        # The change alone, never the whole state: in a room of 10,000 members a
        # join costs the one entry (and its old value), not a copy of 10,000.
        previous = self._compressor.full_state(parent).get(short_key)
        if previous == short_event:
            return parent
        removed = {entry(short_key, previous)} if previous is not None else set()
        return self._compressor.save_change(parent, {entry(short_key, short_event)}, removed, batch)

    def save_state(self, state: StateIds, parent: int | None, batch: WriteBatch) -> int:
        """A snapshot of a whole state map (after state resolution, or a join over federation)."""
        full = frozenset(
            entry(
                self._short.short_state_key(state_key, batch),
                self._short.short_event_id(event_id, batch),
            )
            for state_key, event_id in state.items()
        )
        return self._compressor.save(full, parent, batch)

    def set_current(
        self,
        room_id: str,
        shortstatehash: int,
        batch: WriteBatch,
        *,
        changed: tuple[StateKey, str] | None = None,
    ) -> None:
        """Make `shortstatehash` the room's current state once `batch` commits.

        `changed` is the one entry that differs from the cached current state,
        when the caller knows it: the cache is then updated without reloading.
        """
        batch.put(self._room_hash, room_id.encode(), u64(shortstatehash))
        cached = self._current.peek(room_id)

        def update_cache() -> None:
            if changed is not None and cached is not None:
                state = ChangedState.with_change(cached[1], changed[0], changed[1])
                self._current.put(room_id, (shortstatehash, state))
                self._snapshots.put(shortstatehash, state)
            else:
                self._current.discard(room_id)

        batch.after_commit(update_cache)
        self._moved.tell(room_id, batch)
