"""What clients do with room events: send, read, paginate, redact, look up state.

Spec: `content/client-server-api/_index.md` ("Sending events", "Getting
events for a room", "Pagination", "Redactions") and the OpenAPI of
`room_send.yaml`, `room_state.yaml`, `rooms.yaml`, `message_pagination.yaml`,
`event_context.yaml`, `redaction.yaml`, `room_event_by_timestamp.yaml`.
Every read goes through `Visibility`; a user who may not read a room gets
403 `M_FORBIDDEN`, never another room's data.

Pagination tokens are stream positions (the global counter), written as
decimal strings: "from position N going backwards" covers events up to and
including N, "forwards" those after N. `/sync`'s `next_batch` and
`prev_batch` are the same kind of token. History backfilled from other
servers has negative positions (`Timeline`), so tokens may be negative.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from ...core.client_events import client_event
from ...core.digits import parse_decimal
from ...core.filters import EventFilter
from ...core.ids import is_on_server
from ...errors import MatrixError, forbidden, not_found
from ...storage import WriteBatch
from ..transaction_ids import TransactionIds
from .alias import Aliases
from .builder import EventBuilder
from .relations import Relations
from .short import ShortIds
from .state import RoomState
from .state_cache import StateCache
from .timeline import Event, Timeline
from .visibility import Visibility

MEMBER = "m.room.member"

MAX_LIMIT = 1000
JUMP_WINDOW = 50
"""`/timestamp_to_event` reads this many events on each side of where the time falls."""
NEWEST = 2**63 - 1
"""A stream position after every event."""


def parse_token(token: str, name: str) -> int:
    """A pagination token from a client (`M_INVALID_PARAM` if it is not one of ours)."""
    position = parse_decimal(token[1:] if token[:1] in ("s", "t") else token, signed=True)
    if position is None:
        raise MatrixError(400, "M_INVALID_PARAM", f"{name} is not a valid pagination token.")
    return position


class RoomEvents:
    def __init__(
        self,
        server_name: str,
        short: ShortIds,
        state: RoomState,
        state_cache: StateCache,
        timeline: Timeline,
        builder: EventBuilder,
        visibility: Visibility,
        transaction_ids: TransactionIds,
        aliases: Aliases,
        relations: Relations,
        *,
        allow_encryption: bool,
    ) -> None:
        self._server_name = server_name
        self._short = short
        self._state = state
        self._state_cache = state_cache
        self._timeline = timeline
        self._builder = builder
        self._visibility = visibility
        self._txns = transaction_ids
        self._aliases = aliases
        self.relations = relations
        self._allow_encryption = allow_encryption

    # ---- formatting

    def for_client(
        self,
        event: Event,
        user_id: str,
        device_id: str | None,
        *,
        with_room_id: bool = True,
    ) -> dict[str, Any]:
        event = self._visibility.as_seen_by(user_id, event)  # erased senders
        transaction_id = None
        if event.get("sender") == user_id:
            transaction_id = self._txns.transaction_id_for(event["event_id"], user_id, device_id)
        formatted = client_event(event, with_room_id=with_room_id, transaction_id=transaction_id)
        bundled = self.relations.bundle(
            event,
            user_id,
            lambda child: self._visibility.can_see_event(user_id, child),
            lambda child: self.for_client(child, user_id, device_id, with_room_id=with_room_id),
        )
        if bundled is not None:
            formatted.setdefault("unsigned", {})["m.relations"] = bundled
        return formatted

    def _require_room(self, room_id: str) -> None:
        try:
            self._timeline.room_version(room_id)
        except KeyError:
            raise forbidden(f"You are not allowed to see room {room_id}.") from None

    # ---- sending

    async def send(
        self,
        room_id: str,
        sender: str,
        device_id: str | None,
        event_type: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
        redacts: str | None = None,
    ) -> str:
        """Send a message or state event; a repeated txnId returns the first event id."""
        txn_path = (room_id, event_type, redacts or "")
        if txn_id is not None:
            existing = self._txns.existing(sender, device_id, txn_id, txn_path)
            if existing is not None:
                return existing.decode()
        self._require_room(room_id)
        self._check_allowed_content(room_id, event_type, content, state_key)
        if state_key is not None:
            current = self._timeline.state_event(room_id, event_type, state_key)
            if (
                current is not None
                and current.get("sender") == sender
                and current.get("content") == dict(content)
            ):
                return current["event_id"]

        def record_txn(event_id: str, batch: WriteBatch) -> None:
            if txn_id is not None:
                self._txns.record_event(event_id, sender, device_id, txn_id, txn_path, batch)

        async with self._builder.locks.hold(room_id) as guard:
            if txn_id is not None:
                existing = self._txns.existing(sender, device_id, txn_id, txn_path)
                if existing is not None:  # a concurrent retry got here first
                    return existing.decode()
            return self._builder.send_locked(
                guard,
                room_id,
                sender,
                event_type,
                content,
                state_key,
                redacts=redacts,
                also_write=record_txn,
            )

    def _check_allowed_content(
        self,
        room_id: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None,
    ) -> None:
        if not self._allow_encryption and event_type in ("m.room.encryption", "m.room.encrypted"):
            raise forbidden("Encryption is disabled on this server.")
        if event_type == "m.room.canonical_alias" and state_key == "":
            self._check_canonical_alias(room_id, content)

    def _check_canonical_alias(self, room_id: str, content: Mapping[str, Any]) -> None:
        """Spec (`m.room.canonical_alias`): every alias must exist and point to this room."""
        aliases: list[Any] = []
        if content.get("alias") is not None:
            aliases.append(content["alias"])
        alt = content.get("alt_aliases", [])
        if not isinstance(alt, list):
            raise MatrixError(400, "M_INVALID_PARAM", "alt_aliases must be a list of aliases.")
        aliases.extend(alt)
        for alias in aliases:
            if not isinstance(alias, str) or not alias.startswith("#") or ":" not in alias:
                raise MatrixError(400, "M_INVALID_PARAM", f"{alias!r} is not a room alias.")
            if is_on_server(alias, self._server_name) and self._aliases.resolve(alias) != room_id:
                raise MatrixError(
                    400, "M_BAD_ALIAS", f"The alias {alias} does not point to this room."
                )

    async def redact(
        self,
        room_id: str,
        sender: str,
        device_id: str | None,
        target_id: str,
        txn_id: str,
        reason: str | None,
    ) -> str:
        txn_path = (room_id, "m.room.redaction", target_id)
        existing = self._txns.existing(sender, device_id, txn_id, txn_path)
        if existing is not None:
            return existing.decode()
        target = self._timeline.get_event(target_id)
        if target is not None and target.get("room_id") != room_id:
            # A redaction only ever applies within its room: one naming another
            # room's event would sit in the timeline redacting nothing.
            raise MatrixError(
                400, "M_INVALID_PARAM", f"Event {target_id} is not an event of room {room_id}."
            )
        redacting_others = (
            target is not None and target["room_id"] == room_id and target["sender"] != sender
        )
        if redacting_others and not self._timeline.power_levels(room_id).can_redact(
            sender, redacting_own=False
        ):
            raise forbidden("You do not have the power to redact other users' events.")
        content = {"reason": reason} if reason is not None else {}
        return await self.send(
            room_id,
            sender,
            device_id,
            "m.room.redaction",
            content,
            txn_id=txn_id,
            redacts=target_id,
        )

    # ---- reading single events and state

    def event(self, user_id: str, room_id: str, event_id: str) -> Event:
        event = self._timeline.get_event(event_id)
        if (
            event is None
            or event.get("room_id") != room_id
            or self._timeline.position(event_id) is None
        ):
            raise not_found("Event not found.")
        if not self._visibility.can_see_event(user_id, event):
            raise not_found("Event not found.")  # no hint that it exists
        return event

    def _readable_state(self, user_id: str, room_id: str) -> Mapping[tuple[str, str], str]:
        """The state the user may read: current if joined (or world-readable), else at their
        leave."""
        self._require_room(room_id)
        if self._visibility.can_read_current_state(user_id, room_id):
            return self._state.current_state_ids(room_id)
        member_id = self._state.current_state_ids(room_id).get(("m.room.member", user_id))
        member = self._timeline.get_event(member_id) if member_id else None
        if member is not None and member.get("content", {}).get("membership") in ("leave", "ban"):
            before = self._state.state_ids_before(self._short.short_event_id(member_id)) or {}
            state = dict(before)
            state[("m.room.member", user_id)] = member_id
            return state
        raise forbidden(f"You are not a member of {room_id}.")

    def state(self, user_id: str, room_id: str) -> list[Event]:
        return [
            event
            for event_id in self._readable_state(user_id, room_id).values()
            if (event := self._timeline.get_event(event_id)) is not None
        ]

    def state_event(self, user_id: str, room_id: str, event_type: str, state_key: str) -> Event:
        event_id = self._readable_state(user_id, room_id).get((event_type, state_key))
        event = self._timeline.get_event(event_id) if event_id else None
        if event is None:
            raise not_found(f"The room has no {event_type} state with key {state_key!r}.")
        return event

    def members(
        self,
        user_id: str,
        room_id: str,
        *,
        at: int | None = None,
        membership: str | None = None,
        not_membership: str | None = None,
    ) -> list[Event]:
        state = self._readable_state(user_id, room_id)
        if at is not None:
            state = self._state_at_position(room_id, at) or state
        result = []
        for (event_type, _), event_id in state.items():
            if event_type != "m.room.member":
                continue
            event = self._timeline.get_event(event_id)
            if event is None:
                continue
            value = event.get("content", {}).get("membership")
            if membership is not None and value != membership:
                continue
            if not_membership is not None and value == not_membership:
                continue
            result.append(event)
        return result

    def joined_members(self, user_id: str, room_id: str) -> dict[str, dict[str, Any]]:
        self._require_room(room_id)
        if not self._visibility.can_read_current_state(user_id, room_id):
            raise forbidden(f"You are not a member of {room_id}.")
        joined = {}
        for member in self._state_cache.joined_members(room_id):
            content = self._timeline.state_content(room_id, "m.room.member", member)
            # members.yaml `RoomMember`: optional strings, left out when unset (never null)
            profile = {
                "display_name": content.get("displayname"),
                "avatar_url": content.get("avatar_url"),
            }
            joined[member] = {
                key: value for key, value in profile.items() if isinstance(value, str)
            }
        return joined

    def _state_at_position(
        self, room_id: str, position: int
    ) -> Mapping[tuple[str, str], str] | None:
        """The state after the newest event at or before `position`."""
        for _, event in self._timeline.events_before(room_id, position):
            state = self._state.state_ids_before(self._short.short_event_id(event["event_id"]))
            if state is None:
                return None
            if "state_key" in event:
                state = dict(state)
                state[(event["type"], event["state_key"])] = event["event_id"]
            return state
        return None

    # ---- pagination

    def _visible(
        self,
        user_id: str,
        room_id: str,
        events: Iterator[tuple[int, Event]],
        event_filter: EventFilter,
        limit: int,
    ) -> tuple[list[tuple[int, Event]], bool]:
        """Up to `limit` visible, matching events; and whether the range went on."""
        found: list[tuple[int, Event]] = []
        batch: list[tuple[int, Event]] = []
        for item in events:
            batch.append(item)
            if len(batch) >= 32:
                found.extend(self._filter_batch(user_id, room_id, batch, event_filter))
                batch = []
                if len(found) >= limit:
                    return found[:limit], True
        found.extend(self._filter_batch(user_id, room_id, batch, event_filter))
        return found[:limit], len(found) > limit

    def _filter_batch(
        self,
        user_id: str,
        room_id: str,
        batch: list[tuple[int, Event]],
        event_filter: EventFilter,
    ) -> list[tuple[int, Event]]:
        matching = [(position, e) for position, e in batch if event_filter.matches(e)]
        visible = {
            id(e)
            for e in self._visibility.filter_events(user_id, room_id, (e for _, e in matching))
        }
        return [(position, e) for position, e in matching if id(e) in visible]

    def messages(
        self,
        user_id: str,
        room_id: str,
        *,
        from_token: str | None,
        to_token: str | None,
        direction: str,
        limit: int,
        event_filter: EventFilter,
    ) -> tuple[list[Event], str, str | None]:
        """A page of the room's events: (events, start token, end token or None at the edge)."""
        self._require_room(room_id)
        if not self._visibility.can_read_current_state(
            user_id, room_id
        ) and self._state_cache.membership(room_id, user_id) not in ("leave", "invite"):
            raise forbidden(f"You are not a member of {room_id}.")
        limit = max(0, min(limit, MAX_LIMIT))
        if from_token is not None:
            start = parse_token(from_token, "from")
        else:
            start = self._timeline.last_position(room_id) if direction == "b" else 0
        to = parse_token(to_token, "to") if to_token is not None else None
        if direction == "b":
            events = self._timeline.events_before(room_id, start)
            if to is not None:
                events = ((p, e) for p, e in events if p > to)
        else:
            events = self._timeline.events_after(room_id, start)
            if to is not None:
                events = ((p, e) for p, e in events if p <= to)
        page, more = self._visible(user_id, room_id, events, event_filter, limit)
        end = None
        # Going forward, later events may still come: a page with events always
        # says where to go on from (Synapse does; clients poll with it).
        if page and (more or len(page) == limit or direction == "f"):
            last_position = page[-1][0]
            end = str(last_position - 1) if direction == "b" else str(last_position)
        return [event for _, event in page], str(start), end

    def context(
        self, user_id: str, room_id: str, event_id: str, limit: int, event_filter: EventFilter
    ) -> dict[str, Any]:
        event = self.event(user_id, room_id, event_id)
        position = self._timeline.position(event_id)
        assert position is not None
        limit = max(0, min(limit, MAX_LIMIT))
        before_count = limit // 2
        after_count = limit - before_count
        before, _ = self._visible(
            user_id,
            room_id,
            self._timeline.events_before(room_id, position - 1),
            event_filter,
            before_count,
        )
        after, _ = self._visible(
            user_id,
            room_id,
            self._timeline.events_after(room_id, position),
            event_filter,
            after_count,
        )
        last = after[-1][1] if after else event
        short_event_id = self._short.short_event_id(last["event_id"])
        if event_filter.lazy_load_members:  # only the members of the events' senders
            senders = {e["sender"] for _, e in (*before, *after)} | {event["sender"]}
            state_ids = self._lazy_state_before(room_id, short_event_id, senders)
        else:
            state_ids = self._state.state_ids_before(short_event_id)
        state = [
            found
            for state_id in (state_ids or {}).values()
            if (found := self._timeline.get_event(state_id)) is not None
        ]
        return {
            "event": event,
            "events_before": [e for _, e in before],
            "events_after": [e for _, e in after],
            "state": state,
            "start": str(before[-1][0] - 1 if before else position - 1),
            "end": str(after[-1][0] if after else position),
        }

    def _lazy_state_before(
        self, room_id: str, short_event_id: int, senders: set[str]
    ) -> Mapping[tuple[str, str], str] | None:
        """The state before an event with only the memberships of `senders`, read key by
        key (None: the event has no recorded state).

        The snapshot of a 10,000-member room is never converted whole (nor cached so,
        evicting others) for a few senders. Its other keys are the non-member keys of
        the room's current state: a state key, once set, stays in the state (an event
        replaces another of the same key; resolution keeps every key of its inputs).
        """
        view = self._state.state_view_before(short_event_id)
        if view is None:
            return None
        keys = [key for key in self._state.current_state_ids(room_id) if key[0] != MEMBER]
        keys += [(MEMBER, sender) for sender in senders]
        return {key: event_id for key in keys if (event_id := view.get(key)) is not None}

    def timestamp_to_event(
        self, user_id: str, room_id: str, timestamp: int, direction: str
    ) -> tuple[str, int]:
        """The visible event closest to `timestamp` in `direction` ("f": at or after,
        "b": at or before); on equal times the first ("f") or last ("b") in the stream.

        Not a scan of the room: this server's timestamps grow with the stream,
        so the place is bisected on the counter, and `JUMP_WINDOW` events on
        each side settle the order of other servers' events, whose clocks
        differ. Only when none of those is on the asked side and visible does
        the search go on, in that direction.
        """
        self._require_room(room_id)
        if not self._visibility.can_read_current_state(user_id, room_id):
            raise forbidden(f"You are not a member of {room_id}.")
        anchor = self._counter_at_time(room_id, timestamp)
        backward = self._timeline.events_before(room_id, anchor)  # newest first
        forward = self._timeline.events_after(room_id, anchor)  # oldest first
        window = [e for _, e in itertools.islice(backward, JUMP_WINDOW)][::-1]
        window += [e for _, e in itertools.islice(forward, JUMP_WINDOW)]
        if direction == "b":
            window.reverse()  # nearest first on the asked side, as the onward batches
        onward = forward if direction == "f" else backward
        best = self._closest_visible(user_id, room_id, window, timestamp, direction)
        while best is None:
            batch = [e for _, e in itertools.islice(onward, JUMP_WINDOW)]
            if not batch:
                raise not_found("No event found in that direction from that time.")
            best = self._closest_visible(user_id, room_id, batch, timestamp, direction)
        return best["event_id"], _timestamp_of(best)

    def _counter_at_time(self, room_id: str, timestamp: int) -> int:
        """A counter value after which the room's events start about at `timestamp`:
        the smallest whose first following event is not older than it."""
        low, high = 0, 0
        for position, _ in self._timeline.events_before(room_id, NEWEST):
            if int(position) >= 0:  # backfilled history (negative) has no counter value
                high = int(position)
                break
        while low < high:
            middle = (low + high) // 2
            following = next(self._timeline.events_after(room_id, middle), None)
            if following is None or _timestamp_of(following[1]) >= timestamp:
                high = middle
            else:
                low = middle + 1
        return low

    def _closest_visible(
        self, user_id: str, room_id: str, events: list[Event], timestamp: int, direction: str
    ) -> Event | None:
        """Of `events` (nearest first on ties), the visible one closest on the asked side."""
        if direction == "f":
            side = [e for e in events if _timestamp_of(e) >= timestamp]
        else:
            side = [e for e in events if _timestamp_of(e) <= timestamp]
        visible = self._visibility.filter_events(user_id, room_id, side)
        return min(visible, key=lambda e: abs(_timestamp_of(e) - timestamp), default=None)


def _timestamp_of(event: Event) -> int:
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0
