"""The deprecated snapshots `GET /initialSync` and `GET /rooms/{roomId}/initialSync`.

Spec: `data/api/client-server/old_sync.yaml` (`/initialSync`, deprecated in
r0, still specified) and `room_initial_sync.yaml`. A snapshot is, per room:
the user's membership, the newest `limit` messages (oldest first, `start` a
`/messages` token for older ones, `end` the stream token now), the state,
the room's directory visibility and the user's room account data. A room the
user left (with `archived`, or asked for by id) shows its messages and state
up to the leave. A non-member may take a room's snapshot while it is
`world_readable` (peeking). `end` continues with `GET /events` (or `/sync`:
the same tokens).

Everything is read through `RoomEvents`, so history visibility applies as on
`/messages` and `/state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.filters import EventFilter
from ..errors import forbidden
from .account_data import AccountData
from .globals import Globals
from .presence import Presence
from .rooms import Rooms
from .rooms.timeline import Event

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
LEFT = ("leave", "ban")


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str | None


class InitialSync:
    def __init__(
        self, globals_: Globals, rooms: Rooms, account_data: AccountData, presence: Presence
    ) -> None:
        self._globals = globals_
        self._rooms = rooms
        self._account_data = account_data
        self._presence = presence

    def snapshot(self, requester: Requester, limit: int, archived: bool) -> dict[str, Any]:
        """`GET /initialSync`: every joined and invited room (and left ones if `archived`)."""
        user_id = requester.user_id
        end = self._globals.current_count()
        limit = _clamp(limit)
        state_cache = self._rooms.state_cache
        rooms = [
            self._room(requester, room_id, "join", limit, end)
            for room_id in sorted(state_cache.joined_rooms(user_id))
        ]
        rooms += [
            self._invited_room(requester, room_id)
            for room_id, _ in state_cache.invited_rooms(user_id)
        ]
        if archived:
            for room_id in state_cache.left_rooms(user_id):
                membership = self._member_content(room_id, user_id).get("membership")
                if membership in LEFT:
                    rooms.append(self._room(requester, room_id, membership, limit, end))
        sharing = {user_id}
        for room_id in state_cache.joined_rooms(user_id):
            sharing.update(state_cache.joined_members(room_id))
        return {
            "end": str(end),
            "rooms": rooms,
            "presence": self._presence.changes_since(sharing, -1),
            "account_data": self._account_data.changes_since(user_id, None, -1),
        }

    def room_snapshot(self, requester: Requester, room_id: str, limit: int) -> dict[str, Any]:
        """`GET /rooms/{roomId}/initialSync`: one room, for a member, a former member or
        (while it is world-readable) anyone; with the presence of its members."""
        user_id = requester.user_id
        end = self._globals.current_count()
        membership = self._member_content(room_id, user_id).get("membership")
        visibility = self._rooms.visibility
        if self._rooms.state_cache.is_joined(user_id, room_id):
            membership = "join"
        elif not (membership in LEFT or visibility.is_world_readable(room_id)):
            raise forbidden(f"You are not a member of {room_id} and it is not world-readable.")
        if membership == "invite" and not visibility.is_world_readable(room_id):
            return self._invited_room(requester, room_id)
        # A peeker has no membership; the schema requires one: `leave` says "not in it".
        room = self._room(requester, room_id, membership or "leave", _clamp(limit), end)
        members = self._rooms.state_cache.joined_members(room_id)
        room["presence"] = self._presence.changes_since(members, -1)
        return room

    # ---- one room

    def _room(
        self, requester: Requester, room_id: str, membership: str, limit: int, end: int
    ) -> dict[str, Any]:
        user_id = requester.user_id
        events = self._rooms.events
        from_token = None
        if membership in LEFT and not self._rooms.visibility.is_world_readable(room_id):
            member_id = self._rooms.state.current_state_ids(room_id).get(("m.room.member", user_id))
            position = self._rooms.timeline.position(member_id) if member_id else None
            from_token = str(position) if position is not None else None
        page, _, older = events.messages(
            user_id,
            room_id,
            from_token=from_token,
            to_token=None,
            direction="b",
            limit=limit,
            event_filter=EventFilter(),
        )
        messages: dict[str, Any] = {
            "chunk": [self._format(requester, event) for event in reversed(page)],
            "end": str(end) if from_token is None else from_token,
        }
        if older is not None:
            messages["start"] = older
        return {
            "room_id": room_id,
            "membership": membership,
            "messages": messages,
            "state": [self._format(requester, e) for e in events.state(user_id, room_id)],
            "visibility": "public" if self._rooms.directory.is_public(room_id) else "private",
            "account_data": self._account_data.changes_since(user_id, room_id, -1),
        }

    def _invited_room(self, requester: Requester, room_id: str) -> dict[str, Any]:
        room: dict[str, Any] = {"room_id": room_id, "membership": "invite"}
        invite = self._rooms.timeline.state_event(room_id, "m.room.member", requester.user_id)
        if invite is not None and invite.get("content", {}).get("membership") == "invite":
            room["invite"] = self._format(requester, invite)
        return room

    def _member_content(self, room_id: str, user_id: str) -> dict[str, Any]:
        return self._rooms.timeline.state_content(room_id, "m.room.member", user_id)

    def _format(self, requester: Requester, event: Event) -> dict[str, Any]:
        return self._rooms.events.for_client(event, requester.user_id, requester.device_id)


def _clamp(limit: int) -> int:
    return max(0, min(limit, MAX_LIMIT))
