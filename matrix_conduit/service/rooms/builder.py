"""Create this server's own room events: build, authorise, hash, sign, append.

Spec: `content/server-server-api.md` ("PDUs", "Auth events selection",
"Signing events"), `content/rooms/v*.md` (event format per version). A local
event is a PDU like any other: `prev_events` are the room's forward
extremities, `auth_events` are chosen from the current state by the auth
events selection, `depth` is one more than the deepest prev event. It is
checked by `core.auth` against the state it will be appended to — a refusal
becomes 403 `M_FORBIDDEN` naming the failed rule — and nothing is written
unless it passes.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import trio

from ...core.auth import auth_types_for_event, check_auth
from ...core.events import (
    InvalidEvent,
    check_event_size,
    compute_content_hash,
    room_id_for_create_event,
    sign_event_with_id,
)
from ...core.room_versions import EventFormat, RoomVersion
from ...errors import MatrixError, forbidden
from ...storage import WriteBatch
from ..globals import Globals
from .state import RoomState
from .timeline import Timeline

MAX_PREV_EVENTS = 20
MAX_DEPTH = 2**63 - 1


def now_ms() -> int:
    return int(time.time() * 1000)


class RoomLocks:
    """One lock per room: appends to a room happen one at a time."""

    def __init__(self) -> None:
        self._locks: dict[str, trio.Lock] = {}

    def __call__(self, room_id: str) -> trio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = trio.Lock()
        return lock


class EventBuilder:
    def __init__(
        self, globals_: Globals, state: RoomState, timeline: Timeline, locks: RoomLocks
    ) -> None:
        self._globals = globals_
        self._state = state
        self._timeline = timeline
        self.locks = locks

    async def send(
        self,
        room_id: str,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        redacts: str | None = None,
        also_write: Callable[[str, WriteBatch], None] | None = None,
    ) -> str:
        """Build, authorise and append an event; returns its event id.

        `also_write(event_id, batch)` adds the caller's records to the batch
        that stores the event.
        """
        async with self.locks(room_id):
            return self.send_locked(
                room_id,
                sender,
                event_type,
                content,
                state_key,
                redacts=redacts,
                also_write=also_write,
            )

    def send_locked(
        self,
        room_id: str,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        redacts: str | None = None,
        also_write: Callable[[str, WriteBatch], None] | None = None,
    ) -> str:
        """`send` for a caller that already holds the room's lock."""
        room_version = self._timeline.room_version(room_id)
        event = self._build(room_id, room_version, sender, event_type, content, state_key, redacts)
        event_id = self._finish(event, room_version, self._state.current_state_ids(room_id))
        self._timeline.append(
            {**event, "event_id": event_id},
            room_version,
            also_write=functools.partial(also_write, event_id) if also_write else None,
        )
        return event_id

    def create_room_event(
        self,
        room_id: str | None,
        sender: str,
        content: Mapping[str, Any],
        room_version: RoomVersion,
    ) -> tuple[str, str]:
        """Build and append a room's `m.room.create` event; returns (room_id, event_id).

        Rooms v12+ have no room id until the create event exists: it is the
        create event's id (`room_id` None). Older versions take the new id.
        """
        event: dict[str, Any] = {
            "type": "m.room.create",
            "state_key": "",
            "sender": sender,
            "content": dict(content),
            "origin_server_ts": now_ms(),
            "depth": 1,
            "prev_events": [],
            "auth_events": [],
        }
        if not room_version.room_id_is_create_event_id:
            event["room_id"] = room_id
        self._add_format_fields(event, room_version)
        event_id = self._finish(event, room_version, {})
        if room_version.room_id_is_create_event_id:
            room_id = room_id_for_create_event(event, room_version)
        assert room_id is not None
        self._timeline.append({**event, "event_id": event_id, "room_id": room_id}, room_version)
        return room_id, event_id

    # ---- building

    def _build(
        self,
        room_id: str,
        room_version: RoomVersion,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None,
        redacts: str | None,
    ) -> dict[str, Any]:
        state = self._state.current_state_ids(room_id)
        auth_ids = [
            state[key]
            for key in auth_types_for_event(event_type, sender, state_key, content, room_version)
            if key in state
        ]
        prev_ids = self._timeline.forward_extremities(room_id)[:MAX_PREV_EVENTS]
        depth = 0
        for prev_id in prev_ids:
            prev = self._timeline.get_event(prev_id)
            if prev is not None:
                depth = max(depth, int(prev.get("depth", 0)))
        event: dict[str, Any] = {
            "room_id": room_id,
            "sender": sender,
            "type": event_type,
            "content": dict(content),
            "origin_server_ts": now_ms(),
            "depth": min(depth + 1, MAX_DEPTH),
            "prev_events": prev_ids,
            "auth_events": auth_ids,
        }
        if state_key is not None:
            event["state_key"] = state_key
        if redacts is not None:
            if room_version.redaction_rules.value >= 11:
                event["content"]["redacts"] = redacts
            else:
                event["redacts"] = redacts
        self._add_format_fields(event, room_version)
        return event

    def _add_format_fields(self, event: dict[str, Any], room_version: RoomVersion) -> None:
        """The keys that differ between event formats: `origin`, v1 ids and hash pairs."""
        if not room_version.implicit_room_creator:
            event["origin"] = self._globals.server_name
        if room_version.event_format is EventFormat.V1:
            event["event_id"] = f"${secrets.token_urlsafe(18)}:{self._globals.server_name}"
            event["prev_events"] = [self._reference(i) for i in event["prev_events"]]
            event["auth_events"] = [self._reference(i) for i in event["auth_events"]]

    def _reference(self, event_id: str) -> list[Any]:
        """A v1/v2 event reference: `[event_id, {"sha256": content hash}]`."""
        event = self._timeline.get_event(event_id)
        hashes = (event or {}).get("hashes") or {}
        return [event_id, {"sha256": hashes.get("sha256") or compute_content_hash(event or {})}]

    def _finish(
        self, event: dict[str, Any], room_version: RoomVersion, state: Mapping[tuple[str, str], str]
    ) -> str:
        """Authorise, hash and sign `event` in place; returns its event id."""
        keys = auth_types_for_event(
            event["type"], event["sender"], event.get("state_key"), event["content"], room_version
        )
        auth_events = {}
        for key in (*keys, ("m.room.create", "")):
            event_id = state.get(key)
            found = self._timeline.get_event(event_id) if event_id else None
            if found is not None:
                auth_events[key] = found
        # This server signs the event once it passes: a signature of ours is as
        # good as there (restricted joins ask for one).
        rejection = check_auth(
            event,
            auth_events,
            room_version,
            is_signed_by=lambda _event, server: server == self._globals.server_name,
        )
        if rejection is not None:
            raise forbidden(f"{rejection.reason} ({rejection.rule})")
        signed, event_id = sign_event_with_id(
            event, self._globals.server_name, self._globals.signing_key, room_version
        )
        try:
            check_event_size(signed, room_version)
        except InvalidEvent as error:
            raise MatrixError(413, "M_TOO_LARGE", f"The event is too large: {error}") from None
        event.clear()
        event.update(signed)
        return event_id
