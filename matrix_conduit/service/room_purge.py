"""Deleting a room for the server admin: shut it down, optionally block it, forget it.

Synapse's admin API "Delete Room API" (`DELETE /_synapse/admin/v2/rooms/
{roomId}` answered at once with a `delete_id`, the work done in the
background, its progress at `v2/rooms/{roomId}/delete_status` and
`v2/rooms/delete_status/{delete_id}`: `scheduled`, `active`, `complete`,
`failed`, with the `shutdown_room` result when done).

What a deletion does here, in order:
1. `block`: the room goes on the block list (`roomid_blocked`) first, so
   nobody joins while the rest happens; `Membership.is_blocked` refuses
   joins, knocks and invites of it from then on.
2. Every local member leaves (joined, invited or knocking: their own leave
   event, as Synapse makes them); who could not be made to leave is listed.
   With `new_room_user_id`, that user first creates a public room (named
   `room_name`, where others cannot speak), says `message` there, and every
   member made to leave joins it (Synapse's "new room" for the evicted).
3. The room leaves the public directory; its local aliases are deleted, or
   point to the new room when there is one.
4. `purge` (the default): every local user forgets the room, so it is gone
   from their syncs and room lists. The room's events stay in the
   database: they are no longer served to anybody of ours (nobody is a
   member), but the space is not reclaimed.

Deletions are durable: a request is written before it is answered, and
`run` takes up again at start-up any deletion a restart interrupted (each
step can be done twice). Trees:
- `deleteid_roomdeletion`: delete id → JSON {room_id, status, block, purge,
  requester, message?, shutdown_room?, error?}
- `roomid_deleteid`: room id | delete id → b"" (a room's deletions)
- `roomid_blocked`: room id → JSON {requester, ts}
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
from dataclasses import dataclass
from typing import Any

import trio

from ..core.ids import is_on_server
from ..core.room_versions import DEFAULT_ROOM_VERSION
from ..errors import MatrixError, invalid_param, not_found
from ..storage import Database
from ..storage.kv import SEPARATOR, join_key
from .clock import Clock, now_ms
from .rooms import Rooms
from .rooms.create import RoomSettings
from .users import Users

log = logging.getLogger(__name__)

TREES = ("deleteid_roomdeletion", "roomid_deleteid", "roomid_blocked")

SCHEDULED = "scheduled"
ACTIVE = "active"
COMPLETE = "complete"
FAILED = "failed"


DEFAULT_NEW_ROOM_NAME = "Content Violation Notification"
DEFAULT_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation "
    "will be blocked."
)
"""Synapse's defaults for the room the evicted members are moved to."""


@dataclass(frozen=True)
class DeletionRequest:
    room_id: str
    requester: str
    block: bool = False
    purge: bool = True
    message: str | None = None
    new_room_user_id: str | None = None
    room_name: str | None = None


class RoomPurge:
    def __init__(
        self,
        db: Database,
        server_name: str,
        rooms: Rooms,
        users: Users,
        *,
        room_version: str = DEFAULT_ROOM_VERSION,
        clock: Clock = now_ms,
    ) -> None:
        self._db = db
        self._room_version = room_version
        self._server_name = server_name
        self._rooms = rooms
        self._users = users
        self._clock = clock
        self._deletions = db.tree("deleteid_roomdeletion")
        self._by_room = db.tree("roomid_deleteid")
        self._blocked = db.tree("roomid_blocked")
        self._send, self._receive = trio.open_memory_channel[str](math.inf)
        self.finished: list[str] = []
        """Delete ids done since start-up (completed or failed), in order: for tests."""

    # ------------------------------------------------------------ blocking

    def is_blocked(self, room_id: str) -> bool:
        return room_id.encode() in self._blocked

    def set_blocked(self, room_id: str, requester: str, blocked: bool) -> None:
        if blocked:
            record = {"requester": requester, "ts": self._clock()}
            self._blocked.put(room_id.encode(), json.dumps(record).encode())
        else:
            self._blocked.delete(room_id.encode())

    # ------------------------------------------------------------ deletions

    def start(self, request: DeletionRequest) -> str:
        """Write the deletion down and queue it; its delete id.

        A room unknown here can only be blocked (404 otherwise), as in Synapse.
        """
        known = self._rooms.short.short_room_id(request.room_id) is not None
        if not known and not request.block:
            raise not_found(f"Unknown room {request.room_id}.")
        new_owner = request.new_room_user_id
        if new_owner is not None and (
            not is_on_server(new_owner, self._server_name)
            or not self._users.exists(new_owner)
            or self._users.is_deactivated(new_owner)
        ):
            raise invalid_param(
                f"new_room_user_id must be an active user of this server, not {new_owner!r}."
            )
        delete_id = secrets.token_urlsafe(12)
        record = {
            "room_id": request.room_id,
            "status": SCHEDULED,
            "block": request.block,
            "purge": request.purge,
            "requester": request.requester,
            "message": request.message,
            "new_room_user_id": new_owner,
            "room_name": request.room_name,
        }
        with self._db.batch() as batch:
            batch.put(self._deletions, delete_id.encode(), json.dumps(record).encode())
            batch.put(self._by_room, join_key(request.room_id, delete_id), b"")
        if request.block:  # at once: nobody joins while the deletion waits its turn
            self.set_blocked(request.room_id, request.requester, True)
        self._send.send_nowait(delete_id)
        return delete_id

    def status(self, delete_id: str) -> dict[str, Any]:
        """Synapse's status of one deletion, or 404."""
        raw = self._deletions.get(delete_id.encode())
        if raw is None:
            raise not_found(f"delete id '{delete_id}' not found")
        return _status_json(delete_id, json.loads(raw))

    def statuses_of_room(self, room_id: str) -> list[dict[str, Any]]:
        """Every deletion of the room, oldest first; 404 if there is none."""
        prefix = room_id.encode() + SEPARATOR
        found = []
        for key in self._by_room.keys_with_prefix(prefix):
            delete_id = key[len(prefix) :].decode()
            raw = self._deletions.get(delete_id.encode())
            if raw is not None:
                found.append(_status_json(delete_id, json.loads(raw)))
        if not found:
            raise not_found(f"No delete task for room_id '{room_id}' found")
        return found

    async def run(self) -> None:
        """Carry out queued deletions one at a time, those a restart interrupted first."""
        for key, raw in list(self._deletions.iter_prefix(b"")):
            if json.loads(raw)["status"] in (SCHEDULED, ACTIVE):
                await self._carry_out(key.decode())
        async for delete_id in self._receive:
            await self._carry_out(delete_id)

    async def _carry_out(self, delete_id: str) -> None:
        record = json.loads(self._deletions.get(delete_id.encode()) or b"null")
        if record is None or record["status"] in (COMPLETE, FAILED):
            return
        record["status"] = ACTIVE
        self._save(delete_id, record)
        try:
            record["shutdown_room"] = await self._shut_down(delete_id, record)
            record["status"] = COMPLETE
        except MatrixError as error:
            log.warning("deleting %s failed: %s", record["room_id"], error.message)
            record["status"] = FAILED
            record["error"] = error.message
        self._save(delete_id, record)
        self.finished.append(delete_id)

    async def _shut_down(self, delete_id: str, record: dict[str, Any]) -> dict[str, Any]:
        room_id = record["room_id"]
        state_cache = self._rooms.state_cache
        local_members = sorted(
            {
                *state_cache.joined_members(room_id),
                *state_cache.invited_members(room_id),
                *self._knocking_local_users(room_id),
            }
        )
        local_members = [m for m in local_members if is_on_server(m, self._server_name)]
        new_room_id = record.get("new_room_id") or await self._new_room(delete_id, record)
        kicked, failed = [], []
        for user_id in local_members:
            try:
                await self._rooms.membership.leave(room_id, user_id, reason=record.get("message"))
                kicked.append(user_id)
            except MatrixError as error:
                log.warning("could not make %s leave %s: %s", user_id, room_id, error.message)
                failed.append(user_id)
                continue
            if new_room_id is not None and user_id != record["new_room_user_id"]:
                with contextlib.suppress(MatrixError):  # e.g. a guest the room does not allow
                    await self._rooms.membership.join(new_room_id, user_id)
        aliases = self._rooms.aliases.local_aliases(room_id)
        with self._db.batch() as batch:
            self._rooms.directory.set_public(room_id, False, batch)
            for alias in aliases:
                self._rooms.aliases.remove(alias, batch)
        if new_room_id is not None:
            with self._db.batch() as batch:
                for alias in aliases:
                    self._rooms.aliases.set(alias, new_room_id, record["new_room_user_id"], batch)
        if record["purge"]:
            self._forget_everywhere(room_id)
        return {
            "kicked_users": kicked,
            "failed_to_kick_users": failed,
            "local_aliases": aliases,
            "new_room_id": new_room_id,
        }

    async def _new_room(self, delete_id: str, record: dict[str, Any]) -> str | None:
        """The room the evicted members go to (made once: its id is saved at once)."""
        owner = record.get("new_room_user_id")
        if owner is None:
            return None
        settings = RoomSettings(
            room_version=self._room_version,
            preset="public_chat",
            name=record.get("room_name") or DEFAULT_NEW_ROOM_NAME,
            power_level_content_override={"users_default": -10},
        )
        new_room_id = await self._rooms.creation.create(owner, settings)
        record["new_room_id"] = new_room_id
        self._save(delete_id, record)
        content = {"msgtype": "m.text", "body": record.get("message") or DEFAULT_MESSAGE}
        await self._rooms.events.send(new_room_id, owner, None, "m.room.message", content)
        return new_room_id

    def _knocking_local_users(self, room_id: str) -> list[str]:
        state_cache = self._rooms.state_cache
        return [
            user_id
            for user_id in self._users.local_user_ids()
            if state_cache.membership(room_id, user_id) == "knock"
        ]

    def _forget_everywhere(self, room_id: str) -> None:
        """Every local user who left forgets the room (gone from their syncs and lists)."""
        membership = self._rooms.membership
        for user_id in self._users.local_user_ids():
            if self._rooms.state_cache.membership(room_id, user_id) == "leave":
                with contextlib.suppress(MatrixError):
                    membership.forget(room_id, user_id)

    def _save(self, delete_id: str, record: dict[str, Any]) -> None:
        self._deletions.put(delete_id.encode(), json.dumps(record).encode())


def _status_json(delete_id: str, record: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = {
        "delete_id": delete_id,
        "room_id": record["room_id"],
        "status": record["status"],
        "shutdown_room": record.get("shutdown_room"),
    }
    if "error" in record:
        status["error"] = record["error"]
    return status
