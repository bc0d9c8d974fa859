"""Short ids: 8-byte numbers standing for long strings in the room storage.

Conduit's idea: state snapshots and indexes store numbers instead of event
ids and `(type, state_key)` pairs, so a state entry is 16 bytes and a room
with 10,000 members keeps its state small. Short ids are allocated from the
global counter and never reused.
"""

from __future__ import annotations

from ...lru import SHORT_ID_ENTRY_BYTES, STATE_KEY_ENTRY_BYTES, LRUCache, MemoryBudget
from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, from_u64, u64
from ..globals import Globals

TREES = (
    "eventid_shorteventid",
    "shorteventid_eventid",
    "statekey_shortstatekey",
    "shortstatekey_statekey",
    "roomid_shortroomid",
)

StateKey = tuple[str, str]


def _state_key_size(state_key: StateKey, _short: int) -> int:
    return STATE_KEY_ENTRY_BYTES + len(state_key[0]) + len(state_key[1])


class ShortIds:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        cache_capacity: int,
        memory: MemoryBudget | None = None,
    ) -> None:
        memory = memory or MemoryBudget(96.0)
        self._globals = globals_
        self._eventid_short = db.tree("eventid_shorteventid")
        self._short_eventid = db.tree("shorteventid_eventid")
        self._statekey_short = db.tree("statekey_shortstatekey")
        self._short_statekey = db.tree("shortstatekey_statekey")
        self._roomid_short = db.tree("roomid_shortroomid")
        self._event_cache: LRUCache[str, int] = memory.cache(
            "event_short_ids", cache_capacity, lambda key, _: SHORT_ID_ENTRY_BYTES + len(key)
        )
        self._eventid_cache: LRUCache[int, str] = memory.cache(
            "short_event_ids", cache_capacity, lambda _, value: SHORT_ID_ENTRY_BYTES + len(value)
        )
        self._statekey_cache: LRUCache[StateKey, int] = memory.cache(
            "state_key_short_ids", cache_capacity, _state_key_size
        )
        self._short_statekey_cache: LRUCache[int, StateKey] = memory.cache(
            "short_state_keys", cache_capacity, lambda _, value: _state_key_size(value, 0)
        )
        self._pending: dict[str | StateKey, int] = {}
        self._pending_reverse: dict[int, str | StateKey] = {}
        """Short ids allocated in a batch not committed yet: a bounded cache may evict
        them before the commit, and the database does not have them; without these a
        second lookup in the same batch (a join's state) would allocate another id."""

    # ---- events

    def short_event_id(self, event_id: str, batch: WriteBatch | None = None) -> int:
        """The short id of `event_id`, allocated (in `batch`, or at once) if new."""
        cached = self._event_cache.get(event_id)
        if cached is None:
            cached = self._pending.get(event_id)  # type: ignore[assignment]
        if cached is not None:
            return cached
        key = event_id.encode()
        stored = self._eventid_short.get(key)
        if stored is not None:
            short = from_u64(stored)
        else:
            short = self._globals.next_count()
            if batch is None:
                self._eventid_short.put(key, u64(short))
                self._short_eventid.put(u64(short), key)
            else:
                batch.put(self._eventid_short, key, u64(short))
                batch.put(self._short_eventid, u64(short), key)
                self._hold_until_commit(event_id, short, batch)
            # Known both ways at once: the snapshots saved in the same batch name it.
            self._eventid_cache.put(short, event_id)
        self._event_cache.put(event_id, short)
        return short

    def _hold_until_commit(self, name: str | StateKey, short: int, batch: WriteBatch) -> None:
        self._pending[name] = short
        self._pending_reverse[short] = name

        def committed() -> None:
            self._pending.pop(name, None)
            self._pending_reverse.pop(short, None)

        batch.after_commit(committed)

    def existing_short_event_id(self, event_id: str) -> int | None:
        """The short id of `event_id` if it has one, without allocating one."""
        cached = self._event_cache.get(event_id)
        if cached is None:
            cached = self._pending.get(event_id)  # type: ignore[assignment]
        if cached is not None:
            return cached
        stored = self._eventid_short.get(event_id.encode())
        if stored is None:
            return None
        short = from_u64(stored)
        self._event_cache.put(event_id, short)
        return short

    def event_id(self, short: int) -> str:
        cached = self._eventid_cache.get(short)
        if cached is None:
            cached = self._pending_reverse.get(short)  # type: ignore[assignment]
        if cached is not None:
            return cached
        stored = self._short_eventid.get(u64(short))
        if stored is None:
            raise KeyError(f"unknown short event id {short}")
        event_id = stored.decode()
        self._eventid_cache.put(short, event_id)
        return event_id

    # ---- state keys

    def short_state_key(self, state_key: StateKey, batch: WriteBatch | None = None) -> int:
        """The short id of a `(type, state_key)` pair, allocated if new."""
        cached = self._statekey_cache.get(state_key)
        if cached is None:
            cached = self._pending.get(state_key)  # type: ignore[assignment]
        if cached is not None:
            return cached
        key = state_key[0].encode() + SEPARATOR + state_key[1].encode()
        stored = self._statekey_short.get(key)
        if stored is not None:
            short = from_u64(stored)
        else:
            short = self._globals.next_count()
            if batch is None:
                self._statekey_short.put(key, u64(short))
                self._short_statekey.put(u64(short), key)
            else:
                batch.put(self._statekey_short, key, u64(short))
                batch.put(self._short_statekey, u64(short), key)
                self._hold_until_commit(state_key, short, batch)
        self._statekey_cache.put(state_key, short)
        self._short_statekey_cache.put(short, state_key)
        return short

    def existing_short_state_key(self, state_key: StateKey) -> int | None:
        """The short id of a pair if it was ever used, without allocating one."""
        cached = self._statekey_cache.get(state_key)
        if cached is None:
            cached = self._pending.get(state_key)  # type: ignore[assignment]
        if cached is not None:
            return cached
        stored = self._statekey_short.get(state_key[0].encode() + SEPARATOR + state_key[1].encode())
        if stored is None:
            return None
        short = from_u64(stored)
        self._statekey_cache.put(state_key, short)
        self._short_statekey_cache.put(short, state_key)
        return short

    def state_key(self, short: int) -> StateKey:
        cached = self._short_statekey_cache.get(short)
        if cached is None:
            cached = self._pending_reverse.get(short)  # type: ignore[assignment]
        if cached is not None:
            return cached
        stored = self._short_statekey.get(u64(short))
        if stored is None:
            raise KeyError(f"unknown short state key {short}")
        event_type, _, state_key = stored.partition(SEPARATOR)
        pair = (event_type.decode(), state_key.decode())
        self._short_statekey_cache.put(short, pair)
        self._statekey_cache.put(pair, short)
        return pair

    # ---- rooms

    def short_room_id(self, room_id: str) -> int | None:
        stored = self._roomid_short.get(room_id.encode())
        return from_u64(stored) if stored is not None else None

    def room_ids(self) -> list[str]:
        """Every room this server has a short id for (each room it ever knew)."""
        return [key.decode() for key in self._roomid_short.keys_with_prefix()]

    def create_short_room_id(self, room_id: str, batch: WriteBatch) -> int:
        existing = self.short_room_id(room_id)
        if existing is not None:
            return existing
        short = self._globals.next_count()
        batch.put(self._roomid_short, room_id.encode(), u64(short))
        return short
