"""Guests in rooms: who may join, and making guests leave when a room stops allowing them.

Spec: `content/client-server-api/modules/guest_access.md`, "Server
behaviour": guests may join a room only while its `m.room.guest_access` is
`can_join`; "if the `m.room.guest_access` event is changed to stop this from
being the case, the server MUST set those users' `m.room.member` state to
`leave`". Whether a user is a guest is known only to their own server, so
this server makes its own guests leave, as the guests themselves (as Synapse
does: no kicker's power is needed), with a reason that says why.

The change can come from any path that persists events (a client's state
event, another server's PDU), so an `appending` hook notes the room in
`roomid_guestsweep`, in the event's own batch: a restart before the guests
have left still makes them leave. A background task does the leaving.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import trio

from ...core.ids import is_on_server
from ...errors import MatrixError
from ...storage import Database, WriteBatch
from .event_context import EventContext
from .membership import Membership
from .state_cache import StateCache
from .timeline import Event, Timeline

TREES = ("roomid_guestsweep",)

log = logging.getLogger(__name__)

CAN_JOIN = "can_join"
REVOKED_REASON = "Guest access to this room was turned off."


class GuestAccess:
    def __init__(
        self,
        db: Database,
        server_name: str,
        timeline: Timeline,
        state_cache: StateCache,
        membership: Membership,
        is_guest: Callable[[str], bool],
    ) -> None:
        self._db = db
        self._server_name = server_name
        self._timeline = timeline
        self._state_cache = state_cache
        self._membership = membership
        self._is_guest = is_guest
        self._pending = db.tree("roomid_guestsweep")
        self._wake = trio.Event()

    def allows_guests(self, room_id: str) -> bool:
        content = self._timeline.state_content(room_id, "m.room.guest_access")
        return content.get("guest_access") == CAN_JOIN

    def check_join(self, room_id: str) -> None:
        """403 `M_GUEST_ACCESS_FORBIDDEN` unless guests may join `room_id` now.

        A room this server is not in cannot be checked: guests join only the
        rooms of this server's users.
        """
        if not self._state_cache.joined_members(room_id) or not self.allows_guests(room_id):
            raise MatrixError(
                403,
                "M_GUEST_ACCESS_FORBIDDEN",
                "Guests may only join rooms whose m.room.guest_access is can_join.",
            )

    # ---- guests leave rooms that stopped allowing them

    def note_event(
        self, event: Event, context: EventContext, position: int | None, batch: WriteBatch
    ) -> None:
        """`Timeline.appending` hook: a new `m.room.guest_access` queues its room."""
        if (
            position is None
            or event.get("type") != "m.room.guest_access"
            or event.get("state_key") != ""
            or (event.get("content") or {}).get("guest_access") == CAN_JOIN
        ):
            return
        batch.put(self._pending, event["room_id"].encode(), b"")
        batch.after_commit(self._wake.set)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Make local guests leave each queued room, for the server's lifetime."""
        task_status.started()
        while True:
            self._wake = trio.Event()
            for key in list(self._pending.keys_with_prefix(b"")):
                try:
                    await self._sweep(key.decode())
                except Exception:  # one room's failure must not stop the others' sweeps
                    log.exception("Making guests leave %s failed", key.decode())
                self._pending.delete(key)
            await self._wake.wait()

    async def _sweep(self, room_id: str) -> None:
        if self.allows_guests(room_id):
            return  # allowed again before we got here
        for user_id in sorted(self._state_cache.joined_members(room_id)):
            if not is_on_server(user_id, self._server_name) or not self._is_guest(user_id):
                continue
            with contextlib.suppress(MatrixError):  # e.g. left meanwhile
                await self._membership.leave(room_id, user_id, reason=REVOKED_REASON)
