"""The first checks on any PDU another server gives us: format, signatures, content hash.

Spec: `content/server-server-api.md` § Checks performed on receipt of a PDU,
steps 1–3, and § Validating hashes and signatures on received events. They
need no room state, only the room version and the signing servers' keys, so
they run before a pushed PDU is queued (its answer in `/send` can say what
was wrong) and on every event fetched from another server (auth events,
missing prev_events, the state at a gap). An event that fails step 1 or 2 is
dropped (`DroppedPdu`); one whose content hash does not match goes on in its
redacted form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...core.errors import InvalidEvent, SignatureError
from ...core.events import (
    check_content_hash,
    check_event_size,
    event_id_of_reference_form,
    reference_form,
    required_signature_servers,
    room_id_for_create_event,
    validate_pdu_format,
    verify_event_signatures,
)
from ...core.redaction import redact
from ...core.room_versions import RoomVersion
from ...core.signing import signed_key_ids
from .key_ring import KeyRing


class DroppedPdu(Exception):
    """A PDU that must be dropped: malformed for its room version, or not validly signed."""


def reference_ids(references: object) -> list[str]:
    """The event ids of `prev_events`/`auth_events` (pairs in rooms v1–v2, ids after)."""
    if not isinstance(references, list):
        return []
    ids = []
    for reference in references:
        event_id = reference[0] if isinstance(reference, list) and reference else reference
        if isinstance(event_id, str):
            ids.append(event_id)
    return ids


def auth_event_ids(event: Mapping[str, Any], room_version: RoomVersion) -> list[str]:
    """The events an event is judged by: its auth events, and in rooms v12 (where it
    does not cite it) the room's create event, whose id the room id names."""
    ids = reference_ids(event.get("auth_events"))
    if room_version.room_id_is_create_event_id and event.get("type") != "m.room.create":
        ids.append("$" + str(event.get("room_id", ""))[1:])
    return ids


async def checked_pdu(key_ring: KeyRing, pdu: object, room_version: RoomVersion) -> dict[str, Any]:
    """The PDU after steps 1–3, as it is stored: with `event_id`, redacted on a hash mismatch.

    Raises `DroppedPdu` saying why for a malformed event or bad signatures.
    Keys are the signing servers' keys valid at the event's
    `origin_server_ts` (rooms v5+; earlier versions accept any known key).
    The sender's `unsigned` is not kept: what a client sees there is ours to
    write. A v12 `m.room.create` gets the `room_id` its id implies, as our
    own create events are stored.
    """
    try:
        validate_pdu_format(pdu, room_version)
        assert isinstance(pdu, dict)
        check_event_size(pdu, room_version)
        reference = reference_form(pdu, room_version)  # redacted and encoded once
        event_id = event_id_of_reference_form(pdu, room_version, reference[1])
        servers = required_signature_servers(pdu, room_version)
    except InvalidEvent as error:
        raise DroppedPdu(f"the event is malformed: {error}") from None
    at_ts = pdu["origin_server_ts"] if room_version.enforce_key_validity else 0
    redacted = reference[0]
    wanted = {server: signed_key_ids(redacted, server) for server in servers}
    keys = await key_ring.keys_for_many(wanted, at_ts)
    try:
        verify_event_signatures(pdu, room_version, keys, reference=reference)
    except (SignatureError, InvalidEvent) as error:
        raise DroppedPdu(f"the event's signatures do not hold: {error}") from None
    event = dict(pdu) if check_content_hash(pdu) else redact(pdu, room_version)
    event.pop("unsigned", None)
    event["event_id"] = event_id
    if room_version.room_id_is_create_event_id and event["type"] == "m.room.create":
        event["room_id"] = room_id_for_create_event(pdu, room_version)
    return event


def wire_pdu(event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """A stored event as a PDU for other servers: without our `unsigned`, and (rooms v3+)
    without `event_id`, and (v12 create) without the `room_id` it implies."""
    pdu = {key: value for key, value in event.items() if key != "unsigned"}
    if not room_version.event_id_in_event:
        pdu.pop("event_id", None)
    if room_version.room_id_is_create_event_id and pdu.get("type") == "m.room.create":
        pdu.pop("room_id", None)
    return pdu
