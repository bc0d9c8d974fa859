"""A room's history from before we held it: asked of other servers, checked, stored before ours.

Spec: `content/server-server-api.md` § Backfilling and retrieving missing
events (`GET /backfill/{roomId}`: "the requesting homeserver picks another
homeserver that it thinks may have more ... most likely a homeserver for
some of the existing users in the room"), § Checks performed on receipt of a
PDU, § Retrieving events (`/state_ids` at the bottom of what came back);
`content/client-server-api/_index.md` § Pagination (`/messages` with
`dir=b` walks back to `m.room.create`).

When a client pages backwards over an event whose prev_events are not in our
timeline — our join into a room that lived elsewhere, or a gap left where an
incoming event's missing prev_events were capped by `max_fetch_prev_events`
— `fill_before` asks the room's other servers, one after another, each
bounded in time, for `/backfill` from those prev_events. Every event that
comes back must name this room (a server that answers with another room's
events is logged once and not used), pass steps 1–3 of the receipt checks
(format, signatures, content hash) and the auth rules against its own auth
events (`IncomingEvents.persist_outliers`, which also fetches missing auth
events), and the auth rules against the state before it: the state after its
prev_events, or for the oldest events of an answer, whose prev_events we
lack, the state `/state_ids` gives. Backfilled events are never soft-failed,
and are stored by `Timeline.persist_backfilled`, just before the event whose
gap they fill: no push, no outbox, no forward extremity, no current state
change, nothing new for `/sync`.

Each answer goes below what was filled in before, so the order of a forked
history (several servers, or one sending concurrently) is kept by what is
placed when: a round asks from everything still missing behind the stretch
being filled, and places only the part of the answer that nothing still
missing can belong above (by depth); the rest waits for the next round.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import trio

from ...core.auth import Rejection, check_auth
from ...core.room_versions import RoomVersion
from ...core.server_acl import server_allowed
from ...lru import LRUCache
from ..clock import Clock, now_ms
from ..rooms import Rooms
from ..rooms.event_context import EventContext, EventStatus
from ..rooms.locks import RoomGuard
from ..rooms.short import StateKey
from .client import FederationClient
from .errors import FederationError
from .event_fetcher import EventFetcher
from .incoming import IncomingEvents
from .received import reference_ids, wire_pdu

log = logging.getLogger(__name__)

BACKFILL_LIMIT = 100
"""Events asked for in one `/backfill` (what Synapse serves at most)."""
MAX_SERVERS_TRIED = 5
SERVER_TIMEOUT_SECONDS = 20.0
"""One server's turn: its `/backfill` answer and the fetches it leads to."""
FILL_DEADLINE_SECONDS = 60.0
"""All of one `/messages` request's backfilling."""
MAX_ROUNDS = 10
"""`/backfill` answers used for one `/messages` page."""
MAX_STATE_FETCHES = 4
"""`/state_ids` asked for the oldest events of one answer."""
MAX_STATE_EVENTS = 10_000
STATE_FETCH_CONCURRENCY = 8
MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""A `/backfill` answer of `BACKFILL_LIMIT` PDUs of at most 64 KiB each, and slack."""
RETRY_MIN_MS = 30_000
RETRY_MAX_MS = 3600_000
REMEMBERED = 10_000
MAX_HIDDEN_ANCESTORS = 100
"""Rejected and soft-failed ancestors looked through for the history behind them."""
FRONTIER_SCAN = 1000
"""Filled-in events scanned, deepest first, for what is still missing behind them."""
MAX_FRONTIER = 50
"""Event ids one `/backfill` starts from."""

Event = dict[str, Any]


@dataclass(slots=True)
class _Retry:
    at_ms: int
    delay_ms: int


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def _segment(identifier: str) -> str:
    return quote(identifier, safe="")


def _signers(event: Mapping[str, Any]) -> set[str]:
    signatures = event.get("signatures")
    return set(signatures) if isinstance(signatures, Mapping) else set()


def _as_judged(event: Mapping[str, Any], room_version: RoomVersion) -> Mapping[str, Any]:
    """A v12 create as the auth rules see it: without the `room_id` we store."""
    if room_version.room_id_is_create_event_id and event["type"] == "m.room.create":
        return {key: value for key, value in event.items() if key != "room_id"}
    return event


def _sort_key(event: Mapping[str, Any]) -> tuple[int, int]:
    """(depth, origin_server_ts), whatever types a peer put there."""
    depth, sent = event.get("depth", 0), event.get("origin_server_ts", 0)
    return (
        depth if isinstance(depth, int) else 0,
        sent if isinstance(sent, int) else 0,
    )


def _oldest_first(events: Sequence[Event]) -> list[Event]:
    """`events` with each after those of them it names as prev_events (Kahn's algorithm,
    lowest depth, then earliest `origin_server_ts`, first among the ready ones, so
    same-depth forks come in the order they were sent; a malformed cycle comes last)."""
    by_id = {event["event_id"]: event for event in events}
    waiting: dict[str, int] = {}
    children: dict[str, list[str]] = {}
    for event_id, event in by_id.items():
        prevs = {p for p in reference_ids(event.get("prev_events")) if p in by_id and p != event_id}
        waiting[event_id] = len(prevs)
        for prev_id in prevs:
            children.setdefault(prev_id, []).append(event_id)
    ready = [(_sort_key(by_id[e]), e) for e, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[Event] = []
    while ready:
        _, event_id = heapq.heappop(ready)
        ordered.append(by_id[event_id])
        for child in children.get(event_id, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (_sort_key(by_id[child]), child))
    placed = {event["event_id"] for event in ordered}
    ordered.extend(event for event_id, event in by_id.items() if event_id not in placed)
    return ordered


def _ancestors_in(events: Mapping[str, Event], start: Iterable[str]) -> list[Event]:
    """The events of `events` that `start` names, and their prev_events among `events`,
    recursively: the part of an answer that lies behind the gap."""
    found: dict[str, Event] = {}
    to_visit = list(start)
    while to_visit:
        event_id = to_visit.pop()
        event = events.get(event_id)
        if event is None or event_id in found:
            continue
        found[event_id] = event
        to_visit.extend(reference_ids(event.get("prev_events")))
    return list(found.values())


class Backfill:
    def __init__(
        self,
        server_name: str,
        rooms: Rooms,
        client: FederationClient,
        fetcher: EventFetcher,
        incoming: IncomingEvents,
        *,
        enabled: bool,
        clock: Clock = now_ms,
    ) -> None:
        self._server_name = server_name
        self._rooms = rooms
        self._timeline = rooms.timeline
        self._state = rooms.state
        self._client = client
        self._fetcher = fetcher
        self._incoming = incoming
        self._enabled = enabled
        self._clock = clock
        self._room_locks: dict[str, trio.Lock] = {}
        self._retry: LRUCache[tuple[str, str], _Retry] = LRUCache(REMEMBERED)
        """(room, event whose gap could not be filled) → when to try again."""
        self._reported: LRUCache[tuple[str, str], bool] = LRUCache(REMEMBERED)
        """(server, room) pairs already logged for answering with another room's events."""

    # ---- entry point

    async def fill_before(self, room_id: str, position: int, wanted: int) -> bool:
        """Fill what we can of the gaps among the `wanted` events at and before `position`
        (a `/messages` token going backwards). True if any history was added.

        Walks the room's timeline back from `position`; the first event whose
        prev_events are not in the timeline gets its history from another
        server, stored just before it; then the walk goes on, over what was
        added, until `wanted` events passed without a gap, a gap could not be
        filled (tried again later, backing off), `MAX_ROUNDS` answers were
        used or `FILL_DEADLINE_SECONDS` passed.
        """
        if not self._enabled or wanted <= 0:
            return False
        added = False
        lock = self._room_locks.setdefault(room_id, trio.Lock())
        with trio.move_on_after(FILL_DEADLINE_SECONDS):
            async with lock:
                for _ in range(MAX_ROUNDS):
                    gap = self._first_gap(room_id, position, wanted)
                    if gap is None:
                        break
                    child, missing = gap
                    missing = self._frontier(room_id, child, missing)
                    if not await self._fill(room_id, child, missing):
                        self._back_off(room_id, child["event_id"])
                        break
                    self._retry.discard((room_id, child["event_id"]))
                    added = True
        if not lock.locked() and not lock.statistics().tasks_waiting:
            self._room_locks.pop(room_id, None)
        return added

    # ---- where history is missing

    def _first_gap(
        self, room_id: str, position: int, wanted: int
    ) -> tuple[Event, list[str]] | None:
        """The newest of the `wanted` events at or before `position` with prev_events
        missing from the timeline, and those prev_events (None if there is none)."""
        now = self._clock()
        for seen, (_, event) in enumerate(self._timeline.events_before(room_id, position)):
            if seen > wanted:
                return None
            missing = self._missing_prevs(event)
            if not missing:
                continue
            retry = self._retry.get((room_id, event["event_id"]))
            if retry is not None and now < retry.at_ms:
                continue
            return dict(event), missing
        return None

    def _missing_prevs(self, event: Mapping[str, Any]) -> list[str]:
        """The ancestors to fetch before `event`: its prev_events that are unknown or
        known by id only (an outlier); behind prev_events kept out of the timeline
        (rejected, soft-failed), their prev_events, recursively (at most
        `MAX_HIDDEN_ANCESTORS`), so one rejected event does not end the history."""
        missing: list[str] = []
        seen: set[str] = set()
        to_visit = reference_ids(event.get("prev_events"))
        while to_visit and len(seen) < MAX_HIDDEN_ANCESTORS:
            prev_id = to_visit.pop()
            if prev_id in seen:
                continue
            seen.add(prev_id)
            status = self._timeline.status(prev_id)
            if status in (None, EventStatus.OUTLIER):
                missing.append(prev_id)
            elif status is not EventStatus.TIMELINE:
                hidden = self._timeline.get_event(prev_id)
                to_visit.extend(reference_ids((hidden or {}).get("prev_events")))
        return missing

    def _frontier(self, room_id: str, child: Mapping[str, Any], missing: list[str]) -> list[str]:
        """Everything missing behind the stretch of history `child` is in, not only
        behind `child`: the missing prev_events of the history already filled in
        there (deepest first, `FRONTIER_SCAN` events up to the first event that
        came in live), at most `MAX_FRONTIER`. Asked for together, a forked
        history comes back with all its branches, so none of them is placed below
        older events later."""
        wanted = dict.fromkeys(missing)
        deepest = self._timeline.backfill_positions(room_id, child["event_id"], 1)[0]
        stretch = self._timeline.events_after(room_id, deepest)
        for position, event in itertools.islice(stretch, FRONTIER_SCAN):
            if len(wanted) >= MAX_FRONTIER:
                break
            for prev_id in self._missing_prevs(event):
                wanted.setdefault(prev_id)
            if int(position) >= 0:
                break  # the event the history was filled in before
        return list(wanted)[:MAX_FRONTIER]

    def _back_off(self, room_id: str, event_id: str) -> None:
        previous = self._retry.get((room_id, event_id))
        delay = min(previous.delay_ms * 2, RETRY_MAX_MS) if previous else RETRY_MIN_MS
        self._retry.put((room_id, event_id), _Retry(self._clock() + delay, delay))

    def _servers(self, room_id: str, child: Mapping[str, Any]) -> list[str]:
        """Who to ask, best first: the server of the event at the gap, then the servers
        with the most users joined (they were most likely there before us); never one
        the room's server ACL denies (spec § Server Access Control Lists)."""
        servers: list[str] = []
        acl = self._timeline.state_event(room_id, "m.room.server_acl")
        acl_content = acl["content"] if acl else None

        def add(server: str) -> None:
            if (
                server
                and server != self._server_name
                and server not in servers
                and server_allowed(acl_content, server)
            ):
                servers.append(server)

        add(_server_of(str(child.get("sender", ""))))
        joined = Counter(
            _server_of(member) for member in self._rooms.state_cache.joined_members(room_id)
        )
        for server, _ in joined.most_common():
            add(server)
        return servers[:MAX_SERVERS_TRIED]

    # ---- asking

    async def _fill(self, room_id: str, child: Event, missing: list[str]) -> bool:
        """History before `child` from the first server that gives some; True if any
        event was added to the timeline."""
        room_version = self._timeline.room_version(room_id)
        for server in self._servers(room_id, child):
            with trio.move_on_after(SERVER_TIMEOUT_SECONDS):
                pdus = await self._ask(server, room_id, missing)
                if pdus and await self._store(server, room_id, room_version, child, missing, pdus):
                    return True
        return False

    async def _ask(self, server: str, room_id: str, missing: list[str]) -> list[Any] | None:
        try:
            answer = await self._client.request(
                server,
                "GET",
                f"/_matrix/federation/v1/backfill/{_segment(room_id)}",
                query={"v": missing, "limit": BACKFILL_LIMIT},
                timeout=SERVER_TIMEOUT_SECONDS,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except FederationError as error:
            log.info("backfill of %s from %s failed: %s", room_id, server, error)
            return None
        pdus = answer.get("pdus") if isinstance(answer, dict) else None
        if not isinstance(pdus, list):
            log.info("%s answered backfill of %s without a list of PDUs", server, room_id)
            return None
        return pdus[:BACKFILL_LIMIT]

    def _of_this_room(
        self, server: str, room_id: str, room_version: RoomVersion, pdus: Iterable[Any]
    ) -> list[dict[str, Any]]:
        """The PDUs that claim to be of `room_id` (a v12 create names it by its id)."""
        kept = []
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            claimed = pdu.get("room_id")
            v12_create = room_version.room_id_is_create_event_id and pdu.get("type") == (
                "m.room.create"
            )
            if claimed == room_id or (claimed is None and v12_create):
                kept.append(pdu)
            else:
                self._report_foreign(server, room_id, claimed)
        return kept

    def _report_foreign(self, server: str, room_id: str, claimed: object) -> None:
        if self._reported.get((server, room_id)) is None:
            self._reported.put((server, room_id), True)
            log.warning(
                "%s answered a backfill of %s with events of another room (%.200r): not used",
                server,
                room_id,
                claimed,
            )

    # ---- checking and storing

    async def _store(
        self,
        server: str,
        room_id: str,
        room_version: RoomVersion,
        child: Event,
        missing: list[str],
        pdus: list[Any],
    ) -> bool:
        """Check and store what `server` answered; True if any of it joined the timeline.

        Only the events the gap's missing prev_events lead to without passing an
        event already in the timeline go before `child`: an answer reaching past
        the other side of a gap (history before an older gap) stays as outliers
        until that gap's turn comes.
        """
        checked = await self._incoming.persist_outliers(
            server, room_version, self._of_this_room(server, room_id, room_version, pdus)
        )
        by_id: dict[str, Event] = {}
        for event in checked:
            if event["room_id"] != room_id:
                self._report_foreign(server, room_id, event["room_id"])
            elif self._timeline.status(event["event_id"]) is EventStatus.OUTLIER:
                by_id[event["event_id"]] = event
        events = self._above_the_frontier(_ancestors_in(by_id, missing))
        if not events:
            return False
        ordered = _oldest_first(events)
        received = {event["event_id"] for event in ordered}
        needing = [event for event in ordered if self._needs_state_from_server(event, received)]
        needing.sort(key=_sort_key, reverse=True)  # the newest are the ones placed first
        states: dict[str, dict[StateKey, str]] = {}
        for event in needing[:MAX_STATE_FETCHES]:
            state = await self._state_before(server, room_id, room_version, event["event_id"])
            if state is not None:
                states[event["event_id"]] = state
        ordered = self._with_known_state(ordered, states)
        if not ordered:
            return False
        async with self._rooms.locks.hold(room_id) as guard:
            return self._place(guard, room_id, room_version, child, ordered, states) > 0

    def _with_known_state(
        self, ordered: list[Event], states: Mapping[str, Mapping[StateKey, str]]
    ) -> list[Event]:
        """`ordered` (oldest first) less the events whose state before cannot be known
        now, and every event no deeper than those: what is left out now goes below
        what is placed, later, so nothing newer may be left behind (as for the
        frontier)."""
        while True:
            placed: set[str] = set()
            cut: int | None = None
            for event in ordered:
                prevs = reference_ids(event.get("prev_events"))
                known = (
                    not prevs
                    or event["event_id"] in states
                    or any(
                        prev_id in placed
                        or self._state.shortstatehash_after_event(prev_id) is not None
                        for prev_id in prevs
                    )
                )
                if known:
                    placed.add(event["event_id"])
                else:
                    depth = _sort_key(event)[0]
                    cut = depth if cut is None else max(cut, depth)
            if cut is None:
                return ordered
            ordered = [event for event in ordered if _sort_key(event)[0] > cut]

    def _above_the_frontier(self, events: list[Event]) -> list[Event]:
        """The events of an answer that no event still missing can belong above.

        New history always goes below what was filled in before, so an answer
        cut off across a fork must not place one branch's older events while
        the other branch's newer ones are still to come: an event behind the
        answer is older than the answer's event that names it (depth), so
        only events deeper than every such event less one are placed now;
        the rest stay outliers for the next round, which fetches what lies
        behind them. (The answer's events are ancestors of the gap's missing
        prev_events, so the newest of those always passes.)
        """
        in_answer = {event["event_id"] for event in events}
        cut: int | None = None
        for event in events:
            for prev_id in reference_ids(event.get("prev_events")):
                if prev_id not in in_answer and self._timeline.status(prev_id) in (
                    None,
                    EventStatus.OUTLIER,
                ):
                    below = _sort_key(event)[0] - 1
                    cut = below if cut is None else max(cut, below)
                    break
        if cut is None:
            return events
        return [event for event in events if _sort_key(event)[0] > cut]

    def _needs_state_from_server(self, event: Mapping[str, Any], received: set[str]) -> bool:
        """An event none of whose prev_events will have a known state: the oldest of an
        answer. (A prev event rejected without state is ignored, as it is for events
        pushed to us.)"""
        prevs = reference_ids(event.get("prev_events"))
        if not prevs:
            return False  # the create event: no state before it
        for prev_id in prevs:
            if prev_id in received or self._state.shortstatehash_after_event(prev_id) is not None:
                return False
        return True

    async def _state_before(
        self, server: str, room_id: str, room_version: RoomVersion, event_id: str
    ) -> dict[StateKey, str] | None:
        """The state before `event_id` as `server` tells it, its unknown events fetched,
        checked and stored as outliers; None if it will not say."""
        answer = await self._fetcher.state_ids(server, room_id, event_id)
        if answer is None:
            return None
        wanted = [
            state_id
            for state_id in dict.fromkeys([*answer.auth_chain_ids, *answer.pdu_ids])
            if self._timeline.get_event(state_id) is None
        ]
        if len(wanted) > MAX_STATE_EVENTS:
            log.warning("not using the state at %s: %d unknown events", event_id, len(wanted))
            return None
        fetched: list[dict[str, Any]] = []
        limiter = trio.CapacityLimiter(STATE_FETCH_CONCURRENCY)

        async def fetch(state_id: str) -> None:
            async with limiter:
                event = await self._fetcher.event(server, room_id, state_id, room_version)
            if event is not None:
                fetched.append(wire_pdu(event, room_version))

        async with trio.open_nursery() as nursery:
            for state_id in wanted:
                nursery.start_soon(fetch, state_id)
        if fetched:
            await self._incoming.persist_outliers(server, room_version, fetched)
        return self._incoming.stored_state(room_id, answer.pdu_ids)

    def _place(
        self,
        guard: RoomGuard,
        room_id: str,
        room_version: RoomVersion,
        child: Event,
        ordered: list[Event],
        states: Mapping[str, Mapping[StateKey, str]],
    ) -> int:
        """Judge each event against the state before it and store it, oldest first, in
        the positions just before `child`. Returns how many joined the timeline."""
        pending = [
            e for e in ordered if self._timeline.status(e["event_id"]) is EventStatus.OUTLIER
        ]
        if self._timeline.pdu_id(child["event_id"]) is None or not pending:
            return 0
        positions = self._timeline.backfill_positions(room_id, child["event_id"], len(pending))
        placed = 0
        for event, position in zip(pending, positions, strict=True):
            batch = self._timeline.batch()
            if event["event_id"] in states:
                before: int | None = self._state.save_state(states[event["event_id"]], None, batch)
            else:
                hashes = [
                    shortstatehash
                    for prev_id in reference_ids(event.get("prev_events"))
                    if (shortstatehash := self._state.shortstatehash_after_event(prev_id))
                    is not None
                ]
                if not hashes and reference_ids(event.get("prev_events")):
                    continue  # no state known before it: left out, as an outlier
                before = (
                    self._rooms.resolution.save_resolved(room_id, hashes, batch) if hashes else None
                )
            state_before = self._state.state_ids(before) if before is not None else {}
            rejection = self._rejection(event, room_version, state_before)
            if rejection is not None:
                log.info("rejected backfilled %s: %s", event["event_id"], rejection)
                context = EventContext(EventStatus.REJECTED, before, before)
                self._timeline.persist(guard, event, room_version, context, batch)
                continue
            after = before
            if "state_key" in event:
                key = (event["type"], event["state_key"])
                after = self._state.save_with_event(before, key, event["event_id"], batch)
            self._timeline.persist_backfilled(
                guard, event, room_version, position, before, after, batch
            )
            placed += 1
        return placed

    def _rejection(
        self, event: Event, room_version: RoomVersion, state: Mapping[StateKey, str]
    ) -> Rejection | None:
        """Step 5: the auth rules against the state before the event (never soft-failed:
        history is not judged by today's state)."""
        return check_auth(
            _as_judged(event, room_version),
            self._timeline.auth_events_in(event, room_version, state),
            room_version,
            is_signed_by=lambda e, server: server in _signers(e),
            is_rejected=lambda e: self._timeline.is_rejected(e["event_id"]),
        )
