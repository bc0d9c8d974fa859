"""Wake the long-polling `/sync` requests of users who have something new.

Spec: `content/client-server-api/_index.md`, "Syncing" (long polling with
`timeout`). A sync request takes a `Listener` *before* it looks for news, and
waits on it only if it found none, so nothing written in between is missed:
everything runs on one trio loop and every write notifies after it commits.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio


class Notifier:
    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}
        self._closing = False

    def listener(self, user_id: str) -> trio.Event:
        """The event that is set at the next news for `user_id`."""
        event = self._events.get(user_id)
        if event is None:
            event = self._events[user_id] = trio.Event()
            if self._closing:
                event.set()
        return event

    def notify(self, user_ids: Iterable[str]) -> None:
        if isinstance(user_ids, (set, frozenset)):
            # A room's members: only those waiting matter, and the intersection walks
            # the smaller side at C speed (10,000 members, a few dozen listening).
            user_ids = self._events.keys() & user_ids
        for user_id in user_ids:
            event = self._events.pop(user_id, None)
            if event is not None:
                event.set()

    def wake_all(self) -> None:
        """Release every waiting request (server shutdown)."""
        self._closing = True
        events, self._events = self._events, {}
        for event in events.values():
            event.set()
