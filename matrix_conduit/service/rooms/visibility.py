"""Who may see which events of a room: `m.room.history_visibility`, enforced.

Spec: `content/client-server-api/modules/history_visibility.md`, "Server
behaviour", judged on the state of the room at each event (the state before
it; for `m.room.history_visibility` events and the user's own membership
events, before *or* after). Every read path (`/messages`, `/context`,
`/event`, `/sync`, `/state`, `/members`) asks this service.

Erasure (spec `account_deactivation.yaml`, `erase`): "any users which join
the room after the erasure request are served redacted copies of the events
sent by this account. Users which had visibility on those events prior to the
erasure are still able to see unredacted copies." `as_seen_by` serves an
event of an erased sender in full to a user with a `join` in their membership
history at or before the erasure's stream position (what they may see at all
is decided before, by history visibility), and redacted to everyone else:
later joiners and peekers of world-readable rooms. `erased_at` is set by the
services once `Users` exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...core.redaction import redact
from .short import ShortIds
from .state import ChangedState, RoomState
from .state_cache import StateCache
from .timeline import Event, Timeline

DEFAULT_VISIBILITY = "shared"
KNOWN_VISIBILITIES = ("world_readable", "shared", "invited", "joined")
MAX_MEMBERSHIP_HISTORY = 100
"""Member events of one user read back at most, looking for a join before an erasure."""


class Visibility:
    def __init__(
        self, short: ShortIds, state: RoomState, state_cache: StateCache, timeline: Timeline
    ) -> None:
        self.short = short
        self.state = state
        self.state_cache = state_cache
        self.timeline = timeline
        self.erased_at: Callable[[str], int | None] = _never_erased
        """The stream position of a user's erasure, if erased (`Users.erased_at`)."""

    # ---- the room as a whole

    def current_visibility(self, room_id: str) -> str:
        content = self.timeline.state_content(room_id, "m.room.history_visibility")
        return _visibility(content)

    def is_world_readable(self, room_id: str) -> bool:
        return self.current_visibility(room_id) == "world_readable"

    def can_read_current_state(self, user_id: str, room_id: str) -> bool:
        """Members see the current state; others only of world-readable rooms."""
        return self.state_cache.is_joined(user_id, room_id) or self.is_world_readable(room_id)

    # ---- single events

    def filter_events(self, user_id: str, room_id: str, events: Iterable[Event]) -> list[Event]:
        """The events `user_id` may see, in the given order."""
        context = _UserContext(self, user_id, room_id)
        return [event for event in events if context.may_see(event)]

    def can_see_event(self, user_id: str, event: Event) -> bool:
        return _UserContext(self, user_id, event["room_id"]).may_see(event)

    def as_seen_by(self, user_id: str, event: Event) -> Event:
        """The event as `user_id` (who may see it) is served it: redacted when its sender
        was erased and the user had not joined the room by then (a new dict then, with
        its `event_id` and without `unsigned.prev_content`, the sender's old content)."""
        sender = event.get("sender")
        if sender == user_id or not isinstance(sender, str):
            return event
        erased_at = self.erased_at(sender)
        if erased_at is None or self._joined_by(user_id, event["room_id"], erased_at):
            return event
        redacted = redact(event, self.timeline.room_version(event["room_id"]))
        redacted["event_id"] = event["event_id"]
        unsigned = {
            key: value
            for key, value in (event.get("unsigned") or {}).items()
            if key not in ("prev_content", "prev_sender")
        }
        if unsigned:
            redacted["unsigned"] = unsigned
        return redacted

    def _joined_by(self, user_id: str, room_id: str, position: int) -> bool:
        """Whether the user's membership history in the room has a `join` at or before
        stream `position` (read back from their current member event through
        `unsigned.replaces_state`)."""
        member_id = self.state.current_state_ids(room_id).get(("m.room.member", user_id))
        for _ in range(MAX_MEMBERSHIP_HISTORY):
            member = self.timeline.get_event(member_id) if member_id else None
            if member is None:
                return False
            at = self.timeline.position(member_id)
            joined = (member.get("content") or {}).get("membership") == "join"
            if joined and at is not None and at <= position:
                return True
            member_id = (member.get("unsigned") or {}).get("replaces_state")
        return False

    def state_before(self, event: Event) -> Mapping[tuple[str, str], str]:
        short = self.short.short_event_id(event["event_id"])
        view = self.state.state_view_before(short)  # not `or {}`: that would ask its len
        return view if view is not None else {}

    def content_at(
        self, state: Mapping[tuple[str, str], str], key: tuple[str, str]
    ) -> dict[str, Any]:
        event_id = state.get(key)
        event = self.timeline.get_event(event_id) if event_id else None
        return dict(event.get("content") or {}) if event else {}


def _never_erased(user_id: str) -> int | None:
    return None


def _visibility(content: Mapping[str, Any]) -> str:
    value = content.get("history_visibility")
    return value if value in KNOWN_VISIBILITIES else DEFAULT_VISIBILITY


class _UserContext:
    """What one user's membership history says, computed once per request."""

    def __init__(self, visibility: Visibility, user_id: str, room_id: str) -> None:
        self._visibility = visibility
        self._user_id = user_id
        timeline = visibility.timeline
        state_cache = visibility.state_cache
        self._currently_joined = state_cache.is_joined(user_id, room_id)
        member_id = visibility.state.current_state_ids(room_id).get(("m.room.member", user_id))
        member_event = timeline.get_event(member_id) if member_id else None
        self._member_position = timeline.position(member_id) if member_id else None
        # A user who left (or was kicked or banned) straight from `join` was
        # joined until that event: they joined "at some point after" any
        # earlier event (rule 3).
        self._joined_until: int | None = None
        if not self._currently_joined and member_event is not None:
            previous = (member_event.get("unsigned") or {}).get("prev_content") or {}
            if previous.get("membership") == "join":
                self._joined_until = self._member_position

    def may_see(self, event: Event) -> bool:
        if self._currently_joined and self._member_position is not None:
            position = self._visibility.timeline.position(event["event_id"])
            if position is not None and position >= self._member_position:
                return True  # fast path: sent while the user is joined
        state = self._visibility.state_before(event)
        if self._allowed_by(state, event):
            return True
        if self._judged_before_or_after(event):
            after = ChangedState(state, {(event["type"], event["state_key"]): event["event_id"]})
            return self._allowed_by(after, event)
        return False

    def _judged_before_or_after(self, event: Event) -> bool:
        return event["type"] == "m.room.history_visibility" or (
            event["type"] == "m.room.member" and event.get("state_key") == self._user_id
        )

    def _allowed_by(self, state: Mapping[tuple[str, str], str], event: Event) -> bool:
        visibility = _visibility(
            self._visibility.content_at(state, ("m.room.history_visibility", ""))
        )
        if visibility == "world_readable":
            return True
        membership = self._visibility.content_at(state, ("m.room.member", self._user_id)).get(
            "membership"
        )
        if membership == "join":
            return True
        if visibility == "shared" and self._joined_after(event):
            return True
        return visibility == "invited" and membership == "invite"

    def _joined_after(self, event: Event) -> bool:
        if self._currently_joined:
            return True
        if self._joined_until is None:
            return False
        position = self._visibility.timeline.position(event["event_id"])
        return position is not None and position < self._joined_until
