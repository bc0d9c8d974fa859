"""`/sync`: everything new for a user since a token, long-polling when there is nothing.

Spec: `content/client-server-api/_index.md` ("Syncing", "Filtering",
"Lazy-loading room members") and `data/api/client-server/sync.yaml`.

Tokens are positions on the global counter (`Globals.next_count`), so one
number says "everything up to here was delivered". A response is built in one
synchronous stretch: `next_batch` is the counter when building starts, and
nothing can be written before the response is built, so every event lands in
exactly one response. Long-polling takes the notifier's listener *before*
looking for news, then waits on it only if there was none.

Per joined room: the timeline since the token (the newest `limit` events,
`limited` when there were more), and the state delta that makes a limited
timeline correct: the difference between the state the client knew (at the
token) and the state at the start of the returned timeline. A room joined
since the token is sent in full, as at an initial sync.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from ..core.filters import EventFilter, Filter, select_fields
from .globals import Globals
from .notification_counts import NotificationCounts
from .notifier import Notifier
from .rooms import Rooms
from .rooms.timeline import Event

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 500
MAX_HEROES = 5


@dataclass(frozen=True)
class SyncRequest:
    user_id: str
    device_id: str | None
    since: int | None
    filter: Filter = field(default_factory=Filter)
    full_state: bool = False
    timeout_ms: int = 0
    set_presence: str = "online"


class Sync:
    def __init__(
        self,
        globals_: Globals,
        notifier: Notifier,
        rooms: Rooms,
        counts: NotificationCounts,
        services: Any,
    ) -> None:
        self._globals = globals_
        self._notifier = notifier
        self._rooms = rooms
        self._counts = counts
        self._services = services
        """The companions sync reads: account_data, typing, receipts, presence, ...
        (looked up when used, so they can be built after this service)."""

    async def sync(self, request: SyncRequest) -> dict[str, Any]:
        if request.set_presence != "offline":
            presence = self._services.presence
            if request.set_presence == "unavailable":
                presence.set_presence(request.user_id, "unavailable")
            else:
                presence.ping(request.user_id)
        listener = self._notifier.listener(request.user_id)
        may_wait = request.since is not None and not request.full_state and request.timeout_ms > 0
        if may_wait and request.since >= self._globals.current_count():
            # Nothing at all was written since the token: nothing to build yet.
            response, has_news = None, False
        else:
            response, has_news = self._build(request)
        if response is not None and (has_news or not may_wait):
            return response
        with trio.move_on_after(request.timeout_ms / 1000):
            await listener.wait()
        return self._build(request)[0]

    # ---- building a response

    def _build(self, request: SyncRequest) -> tuple[dict[str, Any], bool]:
        next_batch = self._globals.current_count()
        builder = _ResponseBuilder(self, request, next_batch)
        return builder.build()


@dataclass(frozen=True)
class _Window:
    """A room's timeline section before formatting."""

    events: list[Event]
    """Oldest first."""
    limited: bool
    """The limit left older events out."""
    hidden_state: bool
    """A state event in the range was left out (filter, ignored sender, history visibility)."""


def _joins_among(events: list[Event]) -> set[str]:
    """Who joined (not merely changed their profile) in these member events."""
    joined = set()
    for event in events:
        if event.get("type") != "m.room.member" or not isinstance(event.get("state_key"), str):
            continue
        previous = ((event.get("unsigned") or {}).get("prev_content") or {}).get("membership")
        if (event.get("content") or {}).get("membership") == "join" and previous != "join":
            joined.add(event["state_key"])
    return joined


def _dropped_state(candidates: list[Event], kept: list[Event]) -> bool:
    """Did visibility remove a state event from `candidates`?"""
    if len(kept) == len(candidates):
        return False
    kept_ids = {event["event_id"] for event in kept}
    return any("state_key" in e and e["event_id"] not in kept_ids for e in candidates)


class _LazyState(Mapping[tuple[str, str], str]):
    """A room's state at a stream position, read only if asked.

    Most incremental syncs never need the state the client knew (their
    timelines are contiguous); building it reads a whole state snapshot.
    """

    def __init__(self, builder: _ResponseBuilder, room_id: str, position: int) -> None:
        self._builder = builder
        self._room_id = room_id
        self._position = position
        self._state: Mapping[tuple[str, str], str] | None = None

    def _loaded(self) -> Mapping[tuple[str, str], str]:
        if self._state is None:
            self._state = self._builder._state_at_position(self._room_id, self._position)
        return self._state

    def __getitem__(self, key: tuple[str, str]) -> str:
        return self._loaded()[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


class _ResponseBuilder:
    """One `/sync` response: the sections, each read up to `next_batch`."""

    def __init__(self, sync: Sync, request: SyncRequest, next_batch: int) -> None:
        self.sync = sync
        self.rooms = sync._rooms
        self.services = sync._services
        self.request = request
        self.user_id = request.user_id
        self.since = request.since
        self.next_batch = next_batch
        self.filter = request.filter
        self.room_filter = request.filter.room
        self.timeline_limit = self.room_filter.timeline.limit_or(
            DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT
        )
        self.ignored = self.services.account_data.ignored_users(self.user_id)
        self._newly_shared: set[str] = set()
        """Users who came to share a room with the user since `since` (their presence)."""

    def build(self) -> tuple[dict[str, Any], bool]:
        join = {}
        for room_id in list(self.rooms.state_cache.joined_rooms(self.user_id)):
            if self.room_filter.allows_room(room_id) and not self._quiet(room_id):
                entry = self._joined_room(room_id)
                if entry is not None:
                    join[room_id] = entry
        invite = self._stripped_rooms(self.rooms.state_cache.invited_rooms, "invite_state")
        knock = self._stripped_rooms(self.rooms.state_cache.knocked_rooms, "knock_state")
        leave = self._left_rooms()
        account_data = self._account_data(None, self.filter.account_data)
        presence = self._presence()
        response: dict[str, Any] = {
            "next_batch": str(self.next_batch),
            "rooms": {"join": join, "invite": invite, "leave": leave, "knock": knock},
            "account_data": {"events": account_data},
            "presence": {"events": presence},
        }
        extras = self._device_sections()
        response.update(extras)
        has_news = bool(
            join
            or invite
            or leave
            or knock
            or account_data
            or presence
            or extras.get("to_device", {}).get("events")
            or extras.get("device_lists", {}).get("changed")
            or extras.get("device_lists", {}).get("left")
        )
        return response, has_news

    # ---- formatting

    def _format(self, event: Event, *, with_room_id: bool = False) -> dict[str, Any]:
        if self.filter.event_format == "federation":
            formatted = dict(event)
        else:
            formatted = self.rooms.events.for_client(
                event, self.user_id, self.request.device_id, with_room_id=with_room_id
            )
        if self.filter.event_fields is not None:
            formatted = select_fields(formatted, self.filter.event_fields)
        return formatted

    def _events(self, event_ids: Mapping[tuple[str, str], str]) -> list[Event]:
        timeline = self.rooms.timeline
        return [
            event
            for event_id in event_ids.values()
            if (event := timeline.get_event(event_id)) is not None
        ]

    # ---- joined rooms

    def _joined_room(self, room_id: str) -> dict[str, Any] | None:
        since = self.since
        known = self._known_state(room_id)
        newly_joined = known is None
        window = self._timeline_window(room_id, None if newly_joined else since, self.next_batch)
        full_state = newly_joined or self.request.full_state
        state_events = self._state_section(
            room_id,
            window,
            None if full_state else known,
            self.rooms.state.current_state_ids(room_id),
        )
        if newly_joined:
            self._newly_shared.update(self.rooms.state_cache.joined_members(room_id))
        else:
            self._newly_shared.update(_joins_among([*window.events, *state_events]))
        ephemeral = self._ephemeral(room_id)
        account_data = self._account_data(room_id, self.room_filter.account_data)
        if not (window.events or state_events or ephemeral or account_data or full_state):
            return None

        entry: dict[str, Any] = {
            "timeline": self._timeline_section(window, self.next_batch),
            "state": {"events": [self._format(e) for e in state_events]},
            "ephemeral": {"events": ephemeral},
            "account_data": {"events": account_data},
            "unread_notifications": self.sync._counts.counts(
                room_id, self.user_id, self.services.receipts.read_event(room_id, self.user_id)
            ),
        }
        summary = self._summary(room_id)
        if summary:
            entry["summary"] = summary
        return entry

    def _quiet(self, room_id: str) -> bool:
        """Nothing in the room since `since`, as memory tells (no event, typing, receipt
        or room account data): `_joined_room` would find nothing, so it is not asked.
        A user in 1,000 quiet rooms then costs a few dict lookups per room, not the
        database reads of each room's sections."""
        since = self.since
        if since is None or self.request.full_state:
            return False
        return not (
            self.rooms.timeline.changed_since(room_id, since)
            or self.services.typing.last_change(room_id) > since
            or self.services.receipts.changed_since(room_id, since)
            or self.services.account_data.changed_since(self.user_id, room_id, since)
        )

    def _known_state(self, room_id: str) -> Mapping[tuple[str, str], str] | None:
        """The room's state at `since` if the user was joined then (the client has it).

        None for an initial sync and for a room joined (or re-joined) since the
        token: it is sent whole. A join -> join member event (a profile change)
        does not make a room new: the user was joined at the token.
        """
        if self.since is None:
            return None
        member_id = self.rooms.state.current_state_ids(room_id).get(("m.room.member", self.user_id))
        position = self.rooms.timeline.position(member_id) if member_id else None
        if position is not None and position <= self.since:
            return _LazyState(self, room_id, self.since)
        at_since = _LazyState(self, room_id, self.since)
        member_then = at_since.get(("m.room.member", self.user_id))
        event = self.rooms.timeline.get_event(member_then) if member_then else None
        if event is None or (event.get("content") or {}).get("membership") != "join":
            return None
        return at_since

    def _timeline_window(self, room_id: str, since: int | None, upto: int) -> _Window:
        """The newest visible events in (`since`, `upto`] (all history if `since` is None).

        `limited` says whether the limit left older events out (sync.yaml:
        "limited by the `limit` on the filter"); events the filter, an ignore
        or history visibility removed do not make a timeline limited. Whether
        such a removed event was a state event is kept: then the state section
        must carry what the client cannot learn from the timeline.
        """
        timeline = self.rooms.timeline
        event_filter = self.room_filter.timeline
        wanted = self.timeline_limit
        collected: list[Event] = []
        candidates: list[Event] = []
        hidden_state = False
        for position, event in timeline.events_before(room_id, upto):
            if since is not None and position <= since:
                break
            if not event_filter.matches(event) or event.get("sender") in self.ignored:
                hidden_state = hidden_state or "state_key" in event
                continue
            candidates.append(event)
            if len(candidates) >= 2 * (wanted + 1):
                visible = self._visible(room_id, candidates)
                hidden_state = hidden_state or _dropped_state(candidates, visible)
                collected.extend(visible)
                candidates = []
                if len(collected) > wanted:
                    break
        visible = self._visible(room_id, candidates)
        hidden_state = hidden_state or _dropped_state(candidates, visible)
        collected.extend(visible)
        limited = len(collected) > wanted
        collected = collected[:wanted]
        collected.reverse()
        return _Window(collected, limited, hidden_state)

    def _timeline_section(self, window: _Window, edge: int) -> dict[str, Any]:
        events = window.events
        timeline = self.rooms.timeline
        prev_batch = (timeline.position(events[0]["event_id"]) or 1) - 1 if events else edge
        return {
            "events": [self._format(e) for e in events],
            "limited": window.limited,
            "prev_batch": str(prev_batch),
        }

    def _visible(self, room_id: str, events: list[Event]) -> list[Event]:
        return self.rooms.visibility.filter_events(self.user_id, room_id, events)

    def _state_at_start(
        self, events: list[Event], end_state: Mapping[tuple[str, str], str]
    ) -> Mapping[tuple[str, str], str]:
        """The state before the first returned timeline event (`end_state` if none)."""
        if not events:
            return end_state
        short = self.rooms.short.short_event_id(events[0]["event_id"])
        before = self.rooms.state.state_ids_before(short)
        return before if before is not None else end_state

    def _state_at_position(self, room_id: str, position: int) -> Mapping[tuple[str, str], str]:
        """The state after the newest event at or before `position`."""
        for at, event in self.rooms.timeline.events_before(room_id, position):
            if int(at) < 0:
                continue  # history filled in later sits here, but its state is of long ago
            short = self.rooms.short.short_event_id(event["event_id"])
            return self.rooms.state.state_ids_after(short) or {}
        return {}

    def _state_section(
        self,
        room_id: str,
        window: _Window,
        known: Mapping[tuple[str, str], str] | None,
        end_state: Mapping[tuple[str, str], str],
    ) -> list[Event]:
        """The `state` of a room entry: what, with the timeline, brings the client up to date.

        Spec ("Syncing"): the state between `since` and the start of the
        timeline; all of it when `known` is None (a room new to the client).
        For an incremental sync whose timeline is contiguous (not limited,
        nothing removed), that is nothing. When the filter or history
        visibility removed state events from the timeline (members who came
        while the user was away, under `joined` visibility), the timeline no
        longer leads from that state to the state at its end (`end_state`):
        each such key is sent with its value at the end, as Synapse does.
        """
        if known is not None and not (window.limited or window.hidden_state):
            return []
        events = window.events
        start = self._state_at_start(events, end_state)
        if known is None:
            delta = dict(start)
        else:
            delta = {key: eid for key, eid in start.items() if known.get(key) != eid}
        if window.hidden_state:
            in_timeline = {(e["type"], e["state_key"]) for e in events if "state_key" in e}
            for key, event_id in end_state.items():
                if key in in_timeline or start.get(key) == event_id:
                    continue
                if known is None or known.get(key) != event_id:
                    delta[key] = event_id
        return self._filter_state(delta, start, events, known is None)

    def _filter_state(
        self,
        state_ids: Mapping[tuple[str, str], str],
        start_state: Mapping[tuple[str, str], str],
        timeline_events: list[Event],
        full_state: bool,
    ) -> list[Event]:
        """The state section, filtered; lazy-loading members when the filter asks.

        Lazy-loading (spec: "Lazy-loading room members") keeps, of a full
        state, only the members who sent timeline events and the user; an
        incremental delta keeps every membership change in the gap, and the
        timeline senders' memberships are added (redundancy is allowed).
        """
        state_filter: EventFilter = self.room_filter.state
        timeline_ids = {event["event_id"] for event in timeline_events}
        selected = {key: eid for key, eid in state_ids.items() if eid not in timeline_ids}
        if state_filter.lazy_load_members:
            senders = {event.get("sender") for event in timeline_events}
            if full_state:
                senders.add(self.user_id)
                selected = {
                    key: eid
                    for key, eid in selected.items()
                    if key[0] != "m.room.member" or key[1] in senders
                }
            for sender in senders:
                event_id = start_state.get(("m.room.member", sender))
                if event_id is not None and event_id not in timeline_ids:
                    selected[("m.room.member", sender)] = event_id
        return [event for event in self._events(selected) if state_filter.matches(event)]

    def _summary(self, room_id: str) -> dict[str, Any]:
        state_cache = self.rooms.state_cache
        summary: dict[str, Any] = {
            "m.joined_member_count": state_cache.member_count(room_id, "joined"),
            "m.invited_member_count": state_cache.member_count(room_id, "invited"),
        }
        content = self.rooms.timeline.state_content
        if not content(room_id, "m.room.name").get("name") and not content(
            room_id, "m.room.canonical_alias"
        ).get("alias"):
            heroes = []
            for member in sorted(state_cache.joined_members(room_id)):
                if member != self.user_id:
                    heroes.append(member)
                if len(heroes) >= MAX_HEROES:
                    break
            if len(heroes) < MAX_HEROES:
                for member in state_cache.invited_members(room_id):
                    if member != self.user_id and len(heroes) < MAX_HEROES:
                        heroes.append(member)
            summary["m.heroes"] = sorted(heroes)
        return summary

    def _ephemeral(self, room_id: str) -> list[dict[str, Any]]:
        since = self.since or 0
        event_filter = self.room_filter.ephemeral
        events = []
        typing = self.services.typing
        # An initial sync says who types now (nobody: nothing to say); an
        # incremental one says so whenever it changed, also when it stopped.
        typing_users = typing.typing_users(room_id)
        if typing_users if self.since is None else typing.last_change(room_id) > since:
            events.append({"type": "m.typing", "content": {"user_ids": typing_users}})
        receipts = self.services.receipts.receipts_since(room_id, since, self.user_id)
        if receipts:
            events.append({"type": "m.receipt", "content": receipts})
        return [event for event in events if event_filter.matches(event)]

    def _account_data(self, room_id: str | None, event_filter: EventFilter) -> list[dict[str, Any]]:
        changes = self.services.account_data.changes_since(self.user_id, room_id, self.since or 0)
        return [event for event in changes if event_filter.matches(event)]

    # ---- invites, knocks, leaves

    def _membership_position_in_window(self, room_id: str) -> int | None:
        """The position of the user's invite, knock or leave if it is new to this response."""
        position = self.rooms.state_cache.membership_count(room_id, self.user_id) or 0
        if (self.since is not None and position <= self.since) or position > self.next_batch:
            return None
        return position

    def _stripped_rooms(self, source: Any, key: str) -> dict[str, Any]:
        rooms = {}
        for room_id, stripped in source(self.user_id):
            if not self.room_filter.allows_room(room_id):
                continue
            if self._membership_position_in_window(room_id) is None:
                continue
            inviter = next(
                (
                    event.get("sender")
                    for event in stripped
                    if event.get("type") == "m.room.member"
                    and event.get("state_key") == self.user_id
                ),
                None,
            )
            if inviter in self.ignored:
                continue
            rooms[room_id] = {key: {"events": stripped}}
        return rooms

    def _left_rooms(self) -> dict[str, Any]:
        if self.since is None and not self.room_filter.include_leave:
            return {}
        rooms = {}
        for room_id in list(self.rooms.state_cache.left_rooms(self.user_id)):
            if not self.room_filter.allows_room(room_id):
                continue
            position = self._membership_position_in_window(room_id)
            if position is not None:
                rooms[room_id] = self._left_room(room_id, position)
        return rooms

    def _left_room(self, room_id: str, leave_position: int) -> dict[str, Any]:
        """The room up to the user's leave (or kick, or ban), as a joined room's entry would be.

        sync.yaml `rooms.leave`: a room the client had synced (the user was
        joined at `since`) gets the update from there to the leave, not its
        whole state again; a room new to the client (joined and left within
        this batch, or an initial sync with `include_leave`) gets its state.
        Either way the user's own leave is in the timeline or, if the filter
        removed it, in the state: the client must learn who ended the stay.
        """
        known = self._known_state(room_id)
        window = self._timeline_window(
            room_id, None if known is None else self.since, leave_position
        )
        member_id = self.rooms.state.current_state_ids(room_id).get(("m.room.member", self.user_id))
        short = self.rooms.short.existing_short_event_id(member_id) if member_id else None
        at_leave = self.rooms.state.state_ids_after(short) if short is not None else None
        end_state = (
            at_leave if at_leave is not None else self._state_at_position(room_id, leave_position)
        )
        if member_id is not None and all(e["event_id"] != member_id for e in window.events):
            window = _Window(window.events, window.limited, hidden_state=True)
        state_events = self._state_section(
            room_id, window, None if self.request.full_state else known, end_state
        )
        return {
            "timeline": self._timeline_section(window, leave_position),
            "state": {"events": [self._format(e) for e in state_events]},
            "account_data": {"events": self._account_data(room_id, self.room_filter.account_data)},
        }

    # ---- global sections

    def _presence(self) -> list[dict[str, Any]]:
        state_cache = self.rooms.state_cache
        users = {self.user_id}
        for room_id in state_cache.joined_rooms(self.user_id):
            users.update(state_cache.joined_members(room_id))
        presence = self.services.presence
        events = presence.changes_since(users, self.since or 0)
        if self.since is not None:
            # Those who newly share a room with the user: their presence as it
            # is, however old (Presence: sent for users who share a room).
            sent = {event["sender"] for event in events}
            newcomers = (self._newly_shared & users) - sent - {self.user_id}
            events.extend(presence.changes_since(newcomers, 0))
        return [
            event
            for event in events
            if self.filter.presence.matches(event) and event.get("sender") not in self.ignored
        ]

    def _device_sections(self) -> dict[str, Any]:
        """to-device messages and device-key changes, from the E2EE service when present.

        `device_sync.sync_sections(user_id, device_id, since, next_batch)` returns
        any of `to_device`, `device_lists`, `device_one_time_keys_count`,
        `device_unused_fallback_key_types`; it may drop what `since` acknowledges.
        """
        sections: dict[str, Any] = {
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
        }
        device_sync = getattr(self.services, "device_sync", None)
        if device_sync is not None:
            sections.update(
                device_sync.sync_sections(
                    self.user_id, self.request.device_id, self.since, self.next_batch
                )
            )
        return sections
