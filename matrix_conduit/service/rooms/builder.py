"""This server's own room events (build, authorise, hash, sign, append), and the
checks another server's event passes before it may be stored.

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

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from ...core.auth import auth_types_for_event, check_auth
from ...core.errors import SignatureError
from ...core.events import (
    MAX_DEPTH_V1,
    MAX_DEPTH_V6,
    InvalidEvent,
    check_content_hash,
    check_event_size,
    compute_content_hash,
    compute_event_id,
    room_id_for_create_event,
    sign_event_with_id,
    validate_pdu_format,
    verify_event_signatures,
)
from ...core.redaction import redact
from ...core.room_versions import EventFormat, RoomVersion
from ...core.signing import VerifyKey
from ...errors import MatrixError, forbidden
from ...storage import WriteBatch
from ..globals import Globals
from .event_context import EventContext, EventStatus
from .locks import RoomGuard, RoomLocks
from .state import RoomState
from .timeline import Timeline

MAX_PREV_EVENTS = 20


def now_ms() -> int:
    return int(time.time() * 1000)


class EventBuilder:
    """This server's events, in three steps federation needs apart.

    - `template`: the unsigned PDU on top of the room (what `make_join` hands
      to a joining server);
    - `check_foreign`: another server's signed event, checked before it may be
      persisted (what `send_join` receives);
    - `sign_and_append`: authorise, hash, sign and persist one of ours.

    `send` and `send_locked` are the first and last together.
    """

    def __init__(
        self, globals_: Globals, state: RoomState, timeline: Timeline, locks: RoomLocks
    ) -> None:
        self._globals = globals_
        self._state = state
        self._timeline = timeline
        self.locks = locks
        self.checks: list[Callable[[Mapping[str, Any]], None]] = []
        """Called with each event template of ours; one may refuse it with a MatrixError
        (the admin room's disabled rooms: `service/admin_room/disabled_rooms.py`)."""

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
        async with self.locks.hold(room_id) as guard:
            return self.send_locked(
                guard,
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
        guard: RoomGuard,
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
        event = self.template(room_id, sender, event_type, content, state_key, redacts=redacts)
        return self.sign_and_append(guard, event, also_write=also_write)

    def template(
        self,
        room_id: str,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        redacts: str | None = None,
    ) -> dict[str, Any]:
        """The unsigned PDU that `sender` would add on top of the room now.

        Not authorised, hashed or signed: `make_join` hands it to another
        server, which signs it; ours go on to `sign_and_append`.
        """
        room_version = self._timeline.room_version(room_id)
        event = self._build(room_id, room_version, sender, event_type, content, state_key, redacts)
        for check in self.checks:
            check(event)
        return event

    def sign_and_append(
        self,
        guard: RoomGuard,
        template: Mapping[str, Any],
        *,
        also_write: Callable[[str, WriteBatch], None] | None = None,
    ) -> str:
        """Authorise a template of ours against the current state, sign and persist it.

        The context is the one of an event on top of the room: the state
        before is the current state, the event replaces its prev_events among
        the forward extremities. Returns the event id; 403 `M_FORBIDDEN` (and
        nothing written) if the auth rules refuse it.
        """
        event = self.authorise_and_sign(guard, template)
        self.append_signed(guard, event, also_write=also_write)
        return event["event_id"]

    def authorise_and_sign(self, guard: RoomGuard, template: Mapping[str, Any]) -> dict[str, Any]:
        """The first half of `sign_and_append`: the signed event, with its `event_id`.

        For an event another server must sign too before it is appended (an
        invite of a user on that server); `append_signed` then stores it.
        """
        room_id = template["room_id"]
        guard.require(room_id)
        room_version = self._timeline.room_version(room_id)
        event = dict(template)
        event_id = self._finish(event, room_version, self._state.current_state_ids(room_id))
        return {**event, "event_id": event_id}

    def append_signed(
        self,
        guard: RoomGuard,
        event: Mapping[str, Any],
        *,
        also_write: Callable[[str, WriteBatch], None] | None = None,
    ) -> None:
        """The second half of `sign_and_append`: persist a signed event of ours on top."""
        room_version = self._timeline.room_version(event["room_id"])
        self._append_ours(guard, dict(event), room_version, also_write)

    async def create_room_event(
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
        async with self.locks.hold(room_id) as guard:
            self._append_ours(
                guard, {**event, "event_id": event_id, "room_id": room_id}, room_version, None
            )
        return room_id, event_id

    def _append_ours(
        self,
        guard: RoomGuard,
        event: dict[str, Any],
        room_version: RoomVersion,
        also_write: Callable[[str, WriteBatch], None] | None,
    ) -> None:
        """Persist a signed event of ours with the context of the room's tip."""
        room_id = event["room_id"]
        event_id = event["event_id"]
        batch = self._timeline.batch()
        before = self._state.current_shortstatehash(room_id)
        after = before
        if "state_key" in event:
            key = (event["type"], event["state_key"])
            after = self._state.save_with_event(before, key, event_id, batch)
        previous_ids = {
            previous if isinstance(previous, str) else previous[0]
            for previous in event["prev_events"]
        }
        extremities = tuple(
            e for e in self._timeline.forward_extremities(room_id) if e not in previous_ids
        )
        context = EventContext(
            EventStatus.TIMELINE,
            state_before=before,
            state_after=after,
            current_state=after if after != before else None,
            forward_extremities=(*extremities, event_id),
        )
        if also_write is not None:
            also_write(event_id, batch)
        self._timeline.persist(guard, event, room_version, context, batch)

    # ---- other servers' events

    def check_foreign(
        self,
        pdu: Mapping[str, Any],
        room_version: RoomVersion,
        verify_keys: Mapping[str, Mapping[str, VerifyKey]],
    ) -> dict[str, Any]:
        """Another server's event, checked as every receiving path must before persisting.

        Spec "Checks performed on receipt of a PDU", steps 1–4: the format of
        the room version, the signatures of the servers that must sign (with
        `verify_keys`, server → key id → key, the keys the caller found valid
        at the event's time), the content hash (on a mismatch the redacted
        form is what goes on), and the auth rules against the event's own
        auth events, which must be stored here. Returns the event with its
        `event_id`. Raises 400 `M_BAD_JSON` for a malformed event and 403
        `M_FORBIDDEN` for a bad signature, an unknown auth event or a
        refusal by the auth rules. Where the event goes (state before, soft
        failure, extremities) is for the caller's `EventContext`.
        """
        try:
            validate_pdu_format(pdu, room_version)
            event_id = compute_event_id(pdu, room_version)
        except InvalidEvent as error:
            raise MatrixError(400, "M_BAD_JSON", f"The event is malformed: {error}") from None
        try:
            verify_event_signatures(pdu, room_version, verify_keys)
        except (SignatureError, InvalidEvent) as error:
            raise forbidden(f"The event's signatures do not hold: {error}") from None
        event = dict(pdu) if check_content_hash(pdu) else redact(pdu, room_version)
        event["event_id"] = event_id
        cited = []
        for reference in event.get("auth_events", ()):
            auth_id = reference if isinstance(reference, str) else reference[0]
            auth_event = self._timeline.get_event(auth_id)
            if auth_event is None:
                raise forbidden(f"The event's auth event {auth_id} is not known here.")
            cited.append(auth_event)
        auth_events = {(e["type"], e.get("state_key", "")): e for e in cited}
        if room_version.room_id_is_create_event_id and event["type"] != "m.room.create":
            create = self._timeline.state_event(event["room_id"], "m.room.create")
            if create is not None:
                auth_events.setdefault(("m.room.create", ""), create)
        rejection = check_auth(
            event,
            auth_events,
            room_version,
            is_signed_by=lambda signed, server: server in _signers(signed),
            cited_auth_events=cited,
            is_rejected=lambda e: self._timeline.is_rejected(e["event_id"]),
        )
        if rejection is not None:
            raise forbidden(f"{rejection.reason} ({rejection.rule})")
        return event

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
        # Spec (PDUs, `depth`): at the limit, an event takes the limit. Rooms v6+ hold
        # Canonical JSON integers only: another server's event at 2**53 - 1 must not
        # leave this server unable to write in the room.
        max_depth = MAX_DEPTH_V6 if room_version.strict_canonical_json else MAX_DEPTH_V1
        event: dict[str, Any] = {
            "room_id": room_id,
            "sender": sender,
            "type": event_type,
            "content": dict(content),
            "origin_server_ts": now_ms(),
            "depth": min(depth + 1, max_depth),
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
        auth_events = self._timeline.auth_events_in(event, room_version, state)
        # This server signs the event once it passes: a signature of ours is as
        # good as there (restricted joins ask for one).
        rejection = check_auth(
            event,
            auth_events,
            room_version,
            is_signed_by=lambda _event, server: self._globals.is_ours(server),
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


def _signers(event: Mapping[str, Any]) -> set[str]:
    """The servers that signed a checked event (its signatures were verified first)."""
    signatures = event.get("signatures")
    return set(signatures) if isinstance(signatures, Mapping) else set()
