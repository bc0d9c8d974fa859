"""Typing notifications: who is typing in each room, until their timeout runs out.

Spec: `content/client-server-api/modules/typing_notifications.md`,
`data/api/client-server/typing.yaml`, event `m.typing`. Clients replace their
whole list of typing users with each `m.typing` they get, so the server only
remembers who is typing now: in memory, since a restart ends every notice
anyway.

Each change of a room's list (a user starts, stops or times out) takes a
position on the global counter, so `/sync` sends `m.typing` only to those whose
token is older. Expiry happens when the list is read and in `run`, which wakes
at the earliest deadline so the members' long-polling syncs hear of it.

With several server processes on one database (issue #18) each process keeps
every process's notices: a change made through one is published (channel
`typing`, with its deadline) and applied by the others, which take a position
of their own for it and wake their syncs; each expires notices itself. The
`changed` hooks (federation EDUs, appservices) fire in the process the notice
was set through only, so other servers hear of each change once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio

from ..errors import forbidden
from .clock import Clock, now_ms
from .cluster import Cluster
from .globals import Globals
from .notifier import Notifier
from .rooms.state_cache import StateCache

MAX_TIMEOUT_MS = 120_000
"""A client that asks for longer still appears typing for at most this long."""


class Typing:
    def __init__(
        self,
        globals_: Globals,
        notifier: Notifier,
        state_cache: StateCache,
        *,
        clock: Clock = now_ms,
        cluster: Cluster | None = None,
    ) -> None:
        self._globals = globals_
        self._cluster = cluster
        self._notifier = notifier
        self._state_cache = state_cache
        self._clock = clock
        self._deadlines: dict[str, dict[str, int]] = {}
        """room id → user id → when their notice expires (ms since the epoch)."""
        self._last_change: dict[str, int] = {}
        self._set_here: set[tuple[str, str]] = set()
        """(room id, user id) of notices set through this process: its hooks announce them."""
        self._new_deadline = trio.Event()
        self.changed: list[Callable[[str, str, bool], None]] = []
        """Called with (room id, user id, typing) when someone starts or stops typing
        (a notice that times out stops): the federation sender tells other servers."""
        if cluster is not None:
            cluster.subscribe("typing", self._apply_published)

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        """Start (for `timeout_ms`) or stop `user_id`'s notice; they must be joined."""
        if not self._state_cache.is_joined(user_id, room_id):
            raise forbidden("You are not in this room.")
        self._expire(room_id)
        deadline = self._clock() + min(max(timeout_ms, 0), MAX_TIMEOUT_MS) if typing else None
        if typing:
            self._set_here.add((room_id, user_id))
        else:
            self._set_here.discard((room_id, user_id))
        if self._set(room_id, user_id, deadline):
            self._changed(room_id, {user_id: typing}, announced={user_id})
        if self._cluster is not None:
            self._cluster.publish(
                "typing", {"room_id": room_id, "user_id": user_id, "until": deadline}
            )

    def _set(self, room_id: str, user_id: str, deadline: int | None) -> bool:
        """Keep the user's notice until `deadline` (None: none); whether they started or
        stopped typing."""
        typing_now = self._deadlines.setdefault(room_id, {})
        was_typing = user_id in typing_now
        if deadline is not None:
            typing_now[user_id] = deadline
            self._new_deadline.set()
        else:
            typing_now.pop(user_id, None)
        if not typing_now:
            del self._deadlines[room_id]
        return (deadline is not None) != was_typing

    def _apply_published(self, change: dict[str, Any] | None) -> None:
        """A notice set through another process (never too big to arrive whole)."""
        if change is None:
            return
        room_id, user_id, deadline = change["room_id"], change["user_id"], change["until"]
        self._set_here.discard((room_id, user_id))
        self._expire(room_id)
        if self._set(room_id, user_id, deadline):
            self._changed(room_id, {user_id: deadline is not None}, announced=set())

    def typing_users(self, room_id: str) -> list[str]:
        """Who is typing in the room now, in the order they started."""
        self._expire(room_id)
        return list(self._deadlines.get(room_id, ()))

    def last_change(self, room_id: str) -> int:
        """The position of the room's latest typing change (0: none since the server started)."""
        self._expire(room_id)
        return self._last_change.get(room_id, 0)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Expire notices as their deadlines pass, until cancelled."""
        task_status.started()
        while True:
            self._new_deadline = trio.Event()
            for room_id in list(self._deadlines):
                self._expire(room_id)
            earliest = min(
                (deadline for users in self._deadlines.values() for deadline in users.values()),
                default=None,
            )
            wait_seconds = math.inf if earliest is None else (earliest - self._clock()) / 1000
            with trio.move_on_after(max(wait_seconds, 0)):
                await self._new_deadline.wait()

    def _expire(self, room_id: str) -> None:
        typing_now = self._deadlines.get(room_id)
        if not typing_now:
            return
        now = self._clock()
        expired = [user_id for user_id, deadline in typing_now.items() if deadline <= now]
        for user_id in expired:
            del typing_now[user_id]
        if not typing_now:
            del self._deadlines[room_id]
        if expired:
            announced = {user_id for user_id in expired if (room_id, user_id) in self._set_here}
            self._set_here.difference_update((room_id, user_id) for user_id in expired)
            self._changed(room_id, dict.fromkeys(expired, False), announced=announced)

    def _changed(self, room_id: str, changes: dict[str, bool], *, announced: set[str]) -> None:
        """Order and wake the room's syncs; the hooks hear of the `announced` users' changes."""
        self._last_change[room_id] = self._globals.next_count()
        self._notifier.notify(self._state_cache.joined_members(room_id))
        for user_id, typing in changes.items():
            if user_id in announced:
                for listener in self.changed:
                    listener(room_id, user_id, typing)
