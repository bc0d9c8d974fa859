"""Space hierarchies: the rooms below a space (`GET /rooms/{roomId}/hierarchy`).

Spec: `content/client-server-api/modules/spaces.md` ("Server behaviour") and
`data/api/client-server/space_hierarchy.yaml`. A breadth-first walk over
`m.space.child` state events (those with a non-empty `via`) from the space,
showing each room the user may peek at: joined, world-readable, or with a join
rule that lets them in or knock. Rooms on other servers are the federation
issue's: a child this server does not know is skipped.
"""

from __future__ import annotations

from typing import Any

from ...core.client_events import stripped_state_event
from ...errors import MatrixError, forbidden
from .directory import Directory
from .state import RoomState
from .state_cache import StateCache
from .timeline import Timeline
from .visibility import Visibility

PEEKABLE_JOIN_RULES = ("public", "knock", "knock_restricted")
MAX_ROOMS_WALKED = 1000


class Hierarchy:
    def __init__(
        self,
        state: RoomState,
        timeline: Timeline,
        state_cache: StateCache,
        visibility: Visibility,
        directory: Directory,
    ) -> None:
        self._state = state
        self._timeline = timeline
        self._state_cache = state_cache
        self._visibility = visibility
        self._directory = directory

    def _known(self, room_id: str) -> bool:
        try:
            self._timeline.room_version(room_id)
        except KeyError:
            return False
        return True

    def _may_peek(self, user_id: str, room_id: str) -> bool:
        if self._state_cache.membership(room_id, user_id) in ("join", "invite"):
            return True
        if self._visibility.is_world_readable(room_id):
            return True
        join_rules = self._timeline.state_content(room_id, "m.room.join_rules")
        rule = join_rules.get("join_rule")
        if rule in PEEKABLE_JOIN_RULES:
            return True
        if rule == "restricted":
            return any(
                isinstance(entry, dict)
                and isinstance(entry.get("room_id"), str)
                and self._state_cache.is_joined(user_id, entry["room_id"])
                for entry in join_rules.get("allow") or []
            )
        return False

    def _children(self, room_id: str, suggested_only: bool) -> list[dict[str, Any]]:
        children = []
        state = self._state.current_state_ids(room_id)
        for (event_type, _), event_id in sorted(state.items()):
            if event_type != "m.space.child":
                continue
            event = self._timeline.get_event(event_id)
            content = (event or {}).get("content") or {}
            via = content.get("via")
            if not isinstance(via, list) or not via:
                continue
            if suggested_only and content.get("suggested") is not True:
                continue
            child = stripped_state_event(event)
            child["origin_server_ts"] = event.get("origin_server_ts", 0)
            children.append(child)
        return children

    def walk(
        self,
        user_id: str,
        room_id: str,
        *,
        suggested_only: bool,
        max_depth: int | None,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the hierarchy and the offset of the next page."""
        if not self._known(room_id) or not self._may_peek(user_id, room_id):
            raise forbidden("You cannot see this space.")
        if max_depth is not None and max_depth < 0:
            raise MatrixError(400, "M_INVALID_PARAM", "`max_depth` must not be negative.")
        rooms: list[dict[str, Any]] = []
        queue = [(room_id, 0)]
        seen = {room_id}
        while queue and len(rooms) < offset + limit + 1 and len(seen) <= MAX_ROOMS_WALKED:
            current, depth = queue.pop(0)
            children = self._children(current, suggested_only)
            chunk = self._directory.summary(current)
            chunk["children_state"] = children
            rooms.append(chunk)
            if max_depth is not None and depth >= max_depth:
                continue
            for child in children:
                child_id = child["state_key"]
                if child_id in seen or not self._known(child_id):
                    continue
                seen.add(child_id)
                if self._may_peek(user_id, child_id):
                    queue.append((child_id, depth + 1))
        page = rooms[offset : offset + limit]
        more = len(rooms) > offset + limit or bool(queue)
        return page, (offset + limit if more else None)
