"""Sliding sync connections: what each `pos` told the client, kept on disk.

Spec: MSC4186 ("Connections"). A connection is named by the user, the device
and the request's `conn_id` (Element X keeps `room-list` and `encryption`
side by side). Each response's `pos` names a saved state: the stream
position the response covered, and per room the position up to which the
connection has it, the config it was sent with and the membership shown.
A request with `pos` P builds from P's state; the client has then processed
P, so every other state of the connection is dropped (a retried or changed
request with the same P still finds it). States are in the database, so a
restart loses nothing; a connection unused for `ttl_ms` is forgotten and its
`pos` answered with 400 `M_UNKNOWN_POS`, which makes the client start over.

Trees:
- `slidingconn_state`: user | device | conn_id | pos → the state (JSON).
- `slidingconn_lastused`: user | device | conn_id → last use (ms).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import trio

from ...errors import MatrixError
from ...storage import Database
from ...storage.kv import SEPARATOR, from_u64, join_key, u64
from ..clock import Clock, now_ms
from ..globals import Globals
from .requests import RoomConfig

TREES = ("slidingconn_state", "slidingconn_lastused")

CONNECTION_TTL_MS = 7 * 24 * 3600 * 1000
"""A week: a phone that was off longer starts its connections over."""
PURGE_INTERVAL_SECONDS = 3600


@dataclass
class SentRoom:
    through: int
    config: RoomConfig
    membership: str


@dataclass
class ConnectionState:
    stream: int | None = None
    """The stream position the response covered (None: a new connection)."""
    rooms: dict[str, SentRoom] = field(default_factory=dict)
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per list: `count` and the window's `ids` as last sent."""
    sticky: dict[str, Any] = field(default_factory=dict)
    """The request's `lists` and `extensions`, for the next request to build on."""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "stream": self.stream,
                "rooms": {
                    room: [sent.through, sent.config.to_json(), sent.membership]
                    for room, sent in self.rooms.items()
                },
                "lists": self.lists,
                "sticky": self.sticky,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ConnectionState:
        data = json.loads(raw)
        return cls(
            data["stream"],
            {
                room: SentRoom(through, RoomConfig.from_json(config), membership)
                for room, (through, config, membership) in data["rooms"].items()
            },
            data["lists"],
            data["sticky"],
        )


def unknown_pos(reason: str) -> MatrixError:
    return MatrixError(400, "M_UNKNOWN_POS", f"Unknown position: {reason}; start a new connection.")


class Connections:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        clock: Clock = now_ms,
        ttl_ms: int = CONNECTION_TTL_MS,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._clock = clock
        self.ttl_ms = ttl_ms
        self._states = db.tree("slidingconn_state")
        self._last_used = db.tree("slidingconn_lastused")

    @staticmethod
    def _key(user_id: str, device_id: str, conn_id: str) -> bytes:
        return join_key(user_id, device_id, conn_id)

    def load(self, user_id: str, device_id: str, conn_id: str, pos: str | None) -> ConnectionState:
        """The state `pos` names (a new one without `pos`); `M_UNKNOWN_POS` if gone."""
        if pos is None:
            return ConnectionState()
        if not pos.isdigit() or len(pos) > 19:
            raise unknown_pos("not a position this server gave out")
        key = self._key(user_id, device_id, conn_id)
        used = self._last_used.get(key)
        if used is None or self._clock() - from_u64(used) > self.ttl_ms:
            raise unknown_pos("the connection expired")
        raw = self._states.get(key + SEPARATOR + u64(int(pos)))
        if raw is None:
            raise unknown_pos("this position is no longer kept")
        return ConnectionState.from_json(raw)

    def save(
        self,
        user_id: str,
        device_id: str,
        conn_id: str,
        used_pos: str | None,
        state: ConnectionState,
    ) -> str:
        """Keep `state` under a new `pos`, dropping every state but `used_pos`'s."""
        key = self._key(user_id, device_id, conn_id)
        keep = key + SEPARATOR + u64(int(used_pos)) if used_pos is not None else None
        with self._db.batch() as batch:
            for old in list(self._states.keys_with_prefix(key + SEPARATOR)):
                if old != keep:
                    batch.delete(self._states, old)
            pos = self._globals.next_count()
            batch.put(self._states, key + SEPARATOR + u64(pos), state.to_json())
            batch.put(self._last_used, key, u64(self._clock()))
        return str(pos)

    def touch(self, user_id: str, device_id: str, conn_id: str) -> None:
        """A request that changed nothing still keeps the connection alive."""
        self._last_used.put(self._key(user_id, device_id, conn_id), u64(self._clock()))

    def purge_expired(self) -> None:
        """Cleanup task: forget connections unused for longer than `ttl_ms`."""
        now = self._clock()
        with self._db.batch() as batch:
            for key, used in list(self._last_used.iter_prefix(b"")):
                if now - from_u64(used) > self.ttl_ms:
                    batch.delete(self._last_used, key)
                    for old in list(self._states.keys_with_prefix(key + SEPARATOR)):
                        batch.delete(self._states, old)

    async def run(self) -> None:
        """Background task: `purge_expired` every hour."""
        while True:
            await trio.sleep(PURGE_INTERVAL_SECONDS)
            self.purge_expired()

    def device_deleted(self, batch: Any, user_id: str, device_id: str) -> None:
        """`Devices.device_deleted` hook: the device's connections go with it."""
        prefix = join_key(user_id, device_id, b"")
        for tree in (self._states, self._last_used):
            for key in list(tree.keys_with_prefix(prefix)):
                batch.delete(tree, key)
