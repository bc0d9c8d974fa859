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

from ..lru import SMALL_ENTRY_BYTES, LRUCache, MemoryBudget
from .rooms.timeline import Event, Timeline

MAX_COUNTED = 1000
"""Events looked at per room and count; clients show "99+" long before."""
CACHED_COUNTS = 100_000


@dataclass(frozen=True)
class Rating:
    notify: bool
    highlight: bool


class EventRating(Protocol):
    """Whether an event notifies and highlights for a user (the push rules decide)."""

    def rate(self, event: Event, user_id: str) -> Rating: ...


class NotificationCounts:
    """Counts kept per (room, user) and brought up to date incrementally.

    Each `/sync` of a busy room asks again; only the events since the last
    count are rated, unless the user's read receipt moved (then the count
    starts over from it).
    """

    def __init__(
        self, timeline: Timeline, rating: EventRating, memory: MemoryBudget | None = None
    ) -> None:
        self._timeline = timeline
        self.rating = rating
        self._cache: LRUCache[tuple[str, str], _Count] = (memory or timeline.memory).cache(
            "notification_counts", CACHED_COUNTS, lambda _key, _value: SMALL_ENTRY_BYTES
        )

    def counts(self, room_id: str, user_id: str, read_event_id: str | None) -> dict[str, int]:
        """`{"notification_count", "highlight_count"}` after the user's read receipt
        (and after their own latest message)."""
        read_position = (
            self._timeline.position(read_event_id) if read_event_id is not None else None
        ) or 0
        last = self._timeline.last_position(room_id)
        cached = self._cache.get((room_id, user_id))
        if cached is None or cached.read_position != read_position:
            cached = _Count(read_position, read_position, 0, 0)
        if cached.counted_up_to < last:
            cached = self._count_new(room_id, user_id, cached, last)
            self._cache.put((room_id, user_id), cached)
        return {"notification_count": cached.notifications, "highlight_count": cached.highlights}

    def _count_new(self, room_id: str, user_id: str, count: _Count, last: int) -> _Count:
        """`count` extended with the events after `count.counted_up_to`, up to `last`."""
        notifications = highlights = 0
        for counted, (position, event) in enumerate(self._timeline.events_before(room_id, last)):
            if counted >= MAX_COUNTED or position <= count.counted_up_to:
                break
            if event.get("sender") == user_id:
                # The user's own message counts as read up to it, as clients expect.
                return _Count(count.read_position, last, notifications, highlights)
            rating = self.rating.rate(event, user_id)
            notifications += rating.notify
            highlights += rating.highlight
        return _Count(
            count.read_position,
            last,
            count.notifications + notifications,
            count.highlights + highlights,
        )


@dataclass(frozen=True)
class _Count:
    read_position: int
    counted_up_to: int
    notifications: int
    highlights: int
