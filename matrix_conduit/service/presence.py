"""Presence: whether users are online, idle or gone, and what their status message says.

Spec: `content/client-server-api/modules/presence.md` ("Last active ago",
"Idle timeout"), `data/api/client-server/presence.yaml`, event `m.presence`.

A user is `online` while their clients sync (each sync `ping`s) or after they
set it; `unavailable` after `IDLE_AFTER_MS` without activity; `offline` after
`OFFLINE_AFTER_MS` without a sync or a set. A user who chooses `unavailable` or
`offline` stays so while their clients sync, until they choose again or time
out to `offline`. `currently_active` is true exactly while `online`: the
server sends no `last_active_ago` updates then, the spec's way of saving
traffic (clients fetch a fresh `last_active_ago` with `GET .../status`).

Each visible change (state or status message) takes a position on the global
counter and wakes the syncs of everyone sharing a room with the user. A ping
that changes nothing visible only refreshes timestamps in memory. Records are
kept in memory (one per user who ever had presence) and written to
`userid_presence` at each visible change, so a restart keeps states and
status messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import trio

from ..errors import invalid_param
from ..storage import Database
from .clock import Clock, now_ms
from .globals import Globals
from .notifier import Notifier
from .rooms.state_cache import StateCache

TREES = ("userid_presence",)

ONLINE = "online"
UNAVAILABLE = "unavailable"
OFFLINE = "offline"
PRESENCE_STATES = (ONLINE, UNAVAILABLE, OFFLINE)

IDLE_AFTER_MS = 5 * 60_000
OFFLINE_AFTER_MS = 30 * 60_000
CHECK_INTERVAL_SECONDS = 15.0


@dataclass
class _Record:
    presence: str
    status_msg: str | None
    last_active_ts: int | None
    """The last pro-active event (a sync or setting `online`)."""
    last_seen_ts: int
    """The last sync or set: a user not seen for `OFFLINE_AFTER_MS` is offline."""
    chosen: bool
    """The user set `unavailable`/`offline` themself: syncs do not bring them online."""
    position: int


class Presence:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        notifier: Notifier,
        state_cache: StateCache,
        *,
        clock: Clock = now_ms,
        check_interval_seconds: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self._globals = globals_
        self._notifier = notifier
        self._state_cache = state_cache
        self._clock = clock
        self._check_interval_seconds = check_interval_seconds
        self._tree = db.tree("userid_presence")
        self._records = {
            key.decode(): _Record(**json.loads(value)) for key, value in self._tree.iter_prefix()
        }
        self.changed: list[Callable[[str], None]] = []
        """Called with the user id after a visible change (state or status message):
        the federation sender tells the servers that share a room with the user."""

    # ---- changing

    def set_presence(self, user_id: str, state: str, status_msg: str | None = None) -> None:
        """The user sets their presence; `status_msg` None keeps the message, "" removes it."""
        if state not in PRESENCE_STATES:
            raise invalid_param(f"`presence` must be one of {', '.join(PRESENCE_STATES)}.")
        now = self._clock()
        record = self._records.get(user_id)
        if status_msg is None:
            status_msg = record.status_msg if record is not None else None
        last_active = now if state == ONLINE else (record.last_active_ts if record else None)
        self._update(
            user_id,
            _Record(
                presence=state,
                status_msg=status_msg or None,
                last_active_ts=last_active,
                last_seen_ts=now,
                chosen=state != ONLINE,
                position=record.position if record is not None else 0,
            ),
        )

    def ping(self, user_id: str) -> None:
        """A sync: the user is online and active now, unless they chose otherwise."""
        now = self._clock()
        record = self._records.get(user_id)
        if record is not None and record.chosen:
            record.last_seen_ts = now
            return
        status_msg = record.status_msg if record is not None else None
        position = record.position if record is not None else 0
        self._update(user_id, _Record(ONLINE, status_msg, now, now, False, position))

    def set_remote(self, user_id: str, update: dict[str, Any]) -> None:
        """Another server's user's presence, from an `m.presence` EDU's `push` entry.

        Kept like a local user's, so `/sync` shows it to those sharing a room;
        a user their server stops reporting times out to `offline` as ours do.
        """
        state = update.get("presence")
        if state not in PRESENCE_STATES:
            return
        now = self._clock()
        last_active_ago = update.get("last_active_ago")
        last_active = (
            now - last_active_ago
            if isinstance(last_active_ago, int) and last_active_ago >= 0
            else None
        )
        status_msg = update.get("status_msg")
        record = self._records.get(user_id)
        self._update(
            user_id,
            _Record(
                presence=state,
                status_msg=status_msg if isinstance(status_msg, str) and status_msg else None,
                last_active_ts=last_active,
                last_seen_ts=now,
                chosen=True,
                position=record.position if record is not None else 0,
            ),
        )

    def apply_timeouts(self) -> None:
        """Idle online users become unavailable, unseen ones offline (what `run` repeats)."""
        now = self._clock()
        for user_id, record in list(self._records.items()):
            if record.presence != OFFLINE and now - record.last_seen_ts >= OFFLINE_AFTER_MS:
                new_state = OFFLINE
            elif (
                record.presence == ONLINE
                and record.last_active_ts is not None
                and now - record.last_active_ts >= IDLE_AFTER_MS
            ):
                new_state = UNAVAILABLE
            else:
                continue
            self._update(
                user_id,
                _Record(
                    new_state,
                    record.status_msg,
                    record.last_active_ts,
                    record.last_seen_ts,
                    False,
                    record.position,
                ),
            )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply the timeouts every `check_interval_seconds`, until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self._check_interval_seconds)
            self.apply_timeouts()

    def _update(self, user_id: str, record: _Record) -> None:
        """Keep `record`; a visible change gets a new position, is stored and announced.

        Timestamps alone change in memory only: they move at every sync.
        """
        previous = self._records.get(user_id)
        self._records[user_id] = record
        visible = (
            previous is None
            or previous.presence != record.presence
            or previous.status_msg != record.status_msg
        )
        if visible:
            record.position = self._globals.next_count()
        if visible or previous.chosen != record.chosen:
            self._tree.put(user_id.encode(), json.dumps(asdict(record)).encode())
        if visible:
            self._notifier.notify(self._interested_users(user_id))
            for listener in self.changed:
                listener(user_id)

    def _interested_users(self, user_id: str) -> set[str]:
        """The user and everyone who shares a room with them."""
        users = {user_id}
        for room_id in self._state_cache.joined_rooms(user_id):
            users.update(self._state_cache.joined_members(room_id))
        return users

    # ---- reading

    def get(self, user_id: str) -> dict[str, Any]:
        """The `m.presence` content for `user_id` (`offline` if they never had presence)."""
        record = self._records.get(user_id)
        if record is None:
            return {"presence": OFFLINE, "currently_active": False}
        content: dict[str, Any] = {
            "presence": record.presence,
            "currently_active": record.presence == ONLINE,
        }
        if record.last_active_ts is not None:
            content["last_active_ago"] = max(self._clock() - record.last_active_ts, 0)
        if record.status_msg is not None:
            content["status_msg"] = record.status_msg
        return content

    def changes_since(self, user_ids: Iterable[str], since: int) -> list[dict[str, Any]]:
        """`m.presence` events of those users whose presence changed after position `since`."""
        changed = [
            (record.position, user_id)
            for user_id in set(user_ids)
            if (record := self._records.get(user_id)) is not None and record.position > since
        ]
        return [
            {"type": "m.presence", "sender": user_id, "content": self.get(user_id)}
            for _, user_id in sorted(changed)
        ]
