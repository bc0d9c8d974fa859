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

With several server processes on one database (issue #18) each keeps every
user's record: a visible change is published (channel `presence`) and the
others keep it under a position of their own, waking their syncs. The process
that saw a user last (a sync, a set, an EDU) owns their timeouts and fires the
`changed` hooks, so other servers hear of each change once; when a user's
syncs move to another process it publishes the record too, taking over, and
each process sends the others, every `check_interval_seconds`, when the users
it owns were last seen (so nobody else times an active user out).
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
from .cluster import Cluster
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
SEEN_PER_MESSAGE = 20
"""Users per "last seen" message (a message must stay under 8000 bytes)."""


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
        cluster: Cluster | None = None,
    ) -> None:
        self._globals = globals_
        self._cluster = cluster if cluster is not None and cluster.shared else None
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
        self._seen_here: set[str] = set()
        """Users this process saw last (other processes: by their messages)."""
        self._seen_lately: set[str] = set()
        """Users seen here since the last "last seen" message."""
        if self._cluster is not None:
            self._cluster.subscribe("presence", self._apply_published)
            self._cluster.subscribe("presence.seen", self._apply_seen)

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
            self._seen(user_id, record, visible=False)
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
            timed_out = _Record(
                new_state,
                record.status_msg,
                record.last_active_ts,
                record.last_seen_ts,
                False,
                record.position,
            )
            if user_id in self._seen_here or self._cluster is None:
                self._update(user_id, timed_out)
            else:  # its owner announces it (if it is still there)
                self._keep(user_id, timed_out)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply the timeouts every `check_interval_seconds`, until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self._check_interval_seconds)
            self.apply_timeouts()
            self._publish_seen()

    def _update(self, user_id: str, record: _Record) -> None:
        """Keep `record`; a visible change gets a new position, is stored and announced.

        Timestamps alone change in memory only: they move at every sync.
        """
        previous = self._records.get(user_id)
        visible = self._keep(user_id, record)
        if visible or (previous is not None and previous.chosen != record.chosen):
            self._tree.put(user_id.encode(), json.dumps(asdict(record)).encode())
        if visible:
            for listener in self.changed:
                listener(user_id)
        self._seen(user_id, record, visible=visible)

    def _keep(self, user_id: str, record: _Record) -> bool:
        """Keep `record` in memory; whether that is a visible change (then it gets a new
        position and the syncs of those sharing a room with the user wake)."""
        previous = self._records.get(user_id)
        self._records[user_id] = record
        visible = (
            previous is None
            or previous.presence != record.presence
            or previous.status_msg != record.status_msg
        )
        if visible:
            record.position = self._globals.next_count()
            self._notifier.notify(self._interested_users(user_id))
        else:
            record.position = previous.position
        return visible

    def _seen(self, user_id: str, record: _Record, *, visible: bool) -> None:
        """The user was seen here: the others hear of a visible change, or of this
        process taking the user's timeouts over."""
        if self._cluster is None:
            return
        self._seen_lately.add(user_id)
        if visible or user_id not in self._seen_here:
            self._seen_here.add(user_id)
            self._cluster.publish("presence", {"user_id": user_id, "record": asdict(record)})

    def _apply_published(self, change: dict[str, Any] | None) -> None:
        """A record another process changed or took over (never too big to arrive whole)."""
        if change is None:
            return
        user_id = change["user_id"]
        self._seen_here.discard(user_id)
        self._seen_lately.discard(user_id)
        self._keep(user_id, _Record(**change["record"]))

    def _publish_seen(self) -> None:
        """Tell the others when the users this process owns were last active and seen."""
        if self._cluster is None:
            return
        seen = sorted(self._seen_lately & self._seen_here)
        self._seen_lately.clear()
        for start in range(0, len(seen), SEEN_PER_MESSAGE):
            records = {
                user_id: self._records[user_id]
                for user_id in seen[start : start + SEEN_PER_MESSAGE]
            }
            self._cluster.publish(
                "presence.seen",
                {user_id: [r.last_active_ts, r.last_seen_ts] for user_id, r in records.items()},
            )

    def _apply_seen(self, seen: dict[str, list[int | None]] | None) -> None:
        """When the users another process owns were last active and seen."""
        for user_id, (last_active, last_seen) in (seen or {}).items():
            record = self._records.get(user_id)
            if record is None:
                continue
            if last_active is not None:
                record.last_active_ts = max(record.last_active_ts or 0, last_active)
            if last_seen is not None:
                record.last_seen_ts = max(record.last_seen_ts, last_seen)

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
