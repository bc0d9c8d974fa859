"""Events and state we hand to other servers: `/event`, `/state`, `/state_ids`,
`/get_missing_events`, `/backfill`, `/event_auth`, with history visibility applied
to the asking server.

Spec: `content/server-server-api.md` § Retrieving events, § Backfilling and
retrieving missing events, § Server Access Control Lists (state, state_ids
and get_missing_events are protected), § Soft failure (soft-failed events are
served by `/event`); `data/api/server-server/events.yaml`, `backfill.yaml`;
`content/client-server-api/modules/history_visibility.md` (a server sees
what its users could: `world_readable` and `shared` events, else those at
which one of its users was joined — or invited, for `invited`). An event
the server may not see is served redacted, as Synapse does. The state of a
room is only for servers with a member joined in it now.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...core.redaction import redact
from ...core.room_versions import RoomVersion
from ...core.server_acl import server_allowed
from ...errors import forbidden, not_found
from ..clock import now_ms
from ..globals import Globals
from ..rooms import Rooms
from ..rooms.state import StateIds
from .received import auth_event_ids, reference_ids, wire_pdu

MAX_MISSING_EVENTS = 100
"""The most `/get_missing_events` returns, whatever the `limit` asked for."""
MAX_BACKFILL_EVENTS = 100
"""The most `/backfill` returns, whatever the `limit` asked for (Synapse caps at 100)."""

Event = Mapping[str, Any]


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class ServedEvents:
    def __init__(self, globals_: Globals, rooms: Rooms) -> None:
        self._globals = globals_
        self._rooms = rooms
        self._timeline = rooms.timeline
        self._state = rooms.state
        self.room_disabled: Callable[[str], bool] = lambda room_id: False
        """Rooms the admin disabled (`admin_room/disabled_rooms.py`): served to nobody."""

    def event(self, origin: str, event_id: str) -> dict[str, Any]:
        """`GET /event/{eventId}`: a transaction holding the one PDU."""
        event = self._timeline.get_event(event_id)
        if event is None or self._timeline.is_rejected(event_id):
            raise not_found(f"Event {event_id} is not known here.")
        self._require_member(origin, event["room_id"])
        room_version = self._timeline.room_version(event["room_id"])
        pdu = self._visible_pdu(origin, event, room_version)
        return {
            "origin": self._globals.server_name,
            "origin_server_ts": now_ms(),
            "pdus": [pdu],
        }

    def state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """`GET /state_ids/{roomId}`: the state before `event_id` and its auth chain, by id."""
        state = self._state_before(origin, room_id, event_id)
        return {
            "pdu_ids": list(state.values()),
            "auth_chain_ids": [
                event["event_id"] for event in self._auth_chain(room_id, state.values())
            ],
        }

    def state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """`GET /state/{roomId}`: the same, as PDUs."""
        state = self._state_before(origin, room_id, event_id)
        room_version = self._timeline.room_version(room_id)
        pdus = [self._timeline.get_event(state_id) for state_id in state.values()]
        return {
            "pdus": [wire_pdu(event, room_version) for event in pdus if event is not None],
            "auth_chain": [
                wire_pdu(event, room_version) for event in self._auth_chain(room_id, state.values())
            ],
        }

    def missing_events(
        self,
        origin: str,
        room_id: str,
        *,
        earliest: list[str],
        latest: list[str],
        limit: int,
        min_depth: int,
    ) -> dict[str, Any]:
        """`POST /get_missing_events/{roomId}`: a breadth-first walk of the prev_events of
        `latest`, skipping `earliest`, at most `limit` events of depth ≥ `min_depth`."""
        self._require_member_server(origin, room_id)
        room_version = self._timeline.room_version(room_id)
        seen = set(earliest) | set(latest)
        to_visit: deque[str] = deque()
        for event_id in latest:
            event = self._timeline.get_event(event_id)
            if event is not None and event["room_id"] == room_id:
                to_visit.extend(reference_ids(event.get("prev_events")))
        found: list[Event] = []
        while to_visit and len(found) < min(limit, MAX_MISSING_EVENTS):
            event_id = to_visit.popleft()
            if event_id in seen:
                continue
            seen.add(event_id)
            event = self._timeline.get_event(event_id)
            if (
                event is None
                or event["room_id"] != room_id
                or self._timeline.is_rejected(event_id)
                or int(event.get("depth", 0)) < min_depth
            ):
                continue
            found.append(event)
            to_visit.extend(reference_ids(event.get("prev_events")))
        found.sort(key=lambda event: int(event.get("depth", 0)))
        return {"events": [self._visible_pdu(origin, event, room_version) for event in found]}

    def backfill(
        self, origin: str, room_id: str, from_ids: Iterable[str], limit: int
    ) -> dict[str, Any]:
        """`GET /backfill/{roomId}`: the events of `from_ids` and those before them,
        newest (greatest depth) first, at most `limit` (≤ `MAX_BACKFILL_EVENTS`).

        A walk of prev_events from the given events, taking the deepest
        event seen next (as Synapse does), so a linear history comes back in
        order and a forked one interleaves its branches by depth. Unknown and
        rejected events, and events of other rooms, are left out; events
        `origin` may not see are served redacted, so its copy of the graph
        stays whole without their content.
        """
        self._require_member_server(origin, room_id)
        room_version = self._timeline.room_version(room_id)
        limit = max(0, min(limit, MAX_BACKFILL_EVENTS))
        queue: list[tuple[int, str]] = []
        queued: set[str] = set()

        def enqueue(event_id: str) -> None:
            if event_id in queued:
                return
            queued.add(event_id)
            event = self._timeline.get_event(event_id)
            if event is None or event["room_id"] != room_id or self._timeline.is_rejected(event_id):
                return
            heapq.heappush(queue, (-int(event.get("depth", 0)), event_id))

        for event_id in from_ids:
            enqueue(event_id)
        found: list[Event] = []
        while queue and len(found) < limit:
            _, event_id = heapq.heappop(queue)
            event = self._timeline.get_event(event_id)
            assert event is not None
            found.append(event)
            for prev_id in reference_ids(event.get("prev_events")):
                enqueue(prev_id)
        return {
            "origin": self._globals.server_name,
            "origin_server_ts": now_ms(),
            "pdus": [self._visible_pdu(origin, event, room_version) for event in found],
        }

    def event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """`GET /event_auth/{roomId}/{eventId}`: the event's whole auth chain."""
        self._require_member_server(origin, room_id)
        event = self._timeline.get_event(event_id)
        if event is None or event["room_id"] != room_id or self._timeline.is_rejected(event_id):
            raise not_found(f"Event {event_id} is not an event of {room_id} known here.")
        room_version = self._timeline.room_version(room_id)
        return {
            "auth_chain": [
                self._visible_pdu(origin, auth_event, room_version)
                for auth_event in self._auth_chain(room_id, [event_id])
            ]
        }

    # ---- who may see what

    def _state_before(self, origin: str, room_id: str, event_id: str) -> StateIds:
        self._require_member_server(origin, room_id)
        event = self._timeline.get_event(event_id)
        if event is None or event["room_id"] != room_id:
            raise not_found(f"Event {event_id} is not an event of {room_id} known here.")
        state = self._state.state_before_event(event_id)
        if state is None:
            if event["type"] == "m.room.create" and "state_key" in event:
                return {}
            raise not_found(f"The state at {event_id} is not known here.")
        return state

    def _require_member_server(self, origin: str, room_id: str) -> None:
        """403 unless `origin` passes the room's server ACL and has a user joined to it."""
        acl = self._timeline.state_event(room_id, "m.room.server_acl")
        if not server_allowed(acl["content"] if acl else None, origin):
            raise forbidden(f"{origin} is denied by the room's server ACL.")
        self._require_member(origin, room_id)

    def _require_member(self, origin: str, room_id: str) -> None:
        """403 unless `origin` has a user joined to the room now (as Synapse's
        `get_persisted_pdu` and state requests ask)."""
        if self.room_disabled(room_id):
            raise forbidden(f"{room_id} is disabled on this server.")
        members = self._rooms.state_cache.joined_members(room_id)
        if not any(_server_of(member) == origin for member in members):
            raise forbidden(f"{origin} has no user in {room_id}.")

    def _visible_pdu(self, origin: str, event: Event, room_version: RoomVersion) -> dict[str, Any]:
        """The event as a PDU for `origin`: whole if it may see it, else redacted."""
        if not self._server_may_see(origin, event):
            redacted = redact(event, room_version)
            redacted["event_id"] = event["event_id"]
            event = redacted
        return wire_pdu(event, room_version)

    def _server_may_see(self, server: str, event: Event) -> bool:
        state = self._state.state_before_event(event["event_id"])
        if state is None:  # an outlier: judged by the room's current state
            state = self._state.current_state_ids(event["room_id"])
        visibility = self._content(state, ("m.room.history_visibility", "")).get(
            "history_visibility", "shared"
        )
        if visibility in ("world_readable", "shared"):
            return True
        for (event_type, state_key), _ in state.items():
            if event_type != "m.room.member" or _server_of(state_key) != server:
                continue
            membership = self._content(state, (event_type, state_key)).get("membership")
            if membership == "join" or (visibility == "invited" and membership == "invite"):
                return True
        return False

    def _content(self, state: StateIds, key: tuple[str, str]) -> dict[str, Any]:
        event_id = state.get(key)
        event = self._timeline.get_event(event_id) if event_id else None
        content = (event or {}).get("content")
        return dict(content) if isinstance(content, Mapping) else {}

    def _auth_chain(self, room_id: str, event_ids: Iterable[str]) -> list[Event]:
        """Every auth event of these events, recursively (the events themselves excluded
        unless another cites them); in rooms v12 the create event, which none cites."""
        room_version = self._timeline.room_version(room_id)
        chain: dict[str, Event] = {}
        to_visit = deque(event_ids)
        while to_visit:
            event = self._timeline.get_event(to_visit.popleft())
            if event is None:
                continue
            for auth_id in auth_event_ids(event, room_version):
                if auth_id not in chain:
                    auth_event = self._timeline.get_event(auth_id)
                    if auth_event is not None:
                        chain[auth_id] = auth_event
                        to_visit.append(auth_id)
        return list(chain.values())
