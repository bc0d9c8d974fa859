"""Unread notification and highlight counts per room, for `/sync`.

Spec: `content/client-server-api/modules/push.md` ("Receiving notifications":
`unread_notifications`) and `modules/receipts.md`. The counts are over the
events after the user's read receipt (and their own latest message). Whether
an event notifies or highlights is the `EventRating`'s call: the push rules
(`push_sender.PushRating`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .rooms.timeline import Event, Timeline

MAX_COUNTED = 1000
"""Events looked at per room and count; clients show "99+" long before."""


@dataclass(frozen=True)
class Rating:
    notify: bool
    highlight: bool


class EventRating(Protocol):
    """Whether an event notifies and highlights for a user (the push rules decide)."""

    def rate(self, event: Event, user_id: str) -> Rating: ...


class NotificationCounts:
    def __init__(self, timeline: Timeline, rating: EventRating) -> None:
        self._timeline = timeline
        self.rating = rating
        self._cache: dict[tuple[str, str], tuple[int, int, dict[str, int]]] = {}

    def counts(self, room_id: str, user_id: str, read_event_id: str | None) -> dict[str, int]:
        """`{"notification_count", "highlight_count"}` after the user's read receipt
        (and after their own latest message)."""
        read_position = (
            self._timeline.position(read_event_id) if read_event_id is not None else None
        ) or 0
        last = self._timeline.last_position(room_id)
        cached = self._cache.get((room_id, user_id))
        if cached is not None and cached[:2] == (read_position, last):
            return cached[2]
        notifications = highlights = 0
        for counted, (position, event) in enumerate(self._timeline.events_before(room_id, last)):
            # The user's own message counts as read up to it, as clients expect.
            if counted >= MAX_COUNTED or position <= read_position:
                break
            if event.get("sender") == user_id:
                break
            rating = self.rating.rate(event, user_id)
            notifications += rating.notify
            highlights += rating.highlight
        result = {"notification_count": notifications, "highlight_count": highlights}
        self._cache[(room_id, user_id)] = (read_position, last, result)
        return result
