"""The other server processes of this database, if any: positions, messages, locks.

On LevelDB and SQLite a server is alone (`shared` is False) and every method
here costs nothing: positions come from `Globals`' own counter, messages have
nobody to go to, locks are the in-process ones. On PostgreSQL any number of
processes serve one database, each every endpoint (issue #18); this is where
what used to be in-process becomes shared (`storage/postgresql_cluster.py`
says how PostgreSQL does each part):

- positions on the global counter (`take_position`) and the committed mark
  (`mark`), which is what `/sync` may read up to. The mark passes another
  process's positions only once the messages that process sent with them
  have been handled here (a barrier after reading it): `/sync` below the mark
  never reads a cache those messages would have changed;
- messages (`publish`, `subscribe`): a service that keeps something in memory
  that another process may change (a cache, who is typing) publishes what it
  changed after the change is committed, and the others' handlers apply it.
  Messages are sent in order, after the positions taken before them have
  landed. A handler may get `None`: the message was too big to send, so
  assume that everything on that channel changed;
- `catch_up()`: wait until every message committed before now has been
  handled here; the room lock does so once it is held, and its holder sends
  its messages before letting go, so a room's cached state is current for
  whoever holds its lock;
- room locks (`lock_room`) and leases (`try_lease`): advisory locks that end
  with the process, so a background sender's queue has one sender at a time
  and a dead process's work is taken over.

The background task `run` listens for messages, sends what was published, and
keeps the mark up to date (also when another process dies mid-write).
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import trio

from ..storage import Database, DatabaseError

log = logging.getLogger(__name__)

ROOM_LOCKS = 1
LEASES = 2
"""Namespaces of advisory locks (the first int of their key)."""

MARK_REFRESH_SECONDS = 1.0
"""How often the mark is read even when no message came (a dead process's positions)."""
DEAD_PROCESS_CHECK_SECONDS = 10.0
RECONNECT_SECONDS = 1.0
CATCH_UP_LIMIT_SECONDS = 10.0
"""A barrier that does not come back in this long (the database is unreachable) is
given up on: the caller goes on with what it has."""
_LOCK_POLL_FIRST = 0.001
_LOCK_POLL_LONGEST = 0.05

Handler = Callable[[Any], None]


class Cluster:
    """This server's view of the processes it shares its database with."""

    def __init__(self, db: Database, stored_counter: int) -> None:
        self._link = db.cluster_link(stored_counter)
        self.shared = self._link is not None
        """Whether other processes may serve this database too (PostgreSQL)."""
        self.process = self._link.process if self._link else 0
        self._subscribers: dict[str, list[Handler]] = defaultdict(list)
        self._mark_listeners: list[Callable[[int], None]] = []
        self._taken: list[int] = []
        self._outgoing: list[str] = []
        self._wanted_flush = trio.Event()
        self._own_above_mark: list[int] = []
        """This process's positions above the mark, oldest first: the mark may pass
        them without waiting for any message."""
        self._wanted_mark = trio.Event()
        self._barriers: dict[int, trio.Event] = {}
        self._barrier_count = 0
        self._listening = False
        self.last_taken = 0
        """The last position this process took."""
        self.mark = self._link.committed_mark() if self._link else 0
        """The committed mark (shared only): every position up to it has landed."""

    # Positions.

    def take_position(self) -> int:
        """A new position (shared only); written in this synchronous stretch, settled after."""
        assert self._link is not None
        position = self._link.take_position()
        self._taken.append(position)
        self._own_above_mark.append(position)
        self.last_taken = position
        self._wanted_flush.set()
        return position

    def latest_position(self) -> int:
        """The last position any process took (shared only), landed or not."""
        assert self._link is not None
        return self._link.last_position()

    def on_mark_advanced(self, callback: Callable[[int], None]) -> None:
        """Call `callback(mark)` whenever the committed mark moves forward."""
        self._mark_listeners.append(callback)

    # Messages.

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Run `handler(data)` for each message other processes publish on `channel`."""
        self._subscribers[channel].append(handler)

    def publish(self, channel: str, data: Any) -> None:
        """Tell the other processes `data` (JSON) on `channel`, once what came before lands."""
        if not self.shared:
            return
        self._outgoing.append(self._payload(channel, data))
        self._wanted_flush.set()

    def _payload(self, channel: str, data: Any) -> str:
        payload = json.dumps({"o": self.process, "c": channel, "d": data}, separators=(",", ":"))
        if len(payload.encode()) > _max_payload():
            payload = json.dumps({"o": self.process, "c": channel, "d": None})
        return payload

    def flush(self) -> None:
        """Settle the positions taken so far and send what was published, now."""
        if self._link is None or not (self._taken or self._outgoing):
            return
        taken, self._taken = self._taken, []
        outgoing, self._outgoing = self._outgoing, []
        self._offer_mark(self._link.settle(taken, outgoing))

    async def catch_up(self) -> None:
        """Return once every message committed before now has been handled here."""
        if self._link is None or not self._listening:
            return
        self._barrier_count += 1
        number = self._barrier_count
        arrived = self._barriers[number] = trio.Event()
        self._outgoing.append(self._payload("barrier", number))
        self.flush()
        with trio.move_on_after(CATCH_UP_LIMIT_SECONDS) as late:
            await arrived.wait()
        self._barriers.pop(number, None)
        if late.cancelled_caught:
            log.warning("no word from the database in %.0f s; going on", CATCH_UP_LIMIT_SECONDS)

    # Locks.

    async def lock_room(self, room_id: str) -> None:
        """Wait for the room's lock across processes, then catch up with their messages."""
        await self._lock(ROOM_LOCKS, room_id)
        try:
            await self.catch_up()
        except BaseException:
            self.unlock_room(room_id)
            raise

    def unlock_room(self, room_id: str) -> None:
        """Send what the holder published (so the next holder sees it), then let go."""
        if self._link is None:
            return
        self.flush()
        self._link.unlock(ROOM_LOCKS, room_id)

    def try_lease(self, name: str) -> bool:
        """Whether this process now holds the lease `name` (held until released or
        the process ends); always true when the server is alone."""
        return self._link is None or self._link.try_lock(LEASES, name)

    def release_lease(self, name: str) -> None:
        if self._link is not None:
            self._link.unlock(LEASES, name)

    async def _lock(self, kind: int, name: str) -> None:
        assert self._link is not None
        pause = _LOCK_POLL_FIRST
        while not self._link.try_lock(kind, name):
            await trio.sleep(pause)
            pause = min(pause * 2, _LOCK_POLL_LONGEST)

    # The background task.

    async def run(self) -> None:
        """Listen, send and keep the mark current, for the server's lifetime."""
        if self._link is None:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop)
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(self._mark_loop)
            await self._listen_loop()

    async def _listen_loop(self) -> None:
        """Hand every message to its subscribers; after a lost connection, listen
        again and tell every subscriber that anything may have changed."""
        assert self._link is not None
        lost = False
        while True:
            try:
                descriptor = self._link.listen()
                self._listening = True
                if lost:
                    log.warning("listening to the other server processes again")
                    self._everything_changed()
                while True:
                    await trio.lowlevel.wait_readable(descriptor)
                    self._handle(self._link.received())
            except DatabaseError as error:
                if not lost:
                    log.warning("%s; retrying", error)
                lost = True
                self._stop_listening()
                await trio.sleep(RECONNECT_SECONDS)
            finally:
                self._stop_listening()

    def _stop_listening(self) -> None:
        self._listening = False
        for arrived in self._barriers.values():
            arrived.set()

    def _everything_changed(self) -> None:
        for channel, handlers in self._subscribers.items():
            for handler in handlers:
                _call(handler, None, channel, self.process)

    async def _send_loop(self) -> None:
        while True:
            await self._wanted_flush.wait()
            self._wanted_flush = trio.Event()
            self.flush()

    async def _refresh_loop(self) -> None:
        assert self._link is not None
        since_dead_check = 0.0
        while True:
            await trio.sleep(MARK_REFRESH_SECONDS)
            since_dead_check += MARK_REFRESH_SECONDS
            if since_dead_check >= DEAD_PROCESS_CHECK_SECONDS:
                since_dead_check = 0.0
                if cleared := self._link.clear_dead_processes():
                    log.warning("cleared %d positions of server processes that died", cleared)
            self._refresh_mark()

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            channel, data = message.get("c"), message.get("d")
            if message.get("o") == self.process:
                arrived = self._barriers.get(data) if channel == "barrier" else None
                if arrived is not None:
                    arrived.set()
                continue
            for handler in self._subscribers.get(channel, ()):
                _call(handler, data, channel, message["o"])
        if messages:
            self._refresh_mark()

    def _refresh_mark(self) -> None:
        assert self._link is not None
        self._offer_mark(self._link.committed_mark())

    def _offer_mark(self, mark: int) -> None:
        """Pass this process's own positions at once, others' once the messages sent
        with them are in (`_mark_loop`)."""
        if mark <= self.mark:
            return
        own = self._own_above_mark
        if not self._listening or bisect_right(own, mark) - bisect_right(own, self.mark) == (
            mark - self.mark
        ):
            self._advance_mark(mark)
        else:
            self._wanted_mark.set()

    async def _mark_loop(self) -> None:
        """A mark read, then a barrier: every message committed before the read (those
        sent with the positions below it) is handled before the mark moves."""
        assert self._link is not None
        while True:
            await self._wanted_mark.wait()
            self._wanted_mark = trio.Event()
            mark = self._link.committed_mark()
            if mark > self.mark:
                await self.catch_up()
                self._advance_mark(mark)

    def _advance_mark(self, mark: int) -> None:
        if mark <= self.mark:
            return
        self.mark = mark
        del self._own_above_mark[: bisect_right(self._own_above_mark, mark)]
        for callback in self._mark_listeners:
            callback(mark)


def _call(handler: Handler, data: Any, channel: object, origin: object) -> None:
    """One subscriber's handling of one message: its failure is logged, not spread."""
    try:
        handler(data)
    except Exception:
        log.exception("handling a %r message from process %s", channel, origin)


def _max_payload() -> int:
    from ..storage.postgresql_cluster import MAX_PAYLOAD_BYTES

    return MAX_PAYLOAD_BYTES
