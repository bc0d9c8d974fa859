"""Read receipts and the fully read marker.

Spec: `content/client-server-api/modules/receipts.md` (`m.read`, private
`m.read.private`, threaded receipts), `read_markers.md` (`m.fully_read`, kept
as room account data), `data/api/client-server/receipts.yaml` and
`read_markers.yaml`, event `m.receipt`.

Each (user, receipt type, thread) has one receipt: a new one replaces it and
takes a position on the global counter, so `/sync` delivers the receipts of a
room changed since a token as one `m.receipt` event. `m.read.private` receipts
reach only their owner. Stored, since clients and unread counts rely on them
after a restart:
- `receiptid_receipt`: room | position → `{"user_id", "receipt_type", "event_id",
  "thread_id"?, "ts"}`; only the latest receipt of each (user, type, thread).
- `roomusertypethread_receiptid`: room | user | type | thread ("" unthreaded)
  → the key of that latest receipt.

Which thread an event belongs to is not checked against its relations: the
spec allows it, and clients disagree on the thread of a thread root.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import forbidden, invalid_param, not_found
from ..storage import Database
from ..storage.kv import SEPARATOR, join_key, u64
from .account_data import FULLY_READ_TYPE, AccountData
from .coherence import Invalidations
from .globals import Globals
from .notifier import Notifier
from .rooms.state_cache import StateCache
from .rooms.timeline import Timeline
from .rooms.visibility import Visibility

TREES = ("receiptid_receipt", "roomusertypethread_receiptid")

READ = "m.read"
READ_PRIVATE = "m.read.private"
RECEIPT_TYPES = (READ, READ_PRIVATE)
MAIN_THREAD = "main"


class Receipts:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        notifier: Notifier,
        state_cache: StateCache,
        timeline: Timeline,
        visibility: Visibility,
        account_data: AccountData,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._notifier = notifier
        self._started = globals_.current_count()
        self._last_change: dict[str, int] = {}
        """Each room's newest receipt position since start: `/sync` skips quiet rooms."""
        self._state_cache = state_cache
        self._timeline = timeline
        self._visibility = visibility
        self._account_data = account_data
        self._receipts = db.tree("receiptid_receipt")
        self._latest = db.tree("roomusertypethread_receiptid")
        self._news = Invalidations(
            globals_.cluster, "receipts", self._news_from_elsewhere, self._forget_all
        )
        self.written: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with (room id, receipt) after a public receipt is stored, the receipt
        as `receiptid_receipt` holds it: the federation sender tells other servers."""

    # ---- writing

    def set_receipt(
        self,
        room_id: str,
        user_id: str,
        receipt_type: str,
        event_id: str,
        *,
        thread_id: str | None,
        ts: int,
    ) -> None:
        """Record that `user_id` has read up to `event_id` (`m.fully_read`: the read marker)."""
        if receipt_type == FULLY_READ_TYPE:
            if thread_id is not None:
                raise invalid_param("The fully read marker has no `thread_id`.")
            self.set_read_markers(room_id, user_id, {FULLY_READ_TYPE: event_id}, ts=ts)
            return
        if receipt_type not in RECEIPT_TYPES:
            raise invalid_param(
                f"The receipt type must be one of {', '.join((*RECEIPT_TYPES, FULLY_READ_TYPE))}."
            )
        if thread_id == "":
            raise invalid_param("`thread_id` must be a non-empty string.")
        self._check_event(room_id, user_id, event_id)
        self._write(room_id, user_id, receipt_type, event_id, thread_id, ts)

    def set_read_markers(
        self, room_id: str, user_id: str, markers: dict[str, str], *, ts: int
    ) -> None:
        """`/read_markers`: the fully read marker and/or unthreaded receipts, all checked first.

        `markers` maps `m.fully_read`, `m.read` and `m.read.private` to event ids.
        """
        unknown = set(markers) - {FULLY_READ_TYPE, *RECEIPT_TYPES}
        if unknown:
            raise invalid_param(f"Unknown read markers: {sorted(unknown)}.")
        for event_id in markers.values():
            self._check_event(room_id, user_id, event_id)
        for receipt_type, event_id in markers.items():
            if receipt_type == FULLY_READ_TYPE:
                self._account_data.set(user_id, room_id, FULLY_READ_TYPE, {"event_id": event_id})
            else:
                self._write(room_id, user_id, receipt_type, event_id, None, ts)

    def set_remote_receipt(
        self,
        room_id: str,
        user_id: str,
        receipt_type: str,
        event_id: str,
        *,
        thread_id: str | None,
        ts: int,
    ) -> None:
        """Another server's user read up to `event_id` (an `m.receipt` EDU).

        Its server vouches for what the user could see; checked here are
        membership and that the receipt names events of this room (its event,
        and its thread's root unless "main"), so clients get no receipt that
        points nowhere. Public receipts only: private ones never leave a server.
        """
        if receipt_type != READ or not self._state_cache.is_joined(user_id, room_id):
            return
        if not self._is_room_event(room_id, event_id) or (
            thread_id not in (None, MAIN_THREAD) and not self._is_room_event(room_id, thread_id)
        ):
            return
        self._write(room_id, user_id, receipt_type, event_id, thread_id, ts)

    def _is_room_event(self, room_id: str, event_id: str) -> bool:
        event = self._timeline.get_event(event_id)
        return event is not None and event.get("room_id") == room_id

    def _check_event(self, room_id: str, user_id: str, event_id: str) -> None:
        if not self._state_cache.is_joined(user_id, room_id):
            raise forbidden("You are not in this room.")
        event = self._timeline.get_event(event_id)
        if (
            event is None
            or event.get("room_id") != room_id
            or self._timeline.position(event_id) is None
            or not self._visibility.can_see_event(user_id, event)
        ):
            raise not_found(f"There is no event {event_id} in this room that you can see.")

    def _write(
        self,
        room_id: str,
        user_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None,
        ts: int,
    ) -> None:
        latest_key = join_key(room_id, user_id, receipt_type, thread_id or "")
        previous_id = self._latest.get(latest_key)
        if previous_id is not None:
            previous = self._receipts.get(previous_id)
            if previous is not None and json.loads(previous)["event_id"] == event_id:
                return
        receipt: dict[str, Any] = {
            "user_id": user_id,
            "receipt_type": receipt_type,
            "event_id": event_id,
            "ts": ts,
        }
        if thread_id is not None:
            receipt["thread_id"] = thread_id
        position = self._globals.next_count()
        receipt_id = join_key(room_id, u64(position))
        with self._db.batch() as batch:
            if previous_id is not None:
                batch.delete(self._receipts, previous_id)
            batch.put(self._receipts, receipt_id, json.dumps(receipt).encode())
            batch.put(self._latest, latest_key, receipt_id)
        self._last_change[room_id] = position
        self._news.tell([room_id, position])
        if receipt_type == READ_PRIVATE:
            self._notifier.notify([user_id])
        else:
            self._notifier.notify(self._state_cache.joined_members(room_id))
            for listener in self.written:
                listener(room_id, receipt)

    def _news_from_elsewhere(self, item: list[Any]) -> None:
        room_id, position = item
        if position > self._last_change.get(room_id, 0):
            self._last_change[room_id] = position

    def _forget_all(self) -> None:
        """A message too big to say which rooms got receipts: any may have."""
        assert self._globals.cluster is not None
        self._started = self._globals.cluster.latest_position() + 1

    # ---- reading

    def changed_since(self, room_id: str, since: int) -> bool:
        """Whether the room may have receipts after `since`, from memory (True when
        `since` is older than this process: then only the database knows)."""
        return since < self._started or self._last_change.get(room_id, 0) > since

    def receipts_since(self, room_id: str, since: int, for_user: str) -> dict | None:
        """The `m.receipt` content of the room's receipts changed after `since` (None: none).

        Private receipts are included only when they are `for_user`'s own.
        """
        prefix = room_id.encode() + SEPARATOR
        content: dict[str, dict[str, dict[str, Any]]] = {}
        for _, value in self._receipts.iter_prefix(prefix, start=prefix + u64(since + 1)):
            receipt = json.loads(value)
            if receipt["receipt_type"] == READ_PRIVATE and receipt["user_id"] != for_user:
                continue
            fields = {"ts": receipt["ts"]}
            if "thread_id" in receipt:
                fields["thread_id"] = receipt["thread_id"]
            by_type = content.setdefault(receipt["event_id"], {})
            by_type.setdefault(receipt["receipt_type"], {})[receipt["user_id"]] = fields
        return content or None

    def read_event(self, room_id: str, user_id: str) -> str | None:
        """The furthest event the user has read in the main timeline (public or private).

        Unthreaded receipts and those for the `main` thread both count.
        """
        read_up_to: tuple[int, str] | None = None
        for receipt_type in RECEIPT_TYPES:
            for thread in ("", MAIN_THREAD):
                receipt_id = self._latest.get(join_key(room_id, user_id, receipt_type, thread))
                stored = self._receipts.get(receipt_id) if receipt_id is not None else None
                if stored is None:
                    continue
                event_id = json.loads(stored)["event_id"]
                position = self._timeline.position(event_id)
                if position is not None and (read_up_to is None or position > read_up_to[0]):
                    read_up_to = (position, event_id)
        return read_up_to[1] if read_up_to is not None else None
