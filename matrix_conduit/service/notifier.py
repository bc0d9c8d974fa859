"""Wake the long-polling `/sync` requests of users who have something new.

Spec: `content/client-server-api/_index.md`, "Syncing" (long polling with
`timeout`). A sync request takes a `Listener` *before* it looks for news, and
waits on it only if it found none, so nothing written in between is missed:
everything runs on one trio loop and every write notifies after it commits.

With other processes on the database (`Cluster.shared`) each news goes to
them too, with the position it comes at, and wakes a listener, here or there,
only once the committed mark has reached that position: a sync woken earlier
would find nothing below the mark and go back to sleep with the news missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio

from .cluster import Cluster

MAX_NAMED_USERS = 100
"""News for more users than this wakes every listener of the other processes."""


class Notifier:
    def __init__(self, cluster: Cluster | None = None) -> None:
        self._events: dict[str, trio.Event] = {}
        self._closing = False
        self._cluster = cluster if cluster is not None and cluster.shared else None
        self._waiting_for_mark: list[tuple[int, Iterable[str] | None]] = []
        """(position, users or None for everyone) that the mark has not reached."""
        if self._cluster is not None:
            self._cluster.subscribe("wake", self._news_from_elsewhere)
            self._cluster.on_mark_advanced(self._mark_advanced)

    def listener(self, user_id: str) -> trio.Event:
        """The event that is set at the next news for `user_id`."""
        event = self._events.get(user_id)
        if event is None:
            event = self._events[user_id] = trio.Event()
            if self._closing:
                event.set()
        return event

    def notify(self, user_ids: Iterable[str]) -> None:
        if self._cluster is None:
            self._wake(user_ids)
            return
        users = user_ids if isinstance(user_ids, (set, frozenset)) else list(user_ids)
        position = self._cluster.last_taken
        named = sorted(users) if len(users) <= MAX_NAMED_USERS else None
        self._cluster.publish("wake", {"p": position, "u": named})
        self._wake_at(position, users)

    def _news_from_elsewhere(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("p"), int):
            self._wake(None)  # too big to send: wake everyone, they look for themselves
            return
        users = data.get("u")
        self._wake_at(data["p"], users if isinstance(users, list) else None)

    def _wake_at(self, position: int, users: Iterable[str] | None) -> None:
        assert self._cluster is not None
        if position <= self._cluster.mark:
            self._wake(users)
        else:
            self._waiting_for_mark.append((position, users))

    def _mark_advanced(self, mark: int) -> None:
        due = [news for news in self._waiting_for_mark if news[0] <= mark]
        if not due:
            return
        self._waiting_for_mark = [news for news in self._waiting_for_mark if news[0] > mark]
        for _, users in due:
            self._wake(users)

    def _wake(self, user_ids: Iterable[str] | None) -> None:
        """Set the events of `user_ids` (None: of everyone waiting)."""
        if user_ids is None:
            user_ids = list(self._events)
        elif isinstance(user_ids, (set, frozenset)):
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
