"""One lock per room, and the guard that proves it is held.

DESIGN.md, "Concurrency": appends to a room happen one at a time, so that
an event's prev_events, state before and position agree with what is
already stored. The persist path (`Timeline.persist`) takes a `RoomGuard`,
and only `RoomLocks` makes one, for the task that holds the room's lock and
only while it holds it: forgetting the lock is an error at once, not a race
found in production.

With other server processes on the database (`Cluster.shared`), holding a
room's lock also means holding its advisory lock in PostgreSQL and having
caught up with the other processes' messages (`Cluster.lock_room`): the
previous holder, wherever it ran, sent what it changed before letting go.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import trio

from ..cluster import Cluster

_ISSUER = object()
"""Passed by `RoomLocks` alone: a guard made elsewhere is refused."""


class RoomLockNotHeld(RuntimeError):
    """The persist path was called without the room's lock (a programming error)."""


class RoomGuard:
    """Handed out by `RoomLocks.hold`: the holder has the lock of `room_id`."""

    __slots__ = ("_held", "_task", "room_id")

    def __init__(self, room_id: str, issuer: object) -> None:
        if issuer is not _ISSUER:
            raise RoomLockNotHeld("a RoomGuard comes only from RoomLocks.hold")
        self.room_id = room_id
        self._task = trio.lowlevel.current_task()
        self._held = True

    def require(self, room_id: str) -> None:
        """Raise `RoomLockNotHeld` unless this guard holds `room_id`'s lock right now."""
        if room_id != self.room_id:
            raise RoomLockNotHeld(f"the guard is for {self.room_id}, not {room_id}")
        if not self._held or trio.lowlevel.current_task() is not self._task:
            raise RoomLockNotHeld(f"the lock of {room_id} is not held by this task")


class _Hold:
    """`async with locks.hold(room_id) as guard`: a class, as it runs for every event."""

    __slots__ = ("_cluster", "_guard", "_lock", "_room_id")

    def __init__(self, lock: trio.Lock, room_id: str, cluster: Cluster | None) -> None:
        self._lock = lock
        self._room_id = room_id
        self._cluster = cluster
        self._guard: RoomGuard | None = None

    async def __aenter__(self) -> RoomGuard:
        await self._lock.acquire()
        if self._cluster is not None:
            try:
                await self._cluster.lock_room(self._room_id)
            except BaseException:
                self._lock.release()
                raise
        self._guard = RoomGuard(self._room_id, _ISSUER)
        return self._guard

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._guard is not None
        self._guard._held = False
        try:
            if self._cluster is not None:
                self._cluster.unlock_room(self._room_id)
        finally:
            self._lock.release()


class RoomLocks:
    def __init__(self, cluster: Cluster | None = None) -> None:
        self._locks: dict[str, trio.Lock] = {}
        self._cluster = cluster if cluster is not None and cluster.shared else None

    def hold(self, room_id: str) -> AbstractAsyncContextManager[RoomGuard]:
        """Wait for the room's lock; the guard is valid until the block ends."""
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = trio.Lock()
        return _Hold(lock, room_id, self._cluster)
