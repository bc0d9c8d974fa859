"""`GET /notifications`: the events that notified the user, newest first.

Spec: `content/client-server-api/modules/push.md` ("Listing Notifications")
and `data/api/client-server/notifications.yaml`. Computed when asked, from
the timelines of the user's rooms and their push rules, rather than written
for every member at every event: a small server answers this rarely, and
sends messages often.
"""

from __future__ import annotations

import heapq
from typing import Any

from ..core.push_rules import is_highlight, should_notify
from .push_sender import PushEvaluation
from .receipts import Receipts
from .rooms import Rooms

SCANNED_PER_ROOM = 500


class Notifications:
    def __init__(self, rooms: Rooms, evaluation: PushEvaluation, receipts: Receipts) -> None:
        self._rooms = rooms
        self._evaluation = evaluation
        self._receipts = receipts

    def list(
        self, user_id: str, *, before: int | None, limit: int, only_highlight: bool
    ) -> tuple[list[dict[str, Any]], int | None]:
        """(notifications, next token): `before` is a position from an earlier page."""
        timeline = self._rooms.timeline
        found: list[tuple[int, dict[str, Any]]] = []
        for room_id in list(self._rooms.state_cache.joined_rooms(user_id)):
            read_event = self._receipts.read_event(room_id, user_id)
            read_position = (timeline.position(read_event) if read_event else None) or 0
            start = before - 1 if before is not None else timeline.last_position(room_id)
            for scanned, (position, event) in enumerate(timeline.events_before(room_id, start)):
                if scanned >= SCANNED_PER_ROOM:
                    break
                if event.get("sender") == user_id:
                    continue
                actions = self._evaluation.actions(event, user_id)
                if not should_notify(actions) or (only_highlight and not is_highlight(actions)):
                    continue
                notification = {
                    "actions": actions,
                    "event": self._rooms.events.for_client(event, user_id, None),
                    "read": position <= read_position,
                    "room_id": room_id,
                    "ts": event.get("origin_server_ts", 0),
                }
                found.append((position, notification))
        newest = heapq.nlargest(limit + 1, found, key=lambda item: item[0])
        page = newest[:limit]
        next_token = page[-1][0] if len(newest) > limit and page else None
        return [notification for _, notification in page], next_token
