"""The timeline of each room: its events in stream order, and how any event is stored.

Spec: `content/client-server-api/_index.md` ("Room Events", "Pagination",
"Redactions") and `content/server-server-api.md` (PDUs: `prev_events`,
forward extremities). Every event is a full PDU (hashed, signed, with
`prev_events`, `auth_events`, `depth`), stored with its `event_id` and an
`unsigned` object, under a PDU id = short room id + its position on the global
counter. So the events of a room are one key range, in the order clients see
them, and a stream position is a pagination token.

Every event is stored through `persist`, with an `EventContext` computed by
whoever judged it (the builder for ours, the incoming-event handler for other
servers'): the event, its indexes, the room's new forward extremities and
current state, the membership cache and the hooks' follow-up work (push
queue, federation outbox) land in one atomic batch; then the members'
`/sync` wake up. The caller holds the room's lock (`RoomGuard`). Events that
are not in the timeline (outliers, soft-failed, rejected) are kept by id in
`eventid_outlierpdu` with their status in `eventid_status`.

History fetched from other servers later (`/backfill`, `service/federation/
backfill.py`) goes *before* events already here, so it cannot take a place
on the counter: a backfilled event is stored under a longer PDU id, short
room id + anchor + (2**64 - 1 - step), which sorts after the event at
counter `anchor` and before the one at `anchor + 1`; each further step goes
further back. Its stream position is negative, -(anchor << 32 | step), and
a token `N >= 0` means "the event at N and the history filled in after it":
so `/messages` pages through backfilled history with the same tokens, and
`/sync`, which moves forwards from the tokens it gave out, shows it only to
a client that has not yet seen the event after it. History filled into the
middle of a timeline (a gap) has `FillPosition`s, which compare by where they
sit in the room, not by value. Backfilled events are stored by
`persist_backfilled`, never through `persist`: no hooks (push, outbox), no
forward extremities, no current state, no wake-ups.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from ...core.auth import auth_types_for_event
from ...core.client_events import STRIPPED_STATE_TYPES, stripped_state
from ...core.power_levels import PowerLevels
from ...core.redaction import redact
from ...core.room_versions import RoomVersion, get_room_version
from ...lru import LRUCache, MemoryBudget, event_size
from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, from_u64, u64
from ..coherence import Invalidations
from ..globals import Globals
from ..notifier import Notifier
from .event_context import EventContext, EventStatus
from .locks import RoomGuard
from .short import ShortIds, StateKey
from .state import RoomState
from .state_cache import StateCache

TREES = ("pduid_pdu", "eventid_pduid", "eventid_outlierpdu", "eventid_status", "roomid_pduleaves")

Event = Mapping[str, Any]
"""A stored event: the PDU plus `event_id` and `unsigned`. Never mutate one."""

FILL_STEP_BITS = 32
"""A backfilled event's position is -(anchor << FILL_STEP_BITS | step)."""
MAX_FILL_STEP = (1 << FILL_STEP_BITS) - 1
_TOP = (1 << 64) - 1
_PAST_FILLS = b"\xff" * 9
"""Sorts after every backfilled PDU id of an anchor, before the next counter value."""


def _room_order(position: int) -> tuple[int, int, int]:
    """Where a position sits in a room: the event at counter N, then the history filled
    in after it (further back, further down), then N + 1."""
    value = int(position)
    if value >= 0:
        return (value, 0, 0)
    anchor, step = divmod(-value, 1 << FILL_STEP_BITS)
    return (anchor, 1, -step)


class FillPosition(int):
    """The (negative) position of history filled into the middle of a timeline, after
    the event at counter `anchor` >= 1: it compares with any position by where its
    event sits (`_room_order`), not by its value, so `position <= since` (`/sync`),
    `position >= joined_at` (visibility) and the like read it in room order. Its value
    is the token (`str`, arithmetic: plain ints). History before a room's first event
    (anchor 0) needs no such care: plain negative numbers are in room order there."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return (
            _room_order(self) < _room_order(int(other))
            if isinstance(other, int)
            else NotImplemented
        )

    def __le__(self, other: object) -> bool:
        return (
            _room_order(self) <= _room_order(int(other))
            if isinstance(other, int)
            else NotImplemented
        )

    def __gt__(self, other: object) -> bool:
        return (
            _room_order(self) > _room_order(int(other))
            if isinstance(other, int)
            else NotImplemented
        )

    def __ge__(self, other: object) -> bool:
        return (
            _room_order(self) >= _room_order(int(other))
            if isinstance(other, int)
            else NotImplemented
        )


def _position_of(pdu_id: bytes) -> int:
    """The stream position a PDU id (short room id + ...) stands for."""
    if len(pdu_id) == 16:
        return from_u64(pdu_id[8:])
    anchor, step = from_u64(pdu_id[8:16]), _TOP - from_u64(pdu_id[16:24])
    position = -((anchor << FILL_STEP_BITS) | step)
    return FillPosition(position) if anchor else position


def _pdu_id_at(prefix: bytes, position: int) -> bytes:
    """The PDU id an event at exactly `position` has in the room of `prefix`."""
    value = int(position)
    if value >= 0:
        return prefix + u64(value)
    anchor, step = divmod(-value, 1 << FILL_STEP_BITS)
    return prefix + u64(anchor) + u64(_TOP - step)


def _last_key_at(prefix: bytes, position: int) -> bytes:
    """The greatest PDU id a token `position` covers: for N >= 0 the event at N and
    the history filled in after it; for a backfilled position the event there."""
    value = int(position)
    if value >= 0:
        return prefix + u64(value) + _PAST_FILLS
    return _pdu_id_at(prefix, value)


def encode_event(event: Event) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def redaction_target(event: Event) -> str | None:
    """The event an `m.room.redaction` redacts (top level before v11, in content after)."""
    target = event.get("redacts")
    if target is None:
        target = (event.get("content") or {}).get("redacts")
    return target if isinstance(target, str) else None


def _event_size(_key: object, event: Event) -> int:
    """For an event put without its stored bytes' length (none is, today)."""
    return event_size(len(encode_event(event)))


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
        memory: MemoryBudget | None = None,
    ) -> None:
        memory = memory or MemoryBudget(96.0)
        self.memory = memory
        """The byte budget of the room caches, for services whose caches follow events."""
        self._db = db
        self._globals = globals_
        self._short = short
        self._state = state
        self._state_cache = state_cache
        self._notifier = notifier
        self._pdus = db.tree("pduid_pdu")
        self._eventid_pduid = db.tree("eventid_pduid")
        self._outliers = db.tree("eventid_outlierpdu")
        self._status = db.tree("eventid_status")
        self._leaves = db.tree("roomid_pduleaves")
        self._events: LRUCache[str, Event] = memory.cache("events", cache_capacity, _event_size)
        self._versions: dict[str, RoomVersion] = {}
        self._started = globals_.current_count()
        self._newest: dict[str, int] = {}
        """Each room's newest timeline position since start: `/sync` skips quiet rooms."""
        self._extremities: dict[str, list[str]] = {}
        self._power_levels: dict[str, tuple[tuple[str | None, str | None], PowerLevels]] = {}
        self._by_pdu_id: LRUCache[bytes, Event] = memory.cache(
            "events_by_pdu_id", cache_capacity, _event_size
        )
        cluster = globals_.cluster
        self._room_news = Invalidations(
            cluster, "timeline", self._news_from_elsewhere, self._forget_every_room
        )
        """A room's new position and extremities, from an event another process stored."""
        self._rewritten = Invalidations(
            cluster, "events", self._forget_event, self._forget_every_event
        )
        """Events another process rewrote (redacted) or deleted (purged)."""
        self.indexers: list[Callable[[Event, bytes, WriteBatch], None]] = []
        """Called with each event, its PDU id and the batch that stores it: indexes of
        other services (search, relations) land in the same atomic write."""
        self.appending: list[Callable[[Event, EventContext, int | None, WriteBatch], None]] = []
        """Called with each event being persisted, its context, its stream position (None
        outside the timeline) and its batch, before the commit: durable follow-up work
        (the push queue, the federation outbox) is written with the event or not at all."""

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
        self._events.put(event_id, event, event_size(len(raw)))
        return event

    def auth_events_in(
        self, event: Mapping[str, Any], room_version: RoomVersion, state: Mapping[StateKey, str]
    ) -> dict[StateKey, Event]:
        """The events of `state` the auth rules judge `event` by (the create event always).

        One answer for our own events (the builder), others' (the incoming
        handler) and the joins and leaves we judge as the resident server.
        """
        keys = auth_types_for_event(
            event["type"], event["sender"], event.get("state_key"), event["content"], room_version
        )
        found = {}
        for key in (*keys, ("m.room.create", "")):
            event_id = state.get(key)
            stored = self.get_event(event_id) if event_id else None
            if stored is not None:
                found[key] = stored
        return found

    def status(self, event_id: str) -> EventStatus | None:
        """How a stored event takes part in its room (None: not stored).

        An event stored outside the timeline first (an outlier) and in it
        later keeps its first copy, unread: the timeline entry wins here and
        in `get_event`.
        """
        key = event_id.encode()
        if key in self._eventid_pduid:
            return EventStatus.TIMELINE
        stored = self._status.get(key)
        return EventStatus(stored.decode()) if stored is not None else None

    def is_rejected(self, event_id: str) -> bool:
        return self.status(event_id) is EventStatus.REJECTED

    def position(self, event_id: str) -> int | None:
        """The event's stream position (None for outliers and unknown events)."""
        pdu_id = self._eventid_pduid.get(event_id.encode())
        return _position_of(pdu_id) if pdu_id is not None else None

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
        """Events with a stream position greater than `position`, oldest first; from 0,
        the whole room, backfilled history included (0 is where paging forward starts)."""
        prefix = self._room_prefix(room_id)
        if prefix is None:
            return
        start = _last_key_at(prefix, position) + b"\x00" if int(position) != 0 else prefix
        for key, raw in self._pdus.iter_prefix(prefix, start=start):
            yield _position_of(key), self._decode(key, raw)

    def events_before(self, room_id: str, position: int) -> Iterator[tuple[int, Event]]:
        """Events with a stream position up to and including `position`, newest first."""
        prefix = self._room_prefix(room_id)
        if prefix is None:
            return
        start = _last_key_at(prefix, position)
        for key, raw in self._pdus.iter_prefix(prefix, reverse=True, start=start):
            yield _position_of(key), self._decode(key, raw)

    def event_at(self, room_id: str, position: int) -> Event | None:
        """The room's event at exactly this stream position."""
        prefix = self._room_prefix(room_id)
        if prefix is None:
            return None
        pdu_id = _pdu_id_at(prefix, position)
        raw = self._pdus.get(pdu_id)
        return self._decode(pdu_id, raw) if raw is not None else None

    def changed_since(self, room_id: str, since: int) -> bool:
        """Whether the room may have timeline events after `since`, from memory (True
        when `since` is older than this process: then only the database knows)."""
        return since < self._started or self._newest.get(room_id, 0) > since

    def last_position(self, room_id: str) -> int:
        """The position of the room's newest event (0 if none)."""
        prefix = self._room_prefix(room_id)
        last = self._pdus.last(prefix) if prefix is not None else None
        return _position_of(last[0]) if last is not None else 0

    def purge_events(self, room_id: str, *, up_to: int, keep: Collection[str]) -> int:
        """Delete the room's timeline events at positions up to `up_to`, but those in
        `keep`; how many went (the admin room's `purge-room`).

        The caller keeps the room's current state events (its version and the auth of
        the leaves sent since still resolve) and the events after `up_to` (the leaves,
        still to be sent). Outliers and the indexes that name the deleted PDU ids stay:
        they answer only members, and the room has none of ours left.
        """
        prefix = self._room_prefix(room_id)
        if prefix is None:
            return 0
        gone: list[tuple[bytes, str]] = []
        with self._db.batch() as batch:
            for pdu_id, raw in self._pdus.iter_prefix(prefix):
                event_id = json.loads(raw)["event_id"]
                if _position_of(pdu_id) > up_to or event_id in keep:
                    continue
                batch.delete(self._pdus, pdu_id)
                batch.delete(self._eventid_pduid, event_id.encode())
                gone.append((pdu_id, event_id))

            def forget_cached() -> None:
                for pdu_id, event_id in gone:
                    self._forget_event([event_id, pdu_id.hex()])

            batch.after_commit(forget_cached)
            self._rewritten.tell_all(([event_id, pdu_id.hex()] for pdu_id, event_id in gone), batch)
        return len(gone)

    # ---- what other processes changed (`coherence`)

    def _news_from_elsewhere(self, item: list[Any]) -> None:
        room_id, count = item
        self._extremities.pop(room_id, None)
        if count > self._newest.get(room_id, 0):
            self._newest[room_id] = count

    def _forget_every_room(self) -> None:
        """A message too big to tell which room: every room may have news."""
        self._extremities.clear()
        assert self._globals.cluster is not None
        self._started = self._globals.cluster.latest_position() + 1

    def _forget_event(self, item: list[str]) -> None:
        event_id, pdu_id = item
        self._events.discard(event_id)
        self._by_pdu_id.discard(bytes.fromhex(pdu_id))

    def _forget_every_event(self) -> None:
        self._events.clear()
        self._by_pdu_id.clear()

    def _decode(self, pdu_id: bytes, raw: bytes) -> Event:
        """The stored event, parsed at most once while it stays in the cache."""
        cached = self._by_pdu_id.get(pdu_id)
        if cached is not None:
            return cached
        event = json.loads(raw)
        self._by_pdu_id.put(pdu_id, event, event_size(len(raw)))
        return event

    # ---- persisting

    def batch(self) -> WriteBatch:
        """A batch for one event: the context's new snapshots first, then `persist`."""
        return self._db.batch()

    def persist(
        self,
        guard: RoomGuard,
        event: Event,
        room_version: RoomVersion,
        context: EventContext,
        batch: WriteBatch | None = None,
    ) -> int | None:
        """Store an event as its context says; its stream position if it joins the timeline.

        The one way an event, ours or another server's, gets stored. Writes
        the PDU, its indexes, the state before and after it, the room's new
        current state and forward extremities, and whatever the `appending`
        hooks add (push queue, federation outbox), in `batch` (a new one if
        None, which already holds the snapshots the context names), then
        commits it. Outliers, soft-failed and rejected events are kept by id
        only, outside the timeline: `/sync`, `/messages` and the indexes
        never see them.

        Runs without awaiting, under the room's lock (`guard`): the position
        and the write happen together (see `Globals.next_count`).
        """
        room_id = event["room_id"]
        guard.require(room_id)
        event_id = event["event_id"]
        in_timeline = context.status is EventStatus.TIMELINE
        if not in_timeline and event_id in (context.forward_extremities or ()):
            raise ValueError(f"a {context.status.value} event cannot be a forward extremity")
        batch = batch if batch is not None else self._db.batch()
        short_event = self._short.short_event_id(event_id, batch)
        self._state.record_event_state(
            short_event, context.state_before, context.state_after, batch
        )
        stored = dict(event)
        count = pdu_id = None
        if in_timeline:
            short_room = self._short.create_short_room_id(room_id, batch)
            count = self._globals.next_count()
            pdu_id = u64(short_room) + u64(count)
            if "state_key" in event:
                self._add_replaced_state(stored, context.state_before)
            if event["type"] == "m.room.redaction":
                self._apply_redaction(stored, room_version, context.state_before, batch)
            encoded = encode_event(stored)
            batch.put(self._pdus, pdu_id, encoded)
            batch.put(self._eventid_pduid, event_id.encode(), pdu_id)
            for index in self.indexers:
                index(stored, pdu_id, batch)
        else:
            encoded = encode_event(stored)
            batch.put(self._outliers, event_id.encode(), encoded)
            batch.put(self._status, event_id.encode(), context.status.value.encode())
        if context.forward_extremities is not None:
            self._set_forward_extremities(room_id, context.forward_extremities, batch)
        if context.current_state is not None:
            assert count is not None
            self._set_current_state(stored, context, count, batch)
        for hook in self.appending:
            hook(stored, context, count, batch)
        if count is not None or context.forward_extremities is not None:
            self._room_news.tell([room_id, count or 0], batch)
        batch.commit()

        size = event_size(len(encoded))
        self._events.put(event_id, stored, size)
        if pdu_id is None:
            return None
        self._by_pdu_id.put(pdu_id, stored, size)
        if count is not None and count > self._newest.get(room_id, 0):
            self._newest[room_id] = count
        if event["type"] == "m.room.create":
            self._versions[room_id] = room_version
        self._notify_room(room_id, event)
        return count

    # ---- history from other servers (backfill)

    def backfill_positions(self, room_id: str, below_event_id: str, count: int) -> list[int]:
        """`count` free positions just before `below_event_id` and the history already
        filled in before it, oldest first: where its missing ancestors go.

        Below the room's first event the anchor is 0; below any other event
        at counter N it is N - 1; below a backfilled event, that event's own
        anchor, one step further back each time. Call it and
        `persist_backfilled` under the room's lock, without awaiting between.
        """
        prefix = self._room_prefix(room_id)
        pdu_id = self.pdu_id(below_event_id)
        if prefix is None or pdu_id is None or not pdu_id.startswith(prefix):
            raise ValueError(f"{below_event_id} is not in the timeline of {room_id}")
        if len(pdu_id) == 24:
            anchor = from_u64(pdu_id[8:16])
        else:
            first = next(self._pdus.keys_with_prefix(prefix), None)
            anchor = 0 if first == pdu_id else from_u64(pdu_id[8:]) - 1
        anchor_prefix = prefix + u64(anchor)
        deepest = next(self._pdus.iter_prefix(anchor_prefix, start=anchor_prefix + b"\x00"), None)
        taken = _TOP - from_u64(deepest[0][16:24]) if deepest is not None else 0
        if taken + count >= MAX_FILL_STEP:  # the next token down must stay in this anchor
            raise ValueError(f"no room left for history before {below_event_id}")
        return [-((anchor << FILL_STEP_BITS) | step) for step in range(taken + count, taken, -1)]

    def persist_backfilled(
        self,
        guard: RoomGuard,
        event: Event,
        room_version: RoomVersion,
        position: int,
        state_before: int | None,
        state_after: int | None,
        batch: WriteBatch | None = None,
    ) -> None:
        """Store an accepted event of the room's past at `position` (from `backfill_positions`).

        What `persist` writes for a timeline event, less what only new events
        do: no `appending` hooks (no push, no federation outbox), no forward
        extremities, no current state or membership change, no wake-up of
        `/sync`, and no indexers (search and relations decode counter
        positions). An outlier copy stays where it was; the timeline entry
        wins (`status`, `get_event`).
        """
        room_id = event["room_id"]
        guard.require(room_id)
        event_id = event["event_id"]
        prefix = self._room_prefix(room_id)
        if int(position) >= 0 or prefix is None:
            raise ValueError("backfilled events take the negative positions of a known room")
        pdu_id = _pdu_id_at(prefix, position)
        if self.pdu_id(event_id) is not None or self._pdus.get(pdu_id) is not None:
            raise ValueError(f"{event_id} or position {position} is already in the timeline")
        batch = batch if batch is not None else self._db.batch()
        short_event = self._short.short_event_id(event_id, batch)
        self._state.record_event_state(short_event, state_before, state_after, batch)
        stored = dict(event)
        if "state_key" in event:
            self._add_replaced_state(stored, state_before)
        if event["type"] == "m.room.redaction":
            self._apply_redaction(stored, room_version, state_before, batch)
        encoded = encode_event(stored)
        batch.put(self._pdus, pdu_id, encoded)
        batch.put(self._eventid_pduid, event_id.encode(), pdu_id)
        batch.commit()
        size = event_size(len(encoded))
        self._events.put(event_id, stored, size)
        self._by_pdu_id.put(pdu_id, stored, size)

    def _set_forward_extremities(
        self, room_id: str, extremities: tuple[str, ...], batch: WriteBatch
    ) -> None:
        previous = set(self.forward_extremities(room_id))
        new = set(extremities)
        prefix = room_id.encode() + SEPARATOR
        for event_id in previous - new:
            batch.delete(self._leaves, prefix + event_id.encode())
        for event_id in new - previous:
            batch.put(self._leaves, prefix + event_id.encode(), b"")
        batch.after_commit(lambda: self._extremities.__setitem__(room_id, list(extremities)))

    def _state_at(self, room_id: str, shortstatehash: int | None) -> Mapping[StateKey, str]:
        """A snapshot as a map, from the current-state cache when it is the current one."""
        if shortstatehash is None:
            return {}
        if shortstatehash == self._state.current_shortstatehash(room_id):
            return self._state.current_state_ids(room_id)
        return self._state.state_ids(shortstatehash)

    def _add_replaced_state(self, stored: dict[str, Any], state_before: int | None) -> None:
        """`unsigned.prev_content`, `prev_sender`, `replaces_state`: the state it replaces."""
        key = (stored["type"], stored["state_key"])
        previous_id = self._state_at(stored["room_id"], state_before).get(key)
        previous = self.get_event(previous_id) if previous_id is not None else None
        if previous is None:
            return
        unsigned = dict(stored.get("unsigned") or {})
        unsigned["prev_content"] = previous.get("content", {})
        unsigned["prev_sender"] = previous["sender"]
        unsigned["replaces_state"] = previous_id
        stored["unsigned"] = unsigned

    def _set_current_state(
        self, stored: dict[str, Any], context: EventContext, count: int, batch: WriteBatch
    ) -> None:
        """Make `context.current_state` current, and the membership cache follow it.

        The common case, one state event on top of the current state, changes
        one entry; anything else (a fork resolved) diffs the two snapshots.
        """
        room_id = stored["room_id"]
        previous = self._state.current_shortstatehash(room_id)
        new = context.current_state
        assert new is not None
        if new == previous:
            return
        if (
            "state_key" in stored
            and context.state_before == previous
            and context.state_after == new
        ):
            key = (stored["type"], stored["state_key"])
            self._state.set_current(room_id, new, batch, changed=(key, stored["event_id"]))
            changes: Mapping[StateKey, str | None] = {key: stored["event_id"]}
        else:
            changes = self._state.changes_between(previous, new)
            self._state.set_current(room_id, new, batch)
        for (event_type, user_id), member_id in changes.items():
            if event_type != "m.room.member":
                continue
            member = stored if member_id == stored["event_id"] else None
            if member is None and member_id is not None:
                member = self.get_event(member_id)
            membership = (member or {}).get("content", {}).get("membership", "leave")
            invite_state = None
            if membership in ("invite", "knock") and member is not None:
                invite_state = self.stripped_room_state(room_id) + stripped_state([member])
            self._state_cache.update_membership(
                batch, room_id, user_id, membership, count, invite_state
            )

    def stripped_room_state(self, room_id: str) -> list[dict[str, Any]]:
        """The state shown to invited and knocking users (spec: Stripped state)."""
        events = (self.state_event(room_id, event_type) for event_type in STRIPPED_STATE_TYPES)
        return stripped_state(event for event in events if event is not None)

    def _apply_redaction(
        self,
        redaction: dict[str, Any],
        room_version: RoomVersion,
        state_before: int | None,
        batch: WriteBatch,
    ) -> None:
        """Redact the target in storage, if the redaction is one the server must apply.

        Spec (rooms v3+ "Handling redactions"; v1–v2 auth rules): the target
        must be in the same room, and the sender must be allowed to redact
        others' events, or be the target's sender (v3+: same server is what
        federation can check; locally we require the same user, as the
        client-server API says). The power that counts is the one in the
        state before the redaction (for ours, the current state).
        """
        target_id = redaction_target(redaction)
        target = self.get_event(target_id) if target_id else None
        pdu_id = self._eventid_pduid.get(target_id.encode()) if target_id else None
        if target is None or pdu_id is None or target["room_id"] != redaction["room_id"]:
            return
        own_event = target["sender"] == redaction["sender"]
        if not own_event and not self._power_levels_at(
            redaction["room_id"], state_before, room_version
        ).can_redact(redaction["sender"], redacting_own=False):
            return
        redacted = redact(target, room_version)
        redacted["event_id"] = target["event_id"]
        redacted["unsigned"] = {"redacted_because": self.client_redaction(redaction)}
        encoded = encode_event(redacted)
        batch.put(self._pdus, pdu_id, encoded)

        def cache_redacted() -> None:
            size = event_size(len(encoded))
            self._events.put(target_id, redacted, size)
            self._by_pdu_id.put(pdu_id, redacted, size)

        batch.after_commit(cache_redacted)
        self._rewritten.tell([target_id, pdu_id.hex()], batch)

    def _power_levels_at(
        self, room_id: str, shortstatehash: int | None, room_version: RoomVersion
    ) -> PowerLevels:
        """The power levels of a snapshot (the cached current ones when it is current)."""
        if shortstatehash == self._state.current_shortstatehash(room_id):
            return self.power_levels(room_id)
        state = self._state_at(room_id, shortstatehash)
        found = {
            key: self.get_event(state[key]) if key in state else None
            for key in (("m.room.power_levels", ""), ("m.room.create", ""))
        }
        return PowerLevels.from_state(
            found[("m.room.power_levels", "")], found[("m.room.create", "")], room_version
        )

    @staticmethod
    def client_redaction(redaction: Event) -> dict[str, Any]:
        return {
            key: redaction[key]
            for key in ("content", "event_id", "origin_server_ts", "sender", "type", "redacts")
            if key in redaction
        }

    def _notify_room(self, room_id: str, event: Event) -> None:
        # The cached sets as they are (no copy of a big room's members per message):
        # the notifier intersects each with those waiting.
        self._notifier.notify(self._state_cache.joined_members(room_id))
        invited = self._state_cache.invited_members(room_id)
        if invited:
            self._notifier.notify(invited)
        if event["type"] == "m.room.member":
            self._notifier.notify([event["state_key"]])
