"""Rooms the server admin disabled from the admin room (`disable-room`/`enable-room`).

Conduit's `disable-room`: while a room is disabled, local users can neither
join it nor send anything to it (their leave is still allowed, so they can
get out), and other servers get nothing of it: every room-scoped federation
request is refused as by a server ACL that denies them all (server-server
API § Server Access Control Lists: 403), and their PDUs of it in `/send` get
an error each. The server user may still act in it (the admin room's own
replies, or an admin undoing something). The list is kept in
`roomid_disabled` (room id → JSON {by, ts}).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...errors import forbidden
from ...storage import Database
from ..clock import Clock, now_ms
from ..cluster import Cluster
from ..coherence import Invalidations

TREES = ("roomid_disabled",)


class DisabledRooms:
    def __init__(
        self,
        db: Database,
        server_user_id: str,
        *,
        clock: Clock = now_ms,
        cluster: Cluster | None = None,
    ) -> None:
        self._tree = db.tree("roomid_disabled")
        self._server_user_id = server_user_id
        self._clock = clock
        self._disabled = {key.decode() for key in self._tree.keys_with_prefix(b"")}
        self._changed = Invalidations(cluster, "disabled_rooms", self._follow, self._reload)
        """Rooms another process disabled or enabled."""

    def _follow(self, item: list[object]) -> None:
        room_id, disabled = item
        if disabled:
            self._disabled.add(str(room_id))
        else:
            self._disabled.discard(str(room_id))

    def _reload(self) -> None:
        self._disabled = {key.decode() for key in self._tree.keys_with_prefix(b"")}

    def is_disabled(self, room_id: str) -> bool:
        return room_id in self._disabled

    def set_disabled(self, room_id: str, disabled: bool, *, by: str) -> None:
        if disabled:
            record = {"by": by, "ts": self._clock()}
            self._tree.put(room_id.encode(), json.dumps(record).encode())
            self._disabled.add(room_id)
        else:
            self._tree.delete(room_id.encode())
            self._disabled.discard(room_id)
        self._changed.tell([room_id, disabled])

    def disabled_rooms(self) -> list[str]:
        return sorted(self._disabled)

    def check_local_event(self, event: Mapping[str, Any]) -> None:
        """403 for an event of ours in a disabled room, but a leave or the server user's."""
        if event["room_id"] not in self._disabled or event["sender"] == self._server_user_id:
            return
        content = event.get("content") or {}
        if event["type"] == "m.room.member" and content.get("membership") == "leave":
            return
        raise forbidden(f"{event['room_id']} is disabled by the server's admin.")
