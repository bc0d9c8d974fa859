"""Rooms as the server admin sees them: Synapse's room admin API, reading side.

Synapse's admin API "Rooms" (`/_synapse/admin/v1/rooms` list with
`from`/`limit`/`order_by`/`dir`/`search_term`/`public_rooms`/`empty_rooms`,
`v1/rooms/{roomId}` details, `/members`, `/state`): every room this server
knows (it has a short id for), described from its current state. What
synapse-admin shows comes from these records. `forgotten` (Synapse: every
local user forgot the room) is always false: memberships are indexed by
user here, so telling would mean reading every account's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.client_events import client_event
from ..core.ids import is_on_server
from ..errors import invalid_param, not_found
from .devices import Devices
from .rooms import Rooms

ORDERS = (
    "alphabetical",
    "size",
    "name",
    "canonical_alias",
    "joined_members",
    "joined_local_members",
    "version",
    "creator",
    "encryption",
    "federatable",
    "public",
    "join_rules",
    "guest_access",
    "history_visibility",
    "state_events",
)
"""Synapse's `order_by` values (`alphabetical` and `size`: its older names of `name`
and `joined_members`)."""
_ORDER_ALIASES = {"alphabetical": "name", "size": "joined_members"}
_LARGEST_FIRST = ("joined_members", "joined_local_members", "state_events")
"""Orders Synapse sorts largest first when `dir=f`."""


@dataclass(frozen=True)
class RoomQuery:
    """`GET /_synapse/admin/v1/rooms`, parsed."""

    start: int = 0
    limit: int = 100
    order_by: str = "name"
    backwards: bool = False
    search_term: str | None = None
    public_rooms: bool | None = None
    empty_rooms: bool | None = None


class AdminRooms:
    def __init__(self, server_name: str, rooms: Rooms, devices: Devices) -> None:
        self._server_name = server_name
        self._rooms = rooms
        self._devices = devices

    def exists(self, room_id: str) -> bool:
        """Whether the room has a current state here (its create event at least)."""
        return ("m.room.create", "") in self._rooms.state.current_state_ids(room_id)

    def require(self, room_id: str) -> None:
        if not self.exists(room_id):
            raise not_found("Room not found.")

    def page(self, query: RoomQuery) -> dict[str, Any]:
        """One page of the room list, with Synapse's `offset`/`next_batch`/`prev_batch`."""
        if query.order_by not in ORDERS:
            raise invalid_param(f"`order_by` must be one of {', '.join(ORDERS)}.")
        if query.search_term == "":
            raise invalid_param("search_term cannot be an empty string.")
        order = _ORDER_ALIASES.get(query.order_by, query.order_by)
        records = [self.summary(room_id) for room_id in self._rooms.short.room_ids()]
        matching = [r for r in records if r is not None and _matches(r, query)]
        matching.sort(key=lambda record: (_sort_value(record[order]), record["room_id"]))
        if order in _LARGEST_FIRST:
            matching.reverse()
        if query.backwards:
            matching.reverse()
        total = len(matching)
        answer: dict[str, Any] = {
            "offset": query.start,
            "rooms": matching[query.start : query.start + query.limit],
            "total_rooms": total,
        }
        if query.start + query.limit < total:
            answer["next_batch"] = query.start + query.limit
        if query.start > 0:
            answer["prev_batch"] = max(0, query.start - query.limit)
        return answer

    def summary(self, room_id: str) -> dict[str, Any] | None:
        """The list's record of a room; None when it has no current state here."""
        state = self._rooms.state.current_state_ids(room_id)
        if ("m.room.create", "") not in state:
            return None
        timeline = self._rooms.timeline
        create = timeline.state_event(room_id, "m.room.create") or {}
        create_content = create.get("content") or {}
        joined = self._rooms.state_cache.joined_members(room_id)
        local = [m for m in joined if is_on_server(m, self._server_name)]

        def content(event_type: str) -> dict[str, Any]:
            return timeline.state_content(room_id, event_type)

        return {
            "room_id": room_id,
            "name": _text(content("m.room.name").get("name")),
            "canonical_alias": _text(content("m.room.canonical_alias").get("alias")),
            "joined_members": len(joined),
            "joined_local_members": len(local),
            "version": str(create_content.get("room_version", "1")),
            "creator": _text(create_content.get("creator")) or create.get("sender"),
            "encryption": _text(content("m.room.encryption").get("algorithm")),
            "federatable": create_content.get("m.federate", True) is not False,
            "public": self._rooms.directory.is_public(room_id),
            "join_rules": _text(content("m.room.join_rules").get("join_rule")),
            "guest_access": _text(content("m.room.guest_access").get("guest_access")),
            "history_visibility": _text(
                content("m.room.history_visibility").get("history_visibility")
            ),
            "state_events": len(state),
            "room_type": _text(create_content.get("type")),
        }

    def details(self, room_id: str) -> dict[str, Any]:
        """`GET /_synapse/admin/v1/rooms/{roomId}`: the summary and a little more."""
        record = self.summary(room_id)
        if record is None:
            raise not_found("Room not found.")
        timeline = self._rooms.timeline
        joined = self._rooms.state_cache.joined_members(room_id)
        tombstone = timeline.state_event(room_id, "m.room.tombstone")
        replacement = (tombstone or {}).get("content", {}).get("replacement_room")
        record.update(
            {
                "avatar": _text(timeline.state_content(room_id, "m.room.avatar").get("url")),
                "topic": _text(timeline.state_content(room_id, "m.room.topic").get("topic")),
                "joined_local_devices": sum(
                    len(self._devices.of_user(member))
                    for member in joined
                    if is_on_server(member, self._server_name)
                ),
                "forgotten": False,
                "tombstoned": tombstone is not None,
                "replacement_room": _text(replacement),
            }
        )
        return record

    def members(self, room_id: str) -> dict[str, Any]:
        """The joined members (Synapse's `members` and `total`)."""
        self.require(room_id)
        members = sorted(self._rooms.state_cache.joined_members(room_id))
        return {"members": members, "total": len(members)}

    def state(self, room_id: str, event_type: str | None = None) -> dict[str, Any]:
        """The current state as client events (only `event_type` if given)."""
        self.require(room_id)
        events = []
        for (kind, _state_key), event_id in self._rooms.state.current_state_ids(room_id).items():
            if event_type is not None and kind != event_type:
                continue
            event = self._rooms.timeline.get_event(event_id)
            if event is not None:
                events.append(client_event(event))
        return {"state": events}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _matches(record: dict[str, Any], query: RoomQuery) -> bool:
    if query.search_term is not None:
        needle = query.search_term.lower()
        haystacks = (record["name"], record["canonical_alias"], record["room_id"])
        if not any(needle in (text or "").lower() for text in haystacks):
            return False
    if query.public_rooms is not None and record["public"] != query.public_rooms:
        return False
    return query.empty_rooms is None or (record["joined_members"] == 0) == query.empty_rooms


def _sort_value(value: object) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (1, value.lower())
    return (1, value)
