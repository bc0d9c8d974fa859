"""Unread notification and highlight counts per room, for `/sync`.

Spec: `content/client-server-api/modules/push.md` ("Receiving notifications":
`unread_notifications`) and `modules/receipts.md`. The counts are over the
events after the user's read receipt. Whether an event notifies or
highlights is `EventRating`'s call: until push rules exist, every message by
someone else notifies, and one that mentions the user (their user id,
display name or localpart, or `m.mentions`) highlights. The push rules work
replaces the rating; the counting stays here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .rooms.timeline import Event, Timeline

MAX_COUNTED = 1000
"""Events looked at per room and count; clients show "99+" long before."""

COUNTED_TYPES = frozenset(
    {"m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite", "m.poll.start"}
)


@dataclass(frozen=True)
class Rating:
    notify: bool
    highlight: bool


class EventRating:
    """The default rating: messages by others notify; mentions highlight."""

    def __init__(self, displayname: Callable[[str], str | None]) -> None:
        self._displayname = displayname

    def rate(self, event: Event, user_id: str) -> Rating:
        if event.get("sender") == user_id or event.get("type") not in COUNTED_TYPES:
            return Rating(False, False)
        content: Mapping[str, Any] = event.get("content") or {}
        mentions = content.get("m.mentions")
        if isinstance(mentions, dict):
            user_ids = mentions.get("user_ids")
            highlight = isinstance(user_ids, list) and user_id in user_ids
            return Rating(True, highlight or mentions.get("room") is True)
        body = content.get("body")
        if not isinstance(body, str):
            return Rating(True, False)
        names = [user_id, user_id[1:].split(":", 1)[0]]
        displayname = self._displayname(user_id)
        if displayname:
            names.append(displayname)
        highlight = any(
            re.search(rf"(?<!\w){re.escape(name)}(?!\w)", body, re.IGNORECASE) for name in names
        )
        return Rating(True, highlight)


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
