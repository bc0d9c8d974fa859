"""Other servers' events into our rooms: auth, missing events, state, and the event context.

Spec: `content/server-server-api.md` § Checks performed on receipt of a PDU
(steps 4–6 here; 1–3 are `received.checked_pdu`), § Rejection, § Soft
failure, § Room State Resolution, § Retrieving events, and DESIGN.md "Data
flow: an event from another server". For each event, in the spec's order:

1. its auth events must be stored: missing ones are fetched (`/event`),
   checked the same way and stored as outliers, recursively, at most
   `MAX_AUTH_FETCH` per event, all fetching for one pushed event within
   `FETCH_BUDGET_SECONDS` (a peer that never answers holds its room no longer);
2. its prev_events must have a known state: missing ones are asked for
   (`/get_missing_events`, at most `max_fetch_prev_events`) and handled
   oldest first through this same pipeline; where a gap remains below them,
   the state at the gap comes from `/state_ids` (its unknown events fetched
   and stored as outliers, at most `MAX_GAP_EVENTS` weighing `MAX_GAP_BYTES`).
   A *pushed* event whose prev_events are still unknown after that is
   dropped, as Synapse does: trusting a state it claims would let one event
   take over the room (`../shared/notes/federation-lessons.md`);
3. then, under the room's lock and without awaiting: an event with a
   prev_event of another room is rejected (that room's state is not its
   state); auth against its own auth events (else rejected), against the
   state before it — the
   resolution of its prev_events' states — (else rejected), against the
   current state (else soft-failed), and the `EventContext` for
   `Timeline.persist`: state before and after, the new forward extremities,
   and the new current state, resolved over them when they diverge.

All network fetching happens before the room lock is taken; the lock is held
only for the synchronous judgement and commit, as for our own events.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import trio

from ...core.auth import Rejection, check_auth
from ...core.canonical_json import encode_canonical_json
from ...core.errors import CanonicalJsonError, InvalidEvent
from ...core.events import room_id_for_create_event
from ...core.room_versions import RoomVersion
from ...storage import WriteBatch
from ..rooms import Rooms
from ..rooms.event_context import EventContext, EventStatus
from ..rooms.locks import RoomGuard
from ..rooms.short import StateKey
from ..rooms.state import StateIds
from .event_fetcher import EventFetcher
from .key_ring import KeyRing
from .received import DroppedPdu, auth_event_ids, checked_pdu, reference_ids

log = logging.getLogger(__name__)

MAX_AUTH_FETCH = 100
"""Auth events fetched for one event (its chain back to what we have)."""
MAX_GAP_EVENTS = 10_000
"""Events fetched to fill the state at one gap."""
MAX_GAP_BYTES = 64 * 1024 * 1024
"""What those events may weigh together (held in memory until they are stored): an honest
state of 10,000 events is ~10–20 MB; one of PDUs padded to 64 KiB would be 640 MB."""
GAP_FETCH_CONCURRENCY = 8
FETCH_BUDGET_SECONDS = 180.0
"""All the fetching one pushed event may cause (its auth events, missing prev_events, the
state at a gap): a peer that answers slowly, or never, holds the room's worker no longer
than this; whatever is still unknown then makes the event rejected or dropped."""
MAX_HIDDEN_ANCESTORS = 1000
"""Prev events walked behind soft-failed and rejected ones when extremities are replaced."""

Event = dict[str, Any]
Finish = Callable[[WriteBatch], None]
"""Adds the caller's records (taking a PDU off the inbound queue) to the batch that
persists the event, or that records it was dropped."""


class UnusableState(DroppedPdu):
    """A state another server gave (a `send_join` answer) that does not match the room's
    auth: events of another room, a state event the auth rules reject, or a state that
    is not the one the event's auth events come from. None of it is used as state."""


def _no_records(_batch: WriteBatch) -> None:
    return None


def _room_of(pdu: object, room_version: RoomVersion) -> object:
    """The room a received PDU is of (a v12 create names it by its own id)."""
    if not isinstance(pdu, Mapping):
        return None
    if room_version.room_id_is_create_event_id and pdu.get("type") == "m.room.create":
        try:
            return room_id_for_create_event(pdu, room_version)
        except (InvalidEvent, CanonicalJsonError, KeyError, TypeError, ValueError):
            return None
    return pdu.get("room_id")


def _as_judged(event: Event, room_version: RoomVersion) -> Event:
    """The event as the auth rules see it: a v12 create without the `room_id` we store."""
    if room_version.room_id_is_create_event_id and event["type"] == "m.room.create":
        return {key: value for key, value in event.items() if key != "room_id"}
    return event


def _signers(event: Mapping[str, Any]) -> set[str]:
    """The servers that signed an event whose signatures were verified on receipt."""
    signatures = event.get("signatures")
    return set(signatures) if isinstance(signatures, Mapping) else set()


def _is_signed_by(event: Mapping[str, Any], server_name: str) -> bool:
    return server_name in _signers(event)


class IncomingEvents:
    def __init__(
        self,
        rooms: Rooms,
        key_ring: KeyRing,
        fetcher: EventFetcher,
        max_fetch_prev_events: int,
    ) -> None:
        self._rooms = rooms
        self._timeline = rooms.timeline
        self._state = rooms.state
        self._key_ring = key_ring
        self._fetcher = fetcher
        self._max_fetch_prev_events = max_fetch_prev_events

    # ---- entry points

    async def handle_pushed(
        self, origin: str, event: Event, room_version: RoomVersion, finish: Finish = _no_records
    ) -> EventStatus | None:
        """A checked event `origin` pushed to us (`/send`): judged and persisted.

        Returns how it was stored, or None if it was dropped (prev_events that
        cannot be found) or was already stored. `finish` goes into the batch
        that stores it or records the drop.
        """
        if self._already_handled(event["event_id"]):
            self._commit(finish)
            return None
        room_id = event["room_id"]
        with trio.move_on_after(FETCH_BUDGET_SECONDS) as budget:
            await self._fetch_auth_events(origin, room_id, room_version, [event])
            if self._missing_prevs(event):
                await self._fetch_missing_prevs(origin, event, room_version)
        if budget.cancelled_caught:
            log.warning(
                "fetching what %s from %s needs took over %s s: judged with what arrived",
                event["event_id"],
                origin,
                FETCH_BUDGET_SECONDS,
            )
        missing = self._missing_prevs(event)
        if missing:
            log.warning(
                "dropping %s from %s: its prev_events %s cannot be found",
                event["event_id"],
                origin,
                ", ".join(missing),
            )
            self._commit(finish)
            return None
        async with self._rooms.locks.hold(room_id) as guard:
            return self._judge_and_persist(guard, event, room_version, finish)

    async def persist_with_state(
        self,
        origin: str,
        room_version: RoomVersion,
        pdu: Mapping[str, Any],
        state: Sequence[Mapping[str, Any]],
        auth_chain: Sequence[Mapping[str, Any]],
    ) -> tuple[str, EventStatus]:
        """An event whose state before another server tells us: a join's `send_join` answer.

        `state` (the state before the event) and `auth_chain` are PDUs as
        received; each is checked (steps 1–4) and stored as an outlier, or
        as rejected; the state before the event is made of the state events
        that were not rejected. The event itself is judged against that state
        and, if accepted, becomes the room's current tip: state after it is
        the room's current state, it alone is the forward extremity. Returns
        its event id and status (the stored status if it was stored before).
        Raises `DroppedPdu` if the event itself fails steps 1–3, and
        `UnusableState` (before any state is saved) for a state that does not
        match the room's auth (server-server API § Joining rooms: the state and
        auth chain are checked like any other events): an event of another
        room, a state event the auth rules reject, or the event citing an auth
        event that is not the state's at its key. A state event whose
        signatures do not hold is left out, as from any other answer.
        """
        event = await checked_pdu(self._key_ring, pdu, room_version)
        known = self._timeline.status(event["event_id"])
        if known is not None and known is not EventStatus.OUTLIER:
            return event["event_id"], known  # a retried join: stored once is enough
        room_id = event["room_id"]
        for given in [*state, *auth_chain]:
            other_room = _room_of(given, room_version)
            if other_room != room_id:
                raise UnusableState(f"it holds an event of another room ({str(other_room)[:100]})")
        checked_state = await self._checked(origin, room_version, state)
        checked = {**await self._checked(origin, room_version, auth_chain), **checked_state}
        await self._store_checked(origin, room_version, checked)
        state_ids: StateIds = {}
        for found in checked.values():
            if found["event_id"] not in checked_state or "state_key" not in found:
                continue
            if self._timeline.is_rejected(found["event_id"]):
                raise UnusableState(
                    f"its state event {found['event_id']} ({found['type']}) does not pass "
                    "the auth rules"
                )
            state_ids[(found["type"], found["state_key"])] = found["event_id"]
        self._check_cited_in_state(event, room_version, state_ids)
        await self._fetch_auth_events(origin, room_id, room_version, [event])
        async with self._rooms.locks.hold(room_id) as guard:
            batch = self._timeline.batch()
            before = self._state.save_state(state_ids, None, batch)
            status = self._status(event, room_version, state_ids, soft_fail=False)
            after = self._state_after(event, status, before, batch)
            if status is EventStatus.TIMELINE:
                context = EventContext(status, before, after, after, (event["event_id"],))
            else:
                context = EventContext(status, before, after)
            self._timeline.persist(guard, event, room_version, context, batch)
        return event["event_id"], status

    def _check_cited_in_state(
        self, event: Event, room_version: RoomVersion, state_ids: StateIds
    ) -> None:
        """The event's auth events come from the state before it (spec § Auth events
        selection): each one it cites must be the state's event at its key."""
        for auth_id in reference_ids(event.get("auth_events")):
            auth_event = self._timeline.get_event(auth_id)
            if auth_event is None or "state_key" not in auth_event:
                raise UnusableState(f"the event's auth event {auth_id} is not in it")
            key = (auth_event["type"], auth_event["state_key"])
            if state_ids.get(key) != auth_id:
                raise UnusableState(
                    f"the event's auth event {auth_id} ({key[0]}) is not its state at {key}"
                )

    async def persist_outliers(
        self, origin: str, room_version: RoomVersion, pdus: Iterable[Mapping[str, Any]]
    ) -> list[Event]:
        """Other servers' events known by id only (an auth chain, a state): checked and stored.

        Each passes steps 1–3 or is left out; missing auth events are fetched
        from `origin`; then each is judged against its own auth events, in
        auth order, and stored as an outlier or as rejected. Returns the
        events that passed steps 1–3 (stored now, or already before).
        """
        checked = await self._checked(origin, room_version, pdus)
        await self._store_checked(origin, room_version, checked)
        return list(checked.values())

    async def _checked(
        self, origin: str, room_version: RoomVersion, pdus: Iterable[Mapping[str, Any]]
    ) -> dict[str, Event]:
        """The PDUs that pass steps 1–3, by event id (the others are logged and left out)."""
        checked: dict[str, Event] = {}
        for pdu in pdus:
            try:
                event = await checked_pdu(self._key_ring, pdu, room_version)
            except DroppedPdu as error:
                log.info("left out an event from %s: %s", origin, error)
                continue
            checked[event["event_id"]] = event
        return checked

    async def _store_checked(
        self, origin: str, room_version: RoomVersion, checked: Mapping[str, Event]
    ) -> None:
        """Checked events stored as outliers (or rejected), their missing auth events first."""
        by_room: dict[str, list[Event]] = {}
        for event in checked.values():
            by_room.setdefault(event["room_id"], []).append(event)
        for room_id, events in by_room.items():
            await self._fetch_auth_events(origin, room_id, room_version, events)
            await self._store_outliers(room_id, room_version, events)

    # ---- what is already here

    def stored_state(self, room_id: str, event_ids: Iterable[str]) -> dict[StateKey, str]:
        """The state map a peer's `/state_ids` answer names, from the events stored here.

        Only stored, unrejected state events of `room_id` count: a peer's list can
        name events we could not fetch, events of another room, or ones we rejected,
        and none of those may stand in the state an event is judged against.
        """
        state: dict[StateKey, str] = {}
        for event_id in event_ids:
            event = self._timeline.get_event(event_id)
            if (
                event is not None
                and "state_key" in event
                and event["room_id"] == room_id
                and not self._timeline.is_rejected(event_id)
            ):
                state[(event["type"], event["state_key"])] = event_id
        return state

    def _already_handled(self, event_id: str) -> bool:
        """Stored with its place in the room. An outlier known by id only is not: it can
        still join the timeline. One stored with its state (the prev event at a gap) is:
        its children are stored, so it can never be a forward extremity."""
        status = self._timeline.status(event_id)
        if status is not EventStatus.OUTLIER:
            return status is not None
        return self._state.shortstatehash_after_event(event_id) is not None

    def _missing_prevs(self, event: Mapping[str, Any]) -> list[str]:
        """The event's prev_events whose state after is not known here."""
        return [
            prev_id
            for prev_id in reference_ids(event.get("prev_events"))
            if self._state.shortstatehash_after_event(prev_id) is None
        ]

    def _prevs_of_other_rooms(self, event: Mapping[str, Any]) -> str | None:
        """A prev_event of the event that is stored here as an event of another room.

        Spec § PDUs: prev_events are the event's parents in its room. One of
        another room would make that room's state the state before the event
        (and so part of this room's current state): the event is rejected.
        """
        for prev_id in reference_ids(event.get("prev_events")):
            prev = self._timeline.get_event(prev_id)
            if prev is not None and prev["room_id"] != event["room_id"]:
                return prev_id
        return None

    def _commit(self, finish: Finish) -> None:
        batch = self._timeline.batch()
        finish(batch)
        batch.commit()

    # ---- fetching (no lock held)

    async def _fetch_auth_events(
        self, origin: str, room_id: str, room_version: RoomVersion, events: Sequence[Event]
    ) -> None:
        """Store every auth event `events` cite that is not here yet, fetched from `origin`."""
        known = {event["event_id"] for event in events}
        wanted = [
            auth_id
            for event in events
            for auth_id in auth_event_ids(event, room_version)
            if auth_id not in known
        ]
        fetched: dict[str, Event] = {}
        while wanted and len(fetched) < MAX_AUTH_FETCH:
            auth_id = wanted.pop()
            if auth_id in fetched or self._timeline.get_event(auth_id) is not None:
                continue
            event = await self._fetcher.event(origin, room_id, auth_id, room_version)
            if event is None:
                continue  # whatever cites it is rejected: its auth event is missing
            fetched[auth_id] = event
            wanted.extend(auth_event_ids(event, room_version))
        if fetched:
            await self._store_outliers(room_id, room_version, list(fetched.values()))

    async def _fetch_missing_prevs(
        self, origin: str, event: Event, room_version: RoomVersion
    ) -> None:
        """`/get_missing_events` between our forward extremities and `event`, each handled
        oldest first; a gap below the oldest is filled from `/state_ids`."""
        room_id = event["room_id"]
        pulled = await self._fetcher.missing_events(
            origin,
            room_id,
            earliest=self._timeline.forward_extremities(room_id),
            latest=[event["event_id"]],
            limit=self._max_fetch_prev_events,
            room_version=room_version,
        )
        for missing in pulled:
            if self._already_handled(missing["event_id"]):
                continue
            await self._fetch_auth_events(origin, room_id, room_version, [missing])
            for prev_id in self._missing_prevs(missing):
                await self._fill_gap(origin, room_id, prev_id, room_version)
            if self._missing_prevs(missing):
                log.warning("dropping pulled %s: no state at its prev_events", missing["event_id"])
                continue
            async with self._rooms.locks.hold(room_id) as guard:
                self._judge_and_persist(guard, missing, room_version, _no_records)

    async def _fill_gap(
        self, origin: str, room_id: str, prev_id: str, room_version: RoomVersion
    ) -> None:
        """Learn the state after `prev_id` from `origin` (`/state_ids` + the unknown events),
        and store `prev_id` as an outlier with that state."""
        answer = await self._fetcher.state_ids(origin, room_id, prev_id)
        if answer is None:
            return
        wanted = [
            event_id
            for event_id in dict.fromkeys([*answer.auth_chain_ids, *answer.pdu_ids, prev_id])
            if self._timeline.get_event(event_id) is None
        ]
        if len(wanted) > MAX_GAP_EVENTS:
            log.warning("not filling the gap at %s: %d unknown events", prev_id, len(wanted))
            return
        fetched: list[Event] = []
        weight = 0
        limiter = trio.CapacityLimiter(GAP_FETCH_CONCURRENCY)

        async def fetch(event_id: str, nursery: trio.Nursery) -> None:
            nonlocal weight
            async with limiter:
                event = await self._fetcher.event(origin, room_id, event_id, room_version)
            if event is None:
                return
            fetched.append(event)
            weight += len(encode_canonical_json(event))
            if weight > MAX_GAP_BYTES:
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for event_id in wanted:
                nursery.start_soon(fetch, event_id, nursery)
        if weight > MAX_GAP_BYTES:
            log.warning(
                "not filling the gap at %s from %s: its events weigh over %d bytes",
                prev_id,
                origin,
                MAX_GAP_BYTES,
            )
            return
        await self._fetch_auth_events(origin, room_id, room_version, fetched)
        await self._store_outliers(room_id, room_version, fetched)
        prev = self._timeline.get_event(prev_id)
        if prev is None:
            return
        state_ids = self.stored_state(room_id, answer.pdu_ids)
        async with self._rooms.locks.hold(room_id) as guard:
            batch = self._timeline.batch()
            before = self._state.save_state(state_ids, None, batch)
            rejected = self._timeline.is_rejected(prev_id) or (
                self._rejection(prev, room_version, state_ids) is not None
            )
            status = EventStatus.REJECTED if rejected else EventStatus.OUTLIER
            after = self._state_after(prev, status, before, batch)
            context = EventContext(status, before, after)
            self._timeline.persist(guard, prev, room_version, context, batch)

    # ---- judging (under the room's lock, no awaiting)

    async def _store_outliers(
        self, room_id: str, room_version: RoomVersion, events: Sequence[Event]
    ) -> None:
        """Store checked events as outliers (or rejected), each after the auth events it cites."""
        async with self._rooms.locks.hold(room_id) as guard:
            for event in _auth_order(events, room_version):
                if self._timeline.status(event["event_id"]) is not None:
                    continue
                rejection = self._own_auth_rejection(event, room_version)
                if rejection is not None:
                    log.info("rejected outlier %s: %s", event["event_id"], rejection)
                status = EventStatus.OUTLIER if rejection is None else EventStatus.REJECTED
                context = EventContext(status, None, None)
                self._timeline.persist(guard, event, room_version, context)

    def _judge_and_persist(
        self, guard: RoomGuard, event: Event, room_version: RoomVersion, finish: Finish
    ) -> EventStatus | None:
        """Steps 4–6 and the event context; every prev_event's state is known by now."""
        if self._already_handled(event["event_id"]):
            self._commit(finish)
            return None
        room_id = event["room_id"]
        batch = self._timeline.batch()
        finish(batch)
        foreign = self._prevs_of_other_rooms(event)
        if foreign:
            log.info("rejected %s: its prev_event %s is another room's", event["event_id"], foreign)
            context = EventContext(EventStatus.REJECTED, None, None)
            self._timeline.persist(guard, event, room_version, context, batch)
            return EventStatus.REJECTED
        before = self._state_before(room_id, event, batch)
        state_before = self._state.state_ids(before) if before is not None else {}
        status = self._status(event, room_version, state_before, soft_fail=True)
        after = self._state_after(event, status, before, batch)
        if status is EventStatus.TIMELINE:
            context = self._timeline_context(room_id, event, before, after, batch)
        else:
            context = EventContext(status, before, after)
        self._timeline.persist(guard, event, room_version, context, batch)
        if status is EventStatus.SOFT_FAILED:  # a rejection was logged with its reason
            log.info("%s is soft-failed", event["event_id"])
        return status

    def _status(
        self,
        event: Event,
        room_version: RoomVersion,
        state_before: StateIds,
        *,
        soft_fail: bool,
    ) -> EventStatus:
        rejection = self._own_auth_rejection(event, room_version) or self._rejection(
            event, room_version, state_before
        )
        if rejection is not None:
            log.info("rejected %s: %s", event["event_id"], rejection)
            return EventStatus.REJECTED
        if soft_fail:
            current = self._state.current_state_ids(event["room_id"])
            if self._rejection(event, room_version, current) is not None:
                return EventStatus.SOFT_FAILED
        return EventStatus.TIMELINE

    def _state_before(self, room_id: str, event: Event, batch: WriteBatch) -> int | None:
        """The resolution of the states after the event's prev_events (None for a create)."""
        hashes = [
            shortstatehash
            for prev_id in reference_ids(event.get("prev_events"))
            if (shortstatehash := self._state.shortstatehash_after_event(prev_id)) is not None
        ]
        if not hashes:
            return None
        return self._rooms.resolution.save_resolved(room_id, hashes, batch)

    def _state_after(
        self, event: Event, status: EventStatus, before: int | None, batch: WriteBatch
    ) -> int | None:
        """Before, plus the event if it is a state event that was not rejected."""
        if status is EventStatus.REJECTED or "state_key" not in event:
            return before
        key = (event["type"], event["state_key"])
        return self._state.save_with_event(before, key, event["event_id"], batch)

    def _timeline_context(
        self, room_id: str, event: Event, before: int | None, after: int | None, batch: WriteBatch
    ) -> EventContext:
        """An accepted event replaces its prev_events among the forward extremities; the
        current state is the resolution of the states after the new extremities."""
        replaced = self._replaced_extremities(event)
        others = [e for e in self._timeline.forward_extremities(room_id) if e not in replaced]
        hashes = [
            shortstatehash
            for other in others
            if (shortstatehash := self._state.shortstatehash_after_event(other)) is not None
        ]
        current = None
        if after is not None:
            current = self._rooms.resolution.save_resolved(
                room_id, [*hashes, after], batch, pending=[event]
            )
        return EventContext(
            EventStatus.TIMELINE,
            state_before=before,
            state_after=after,
            current_state=current,
            forward_extremities=(*others, event["event_id"]),
        )

    def _replaced_extremities(self, event: Event) -> set[str]:
        """The event's prev_events, and behind those that were soft-failed or rejected
        (never extremities themselves) their prev_events, recursively: whatever the event
        now descends from (as Synapse's `_get_prevs_before_rejected`), so no extremity is
        left dangling behind a hidden event."""
        replaced: set[str] = set()
        to_visit = reference_ids(event.get("prev_events"))
        while to_visit and len(replaced) < MAX_HIDDEN_ANCESTORS:
            prev_id = to_visit.pop()
            if prev_id in replaced:
                continue
            replaced.add(prev_id)
            if self._timeline.status(prev_id) in (EventStatus.SOFT_FAILED, EventStatus.REJECTED):
                prev = self._timeline.get_event(prev_id)
                to_visit.extend(reference_ids((prev or {}).get("prev_events")))
        return replaced

    def _own_auth_rejection(self, event: Event, room_version: RoomVersion) -> Rejection | None:
        """Step 4: the auth rules against the event's own (stored) auth events."""
        cited = []
        for auth_id in reference_ids(event.get("auth_events")):
            auth_event = self._timeline.get_event(auth_id)
            if auth_event is None:
                return Rejection("auth events", f"the auth event {auth_id} is not known")
            cited.append(auth_event)
        auth_events = {(e["type"], e.get("state_key", "")): e for e in cited}
        if room_version.room_id_is_create_event_id and event["type"] != "m.room.create":
            create = self._timeline.get_event("$" + event["room_id"][1:])
            if create is not None:
                auth_events.setdefault(("m.room.create", ""), create)
        return check_auth(
            _as_judged(event, room_version),
            auth_events,
            room_version,
            is_signed_by=_is_signed_by,
            cited_auth_events=cited,
            is_rejected=lambda e: self._timeline.is_rejected(e["event_id"]),
        )

    def _rejection(
        self, event: Event, room_version: RoomVersion, state: StateIds
    ) -> Rejection | None:
        """Steps 5 and 6: the auth rules against a state (before the event, or current)."""
        return check_auth(
            _as_judged(event, room_version),
            self._timeline.auth_events_in(event, room_version, state),
            room_version,
            is_signed_by=_is_signed_by,
            is_rejected=lambda e: self._timeline.is_rejected(e["event_id"]),
        )


def _auth_order(events: Sequence[Event], room_version: RoomVersion) -> list[Event]:
    """`events` with each one after those of them it cites as auth events (Kahn's
    algorithm, lowest depth first among the ready ones).

    An auth graph is acyclic; the events of a malformed one that cites in a
    cycle come last, and are rejected when their turn comes.
    """
    by_id = {event["event_id"]: event for event in events}
    waiting_on: dict[str, int] = {}
    cited_by: dict[str, list[str]] = {}
    for event_id, event in by_id.items():
        cited = {a for a in auth_event_ids(event, room_version) if a in by_id and a != event_id}
        waiting_on[event_id] = len(cited)
        for auth_id in cited:
            cited_by.setdefault(auth_id, []).append(event_id)
    ready = [(by_id[e].get("depth", 0), e) for e, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[Event] = []
    while ready:
        _, event_id = heapq.heappop(ready)
        ordered.append(by_id[event_id])
        for citing in cited_by.get(event_id, ()):
            waiting_on[citing] -= 1
            if waiting_on[citing] == 0:
                heapq.heappush(ready, (by_id[citing].get("depth", 0), citing))
    placed = {event["event_id"] for event in ordered}
    ordered.extend(event for event_id, event in by_id.items() if event_id not in placed)
    return ordered
