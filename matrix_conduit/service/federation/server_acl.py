"""May a server take part in a room? Its current `m.room.server_acl`, applied.

Spec: `content/server-server-api.md` § Server Access Control Lists (ACLs).
The decision is `core.server_acl.server_allowed`; this service reads the ACL
from the room's *current* state, as the spec applies it "when they make
requests". Callers: `api/federation/auth.require_server_allowed` for every
room-scoped federation request, and the `/send` pipeline for each PDU and
each room-scoped EDU (`m.typing`, `m.receipt`). A room we know nothing of has
no ACL here, so it allows: what the request then finds (no such room) is the
endpoint's answer, not an ACL's.
"""

from __future__ import annotations

from collections.abc import Callable

from ...core.server_acl import server_allowed
from ..rooms.timeline import Timeline

ACL_EVENT_TYPE = "m.room.server_acl"


class ServerAcl:
    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline
        self.room_disabled: Callable[[str], bool] = lambda room_id: False
        """Rooms the admin disabled (`admin_room/disabled_rooms.py`): no server passes."""

    def allows(self, room_id: str, server_name: str) -> bool:
        """Whether `server_name` passes the room's current server ACL (no ACL: yes)."""
        if self.room_disabled(room_id):
            return False
        event = self._timeline.state_event(room_id, ACL_EVENT_TYPE)
        if event is None:
            return True
        content = event.get("content")
        return server_allowed(content if isinstance(content, dict) else {}, server_name)
