"""One room's entry in a sliding sync response: what is new since the connection last sent it.

Spec: MSC4186 ("Room results", "RoomResult") and MSC3575's `required_state`
(`[type, state_key]` pairs; `*` any type or key, `$ME` the user, `$LAZY` the
members who sent the returned timeline events). A room sent before on the
connection gets only its new events and the state that changed among them;
when its config grew, the state the new pairs match, and with a larger
`timeline_limit` the latest events again (`expanded_timeline`). A room new to
the connection is sent whole (`initial`). Invites and knocks get their
stripped state; a room left since it was sent gets the events up to the leave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..rooms import Rooms
from ..rooms.timeline import Event
from .requests import LAZY, ME, WILDCARD, RoomConfig

MAX_HEROES = 5
MAX_STATE_SCAN = 1000
"""Events of an incremental range looked through for changed state; beyond, all
matching state is sent again."""

StateKey = tuple[str, str]


@dataclass(frozen=True)
class RoomRequest:
    user_id: str
    device_id: str | None
    room_id: str
    membership: str
    bump_stamp: int | None
    config: RoomConfig
    sent_through: int | None
    """Position up to which the connection has this room (None: never sent)."""
    sent_config: RoomConfig | None
    sent_membership: str | None
    upto: int
    live_after: int | None
    """Events after this position are live (`num_live`); None on a connection's first request."""
    is_dm: bool
    ignored: frozenset[str]


@dataclass
class _Timeline:
    events: list[Event]
    limited: bool
    changed_state: set[StateKey] | None
    """State keys changed in the range (None: too many events to tell)."""


def matches(pair: tuple[str, str], key: StateKey, user_id: str, lazy: set[str]) -> bool:
    event_type, state_key = pair
    if event_type not in (WILDCARD, key[0]):
        return False
    if state_key == WILDCARD or state_key == key[1]:
        return True
    if state_key == ME:
        return key[1] == user_id
    if state_key == LAZY:
        return key[0] == "m.room.member" and key[1] in lazy
    return False


class RoomData:
    def __init__(self, rooms: Rooms, services: Any, last_position: Callable[[str], int]) -> None:
        self._rooms = rooms
        self._services = services
        self._last_position = last_position

    def build(self, request: RoomRequest) -> dict[str, Any] | None:
        """The room's entry, or None when the connection has nothing new to learn of it."""
        if request.membership in ("invite", "knock"):
            return self._stripped(request)
        return self._room(request)

    # ---- invites and knocks

    def _stripped(self, request: RoomRequest) -> dict[str, Any] | None:
        if request.sent_through is not None and request.sent_membership == request.membership:
            return None
        state_cache = self._rooms.state_cache
        source = (
            state_cache.invited_rooms
            if request.membership == "invite"
            else state_cache.knocked_rooms
        )
        stripped = next((s for room, s in source(request.user_id) if room == request.room_id), [])
        entry: dict[str, Any] = {
            "initial": True,
            "membership": request.membership,
            f"{request.membership}_state": stripped,
        }
        for event in stripped:
            content = event.get("content") or {}
            if event.get("type") == "m.room.name" and isinstance(content.get("name"), str):
                entry["name"] = content["name"]
            elif event.get("type") == "m.room.avatar" and isinstance(content.get("url"), str):
                entry["avatar"] = content["url"]
        if request.bump_stamp is not None:
            entry["bump_stamp"] = request.bump_stamp
        if request.is_dm:
            entry["is_dm"] = True
        return entry

    # ---- joined (or left) rooms

    def _room(self, request: RoomRequest) -> dict[str, Any] | None:
        room_id, user_id = request.room_id, request.user_id
        initial = request.sent_through is None or request.sent_membership in ("invite", "knock")
        since = None if initial else request.sent_through
        sent_config = request.sent_config if not initial else None
        expanded = (
            sent_config is not None and request.config.timeline_limit > sent_config.timeline_limit
        )
        if since is not None and not expanded and self._last_position(room_id) <= since:
            timeline = _Timeline([], False, set())  # nothing new: no walk, no visibility check
        else:
            timeline = self._timeline(request, None if expanded else since)
        if expanded:
            changed = self._timeline(request, since).changed_state
            timeline.changed_state = changed
        new_pairs = (
            ()
            if sent_config is None
            else tuple(
                p for p in request.config.required_state if p not in sent_config.required_state
            )
        )
        receipt_changed = since is not None and self._own_receipt_since(room_id, user_id, since)
        membership_changed = request.sent_membership not in (None, request.membership)
        if not (
            initial
            or expanded
            or timeline.events
            or new_pairs
            or receipt_changed
            or membership_changed
        ):
            return None
        state = self._required_state(request, timeline, initial, new_pairs)
        entry: dict[str, Any] = {
            "timeline": [self._format(request, e) for e in timeline.events],
            "required_state": [self._format(request, e) for e in state],
            # An expanded timeline repeats events the client has: `limited` tells clients that
            # know no `expanded_timeline` (matrix-js-sdk) to merge them as scrollback.
            "limited": timeline.limited or expanded,
            "prev_batch": self._prev_batch(timeline.events, request.upto),
            "num_live": self._num_live(timeline.events, request.live_after),
            "membership": request.membership,
            **self._summary(request),
        }
        if initial:
            entry["initial"] = True
        if expanded:
            entry["expanded_timeline"] = True
        if request.bump_stamp is not None:
            entry["bump_stamp"] = request.bump_stamp
        return entry

    def _format(self, request: RoomRequest, event: Event) -> dict[str, Any]:
        return self._rooms.events.for_client(
            event, request.user_id, request.device_id, with_room_id=False
        )

    def _timeline(self, request: RoomRequest, since: int | None) -> _Timeline:
        """The newest visible events in (`since`, `upto`], and the state keys changed there."""
        limit = request.config.timeline_limit
        rooms = self._rooms
        kept: list[Event] = []
        candidates: list[Event] = []
        changed: set[StateKey] | None = set() if since is not None else None
        more = False
        for scanned, (position, event) in enumerate(
            rooms.timeline.events_before(request.room_id, request.upto)
        ):
            if since is not None and position <= since:
                break
            if changed is not None:
                if scanned >= MAX_STATE_SCAN:
                    changed = None
                elif "state_key" in event:
                    changed.add((event["type"], event["state_key"]))
            if len(kept) >= limit:
                more = True
                if changed is None or since is None:
                    break
                continue
            if event.get("sender") in request.ignored:
                continue
            candidates.append(event)
            if len(candidates) >= limit + 1:
                kept.extend(
                    rooms.visibility.filter_events(request.user_id, request.room_id, candidates)
                )
                candidates = []
        if candidates:
            kept.extend(
                rooms.visibility.filter_events(request.user_id, request.room_id, candidates)
            )
        if len(kept) > limit:
            more = True
        kept = kept[:limit]
        kept.reverse()
        return _Timeline(kept, more, changed)

    def _prev_batch(self, events: list[Event], upto: int) -> str:
        if not events:
            return str(upto)
        position = self._rooms.timeline.position(events[0]["event_id"]) or 1
        return str(position - 1)

    def _num_live(self, events: list[Event], live_after: int | None) -> int:
        if live_after is None:
            return 0
        position = self._rooms.timeline.position
        return sum(1 for event in events if (position(event["event_id"]) or 0) > live_after)

    def _own_receipt_since(self, room_id: str, user_id: str, since: int) -> bool:
        receipts = self._services.receipts.receipts_since(room_id, since, user_id) or {}
        return any(user_id in users for by_type in receipts.values() for users in by_type.values())

    def _required_state(
        self,
        request: RoomRequest,
        timeline: _Timeline,
        initial: bool,
        new_pairs: tuple[tuple[str, str], ...],
    ) -> list[Event]:
        pairs = request.config.required_state
        if not pairs:
            return []
        current = self._current_state(request)
        lazy = {event.get("sender") for event in timeline.events} | {
            event["state_key"]
            for event in timeline.events
            if event.get("type") == "m.room.member" and isinstance(event.get("state_key"), str)
        }
        wanted: dict[StateKey, str] = {}
        if initial or timeline.changed_state is None:
            wanted = self._matching(current, pairs, request.user_id, lazy)
        else:
            changed = {k: current[k] for k in timeline.changed_state if k in current}
            wanted = self._matching(changed, pairs, request.user_id, lazy)
            if new_pairs:
                wanted.update(self._matching(current, new_pairs, request.user_id, lazy))
            if any(pair[1] == LAZY for pair in pairs):
                for sender in lazy:
                    event_id = current.get(("m.room.member", sender))
                    if event_id is not None:
                        wanted[("m.room.member", sender)] = event_id
        timeline_ids = {event["event_id"] for event in timeline.events}
        get = self._rooms.timeline.get_event
        return [
            event
            for event_id in wanted.values()
            if (initial or event_id not in timeline_ids) and (event := get(event_id)) is not None
        ]

    def _current_state(self, request: RoomRequest) -> Mapping[StateKey, str]:
        """The state the entry describes: now, or at the user's leave."""
        rooms = self._rooms
        current = rooms.state.current_state_ids(request.room_id)
        if request.membership in ("join", "invite", "knock"):
            return current
        member_id = current.get(("m.room.member", request.user_id))
        short = rooms.short.existing_short_event_id(member_id) if member_id else None
        at_leave = rooms.state.state_ids_after(short) if short is not None else None
        return at_leave if at_leave is not None else current

    @staticmethod
    def _matching(
        state: Mapping[StateKey, str],
        pairs: tuple[tuple[str, str], ...],
        user_id: str,
        lazy: set[str],
    ) -> dict[StateKey, str]:
        if any(t == WILDCARD or k == WILDCARD for t, k in pairs):
            return {
                key: event_id
                for key, event_id in state.items()
                if any(matches(pair, key, user_id, lazy) for pair in pairs)
            }
        found = {}
        for event_type, state_key in pairs:
            if state_key == LAZY:
                keys = [(event_type, member) for member in lazy if event_type == "m.room.member"]
            else:
                keys = [(event_type, user_id if state_key == ME else state_key)]
            for key in keys:
                if key in state:
                    found[key] = state[key]
        return found

    def _summary(self, request: RoomRequest) -> dict[str, Any]:
        room_id, user_id = request.room_id, request.user_id
        rooms = self._rooms
        state_cache = rooms.state_cache
        content = rooms.timeline.state_content
        summary: dict[str, Any] = {
            "joined_count": state_cache.member_count(room_id, "joined"),
            "invited_count": state_cache.member_count(room_id, "invited"),
            **self._services.notification_counts.counts(
                room_id, user_id, self._services.receipts.read_event(room_id, user_id)
            ),
        }
        name = content(room_id, "m.room.name").get("name")
        if isinstance(name, str) and name:
            summary["name"] = name
        else:
            summary["heroes"] = self._heroes(room_id, user_id)
        avatar = content(room_id, "m.room.avatar").get("url")
        if isinstance(avatar, str) and avatar:
            summary["avatar"] = avatar
        if request.is_dm:
            summary["is_dm"] = True
        return summary

    def _heroes(self, room_id: str, user_id: str) -> list[dict[str, Any]]:
        """Up to five other members, joined first then invited (MSC4186 `heroes`)."""
        state_cache = self._rooms.state_cache
        chosen = sorted(m for m in state_cache.joined_members(room_id) if m != user_id)[:MAX_HEROES]
        if len(chosen) < MAX_HEROES:
            invited = sorted(m for m in state_cache.invited_members(room_id) if m != user_id)
            chosen += invited[: MAX_HEROES - len(chosen)]
        heroes = []
        for member in chosen:
            content = self._rooms.timeline.state_content(room_id, "m.room.member", member)
            hero: dict[str, Any] = {"user_id": member}
            if isinstance(content.get("displayname"), str):
                hero["displayname"] = content["displayname"]
            if isinstance(content.get("avatar_url"), str):
                hero["avatar_url"] = content["avatar_url"]
            heroes.append(hero)
        return heroes
