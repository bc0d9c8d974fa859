"""The timeline of each room: its events in stream order, and how an event is appended.

Spec: `content/client-server-api/_index.md` ("Room Events", "Pagination",
"Redactions") and `content/server-server-api.md` (PDUs: `prev_events`,
forward extremities). Every event is a full PDU (hashed, signed, with
`prev_events`, `auth_events`, `depth`), stored with its `event_id` and an
`unsigned` object, under a PDU id = short room id + its position on the global
counter. So the events of a room are one key range, in the order clients see
them, and a stream position is a pagination token.

Appending writes the event, its indexes, the room's new forward extremities,
the new state snapshot and the membership cache in one atomic batch, then
wakes the members' `/sync`. The caller holds the room's lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ...core.client_events import STRIPPED_STATE_TYPES, stripped_state
from ...core.power_levels import PowerLevels
from ...core.redaction import redact
from ...core.room_versions import RoomVersion, get_room_version
from ...lru import LRUCache
from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, from_u64, u64
from ..globals import Globals
from ..notifier import Notifier
from .short import ShortIds
from .state import RoomState
from .state_cache import StateCache

TREES = ("pduid_pdu", "eventid_pduid", "eventid_outlierpdu", "roomid_pduleaves")

Event = Mapping[str, Any]
"""A stored event: the PDU plus `event_id` and `unsigned`. Never mutate one."""


def encode_event(event: Event) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def redaction_target(event: Event) -> str | None:
    """The event an `m.room.redaction` redacts (top level before v11, in content after)."""
    target = event.get("redacts")
    if target is None:
        target = (event.get("content") or {}).get("redacts")
    return target if isinstance(target, str) else None


class Timeline:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        short: ShortIds,
        state: RoomState,
        state_cache: StateCache,
        notifier: Notifier,
        cache_capacity: int,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._short = short
        self._state = state
        self._state_cache = state_cache
        self._notifier = notifier
        self._pdus = db.tree("pduid_pdu")
        self._eventid_pduid = db.tree("eventid_pduid")
        self._outliers = db.tree("eventid_outlierpdu")
        self._leaves = db.tree("roomid_pduleaves")
        self._events: LRUCache[str, Event] = LRUCache(cache_capacity)
        self._versions: dict[str, RoomVersion] = {}
        self._extremities: dict[str, list[str]] = {}
        self._power_levels: dict[str, tuple[tuple[str | None, str | None], PowerLevels]] = {}
        self._by_pdu_id: LRUCache[bytes, Event] = LRUCache(cache_capacity)
        self.indexers: list[Callable[[Event, bytes, WriteBatch], None]] = []
        """Called with each event, its PDU id and the batch that stores it: indexes of
        other services (search, relations) land in the same atomic write."""
        self.appended: list[Callable[[Event, int], None]] = []
        """Called after each append with the event and its position (e.g. the sender queue)."""

    # ---- reading events

    def pdu_id(self, event_id: str) -> bytes | None:
        return self._eventid_pduid.get(event_id.encode())

    def get_event(self, event_id: str) -> Event | None:
        """A timeline event or an outlier, by id."""
        cached = self._events.get(event_id)
        if cached is not None:
            return cached
        pdu_id = self._eventid_pduid.get(event_id.encode())
        raw = (
            self._pdus.get(pdu_id) if pdu_id is not None else self._outliers.get(event_id.encode())
        )
        if raw is None:
            return None
        event = json.loads(raw)
        self._events.put(event_id, event)
        return event

    def position(self, event_id: str) -> int | None:
        """The event's stream position (None for outliers and unknown events)."""
        pdu_id = self._eventid_pduid.get(event_id.encode())
        return from_u64(pdu_id[8:]) if pdu_id is not None else None

    def room_version(self, room_id: str) -> RoomVersion:
        cached = self._versions.get(room_id)
        if cached is not None:
            return cached
        create_id = self._state.current_state_ids(room_id).get(("m.room.create", ""))
        create = self.get_event(create_id) if create_id else None
        if create is None:
            raise KeyError(f"unknown room {room_id}")
        version = get_room_version(str(create.get("content", {}).get("room_version", "1")))
        self._versions[room_id] = version
        return version

    def state_event(self, room_id: str, event_type: str, state_key: str = "") -> Event | None:
        """The current state event of that type and key."""
        event_id = self._state.current_state_ids(room_id).get((event_type, state_key))
        return self.get_event(event_id) if event_id else None

    def state_content(self, room_id: str, event_type: str, state_key: str = "") -> dict:
        event = self.state_event(room_id, event_type, state_key)
        return dict(event.get("content") or {}) if event else {}

    def power_levels(self, room_id: str) -> PowerLevels:
        """The room's current power levels (parsed once per power levels event)."""
        state = self._state.current_state_ids(room_id)
        key = (state.get(("m.room.power_levels", "")), state.get(("m.room.create", "")))
        cached = self._power_levels.get(room_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        power_levels = PowerLevels.from_state(
            self.state_event(room_id, "m.room.power_levels"),
            self.state_event(room_id, "m.room.create"),
            self.room_version(room_id),
        )
        self._power_levels[room_id] = (key, power_levels)
        return power_levels

    def forward_extremities(self, room_id: str) -> list[str]:
        """The room's newest events: what a new event's `prev_events` point to."""
        cached = self._extremities.get(room_id)
        if cached is None:
            prefix = room_id.encode() + SEPARATOR
            cached = [key[len(prefix) :].decode() for key in self._leaves.keys_with_prefix(prefix)]
            self._extremities[room_id] = cached
        return list(cached)

    # ---- reading ranges

    def _room_prefix(self, room_id: str) -> bytes | None:
        short_room = self._short.short_room_id(room_id)
        return u64(short_room) if short_room is not None else None

    def events_after(self, room_id: str, position: int) -> Iterator[tuple[int, Event]]:
        """Events with a stream position greater than `position`, oldest first."""
        prefix = self._room_prefix(room_id)
        if prefix is None:
            return
        for key, raw in self._pdus.iter_prefix(prefix, start=prefix + u64(position + 1)):
            yield from_u64(key[8:]), self._decode(key, raw)

    def events_before(self, room_id: str, position: int) -> Iterator[tuple[int, Event]]:
        """Events with a stream position up to and including `position`, newest first."""
        prefix = self._room_prefix(room_id)
        if prefix is None:
            return
        start = prefix + u64(max(position, 0))
        for key, raw in self._pdus.iter_prefix(prefix, reverse=True, start=start):
            yield from_u64(key[8:]), self._decode(key, raw)

    def event_at(self, room_id: str, position: int) -> Event | None:
        """The room's event at exactly this stream position."""
        prefix = self._room_prefix(room_id)
        if prefix is None:
            return None
        pdu_id = prefix + u64(position)
        raw = self._pdus.get(pdu_id)
        return self._decode(pdu_id, raw) if raw is not None else None

    def last_position(self, room_id: str) -> int:
        """The position of the room's newest event (0 if none)."""
        prefix = self._room_prefix(room_id)
        last = self._pdus.last(prefix) if prefix is not None else None
        return from_u64(last[0][8:]) if last is not None else 0

    def _decode(self, pdu_id: bytes, raw: bytes) -> Event:
        """The stored event, parsed at most once while it stays in the cache."""
        cached = self._by_pdu_id.get(pdu_id)
        if cached is not None:
            return cached
        event = json.loads(raw)
        self._by_pdu_id.put(pdu_id, event)
        return event

    # ---- appending

    def append(
        self,
        event: dict[str, Any],
        room_version: RoomVersion,
        *,
        also_write: Callable[[WriteBatch], None] | None = None,
    ) -> int:
        """Store an authorised PDU as the room's newest event; returns its position.

        `also_write` adds the caller's own records to the same atomic batch
        (e.g. the client's transaction id).

        Runs without awaiting: the position and the write happen together
        (see `Globals.next_count`). The caller holds the room's lock.
        """
        room_id = event["room_id"]
        event_id = event["event_id"]
        batch = self._db.batch()
        short_room = self._short.create_short_room_id(room_id, batch)
        count = self._globals.next_count()
        pdu_id = u64(short_room) + u64(count)
        short_event = self._short.short_event_id(event_id, batch)
        state_before = self._state.current_shortstatehash(room_id)
        self._state.record_state_before(short_event, state_before, batch)

        stored = dict(event)
        if "state_key" in event:
            self._apply_state_event(stored, state_before, room_version, count, batch)
        if event["type"] == "m.room.redaction":
            self._apply_redaction(stored, room_version, batch)

        previous_ids = {
            previous if isinstance(previous, str) else previous[0]
            for previous in event.get("prev_events", ())
        }
        for previous_id in previous_ids:
            batch.delete(self._leaves, room_id.encode() + SEPARATOR + previous_id.encode())
        batch.put(self._leaves, room_id.encode() + SEPARATOR + event_id.encode(), b"")
        extremities = [e for e in self.forward_extremities(room_id) if e not in previous_ids]
        batch.put(self._pdus, pdu_id, encode_event(stored))
        batch.put(self._eventid_pduid, event_id.encode(), pdu_id)
        for index in self.indexers:
            index(stored, pdu_id, batch)
        if also_write is not None:
            also_write(batch)
        batch.commit()

        self._events.put(event_id, stored)
        self._by_pdu_id.put(pdu_id, stored)
        self._extremities[room_id] = [*extremities, event_id]
        if event["type"] == "m.room.create":
            self._versions[room_id] = room_version
        self._notify_room(room_id, event)
        for callback in self.appended:
            callback(stored, count)
        return count

    def _apply_state_event(
        self,
        stored: dict[str, Any],
        state_before: int | None,
        room_version: RoomVersion,
        count: int,
        batch: WriteBatch,
    ) -> None:
        room_id = stored["room_id"]
        key = (stored["type"], stored["state_key"])
        previous_id = self._state.current_state_ids(room_id).get(key)
        unsigned = dict(stored.get("unsigned") or {})
        if previous_id is not None:
            previous = self.get_event(previous_id)
            if previous is not None:
                unsigned["prev_content"] = previous.get("content", {})
                unsigned["prev_sender"] = previous["sender"]
                unsigned["replaces_state"] = previous_id
        if unsigned:
            stored["unsigned"] = unsigned
        new_hash = self._state.save_with_event(state_before, key, stored["event_id"], batch)
        self._state.set_current(room_id, new_hash, batch, changed=(key, stored["event_id"]))
        if stored["type"] == "m.room.member":
            membership = stored.get("content", {}).get("membership")
            invite_state = None
            if membership in ("invite", "knock"):
                invite_state = self.stripped_room_state(room_id) + stripped_state([stored])
            self._state_cache.update_membership(
                batch, room_id, stored["state_key"], membership, count, invite_state
            )

    def stripped_room_state(self, room_id: str) -> list[dict[str, Any]]:
        """The state shown to invited and knocking users (spec: Stripped state)."""
        events = (self.state_event(room_id, event_type) for event_type in STRIPPED_STATE_TYPES)
        return stripped_state(event for event in events if event is not None)

    def _apply_redaction(
        self, redaction: dict[str, Any], room_version: RoomVersion, batch: WriteBatch
    ) -> None:
        """Redact the target in storage, if the redaction is one the server must apply.

        Spec (rooms v3+ "Handling redactions"; v1–v2 auth rules): the target
        must be in the same room, and the sender must be allowed to redact
        others' events, or be the target's sender (v3+: same server is what
        federation can check; locally we require the same user, as the
        client-server API says).
        """
        target_id = redaction_target(redaction)
        target = self.get_event(target_id) if target_id else None
        pdu_id = self._eventid_pduid.get(target_id.encode()) if target_id else None
        if target is None or pdu_id is None or target["room_id"] != redaction["room_id"]:
            return
        own_event = target["sender"] == redaction["sender"]
        if not own_event and not self.power_levels(redaction["room_id"]).can_redact(
            redaction["sender"], redacting_own=False
        ):
            return
        redacted = redact(target, room_version)
        redacted["event_id"] = target["event_id"]
        redacted["unsigned"] = {"redacted_because": self.client_redaction(redaction)}
        batch.put(self._pdus, pdu_id, encode_event(redacted))

        def cache_redacted() -> None:
            self._events.put(target_id, redacted)
            self._by_pdu_id.put(pdu_id, redacted)

        batch.after_commit(cache_redacted)

    @staticmethod
    def client_redaction(redaction: Event) -> dict[str, Any]:
        return {
            key: redaction[key]
            for key in ("content", "event_id", "origin_server_ts", "sender", "type", "redacts")
            if key in redaction
        }

    def _notify_room(self, room_id: str, event: Event) -> None:
        users = set(self._state_cache.joined_members(room_id))
        users.update(self._state_cache.invited_members(room_id))
        if event["type"] == "m.room.member":
            users.add(event["state_key"])
        self._notifier.notify(users)
