"""PDUs: their format per room version, hashes, ids, signatures and size limits.

Spec:
- `content/server-server-api.md` § Signing Events (adding hashes and
  signatures, validating them on received events, the reference hash, the
  content hash) and § Checks performed on receipt of a PDU (step 1: the event
  has its room version's format);
- the event formats `data/api/server-server/definitions/pdu_v1.yaml` (rooms
  v1, v2), `pdu_v3.yaml`, `pdu_v4.yaml` (v4, v5), `pdu_v6.yaml` (v6–v10),
  `pdu_v11.yaml`, `pdu_v12.yaml` and their `components/`;
- event ids: `rooms/fragments/v1-event-ids.md`, `rooms/v3.md` (standard
  base64), `v4-event-ids.md` (URL-safe base64); room ids of room version 12:
  `rooms/v12.md`, `appendices.md` § Room IDs;
- `content/client-server-api/_index.md` § Size limits.

Everything here works on the event exactly as given: pass the PDU as it
travels over federation (for rooms v3+ that is without an `event_id` key —
a stored copy carrying one hashes to a different id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from matrix_conduit.core.canonical_json import check_canonical_json, encode_canonical_json
from matrix_conduit.core.errors import (
    CanonicalJsonError,
    EventTooLarge,
    InvalidEvent,
    InvalidIdentifier,
    SignatureError,
    preview,
)
from matrix_conduit.core.ids import EventId, UserId
from matrix_conduit.core.redaction import redact
from matrix_conduit.core.room_versions import EventFormat, RoomVersion
from matrix_conduit.core.signing import (
    SigningKey,
    VerifyKey,
    add_signature,
    decode_base64,
    encode_base64,
    signed_bytes,
    signed_key_ids,
    verify_json,
)

MAX_PDU_BYTES = 65536
"""The whole event, with signatures, as Canonical JSON."""

MAX_KEY_BYTES = 255
"""`sender`, `room_id`, `state_key`, `type`, `event_id`: each at most 255 bytes."""

MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10

MAX_DEPTH_V1 = 2**63 - 1
"""Rooms v1–v5 (`pdu_v1.yaml`, `pdu_v3.yaml`, `pdu_v4.yaml`)."""
MAX_DEPTH_V6 = 2**53 - 1
"""Rooms v6+ (`components/depth_v6.yaml`): Canonical JSON's integer range."""

_SIZE_LIMITED_KEYS = ("sender", "room_id", "state_key", "type", "event_id")


# --- hashes and ids ---------------------------------------------------------


def _sha256(obj: Mapping[str, Any], *, leave_out: tuple[str, ...]) -> bytes:
    remaining = {key: value for key, value in obj.items() if key not in leave_out}
    return hashlib.sha256(encode_canonical_json(remaining)).digest()


def compute_content_hash(event: Mapping[str, Any]) -> str:
    """The content hash (unpadded base64 sha256) over the event without
    `unsigned`, `signatures` and `hashes`: it covers the unredacted content."""
    return encode_base64(_sha256(event, leave_out=("unsigned", "signatures", "hashes")))


def check_content_hash(event: Mapping[str, Any]) -> bool:
    """Whether `hashes.sha256` matches the event (decoded bytes compared).

    False for a missing or malformed hash too. A received event that fails
    this is to be replaced by its redacted form, not rejected.
    """
    hashes = event.get("hashes")
    claimed = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    try:
        return decode_base64(claimed) == decode_base64(compute_content_hash(event))
    except (ValueError, CanonicalJsonError):
        return False


def compute_reference_hash(event: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """The sha256 of the redacted event without `signatures` and `unsigned`."""
    return _sha256(redact(event, room_version), leave_out=("signatures", "unsigned"))


def reference_form(
    event: Mapping[str, Any], room_version: RoomVersion
) -> tuple[dict[str, Any], bytes]:
    """The redacted event and `signed_bytes` of it: what its signatures cover, which is
    also what its reference hash hashes. A received event needs both (its id and its
    signature check), so it is redacted and encoded once (`event_id_of_reference_form`,
    `verify_event_signatures(..., reference=...)`)."""
    redacted = redact(event, room_version)
    return redacted, signed_bytes(redacted)


def event_id_of_reference_form(
    event: Mapping[str, Any], room_version: RoomVersion, data: bytes
) -> str:
    """`compute_event_id` given `data`, the event's `reference_form` bytes."""
    if room_version.event_format is EventFormat.V1:
        event_id, _ = _v1_event_id(event)
        return event_id
    urlsafe = room_version.event_format is EventFormat.V3
    return "$" + encode_base64(hashlib.sha256(data).digest(), urlsafe=urlsafe)


def _v1_event_id(event: Mapping[str, Any]) -> tuple[str, str]:
    """Rooms v1–v2: the `event_id` key, which must be `$opaque:server`, and its server."""
    try:
        event_id = EventId.parse(event.get("event_id"))
    except InvalidIdentifier as error:
        raise InvalidEvent(f"event_id: {error}", key="event_id") from None
    if event_id.server_name is None:
        raise InvalidEvent("event_id: rooms v1 and v2 use '$opaque:server' ids", key="event_id")
    return str(event_id), event_id.server_name


def compute_event_id(event: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event's id: its `event_id` key in rooms v1–v2, else `$` + its reference hash.

    Room version 3 encodes the hash as standard unpadded base64, 4 and later
    as URL-safe unpadded base64. Raises `InvalidEvent` for a v1–v2 event
    without a valid `event_id`.
    """
    if room_version.event_format is EventFormat.V1:
        event_id, _ = _v1_event_id(event)
        return event_id
    urlsafe = room_version.event_format is EventFormat.V3
    return "$" + encode_base64(compute_reference_hash(event, room_version), urlsafe=urlsafe)


def room_id_for_create_event(create_event: Mapping[str, Any], room_version: RoomVersion) -> str:
    """A v12+ room's id: the create event's id with `!` for `$`.

    Raises `ValueError` for room versions whose room ids are not derived
    from the create event.
    """
    if not room_version.room_id_is_create_event_id:
        raise ValueError(
            f"room version {room_version.identifier} room ids are not create event ids"
        )
    return "!" + compute_event_id(create_event, room_version)[1:]


# --- signatures -------------------------------------------------------------


def sign_event(
    event: Mapping[str, Any], server_name: str, key: SigningKey, room_version: RoomVersion
) -> dict[str, Any]:
    """The event with its content hash and this server's signature added.

    Spec "Adding hashes and signatures to outgoing events": the content hash
    goes into `hashes.sha256`; the *redacted* event is signed; the signature
    is copied back to the full event (other signatures are kept). The input
    is not modified.
    """
    return _sign(event, server_name, key, room_version)[0]


def _sign(
    event: Mapping[str, Any], server_name: str, key: SigningKey, room_version: RoomVersion
) -> tuple[dict[str, Any], bytes]:
    """The hashed and signed event, and the bytes the signature covers.

    Refuses (`CanonicalJsonError`) what the room version's Canonical JSON
    forbids: other servers would reject the event (floats and big integers
    in rooms v6+).
    """
    if room_version.strict_canonical_json:
        check_canonical_json(event, strict=True)
    hashed = {**event, "hashes": {"sha256": compute_content_hash(event)}}
    redacted = redact(hashed, room_version)
    data = signed_bytes(redacted)
    hashed["signatures"] = add_signature(redacted, server_name, key, data)["signatures"]
    return hashed, data


def sign_event_with_id(
    event: Mapping[str, Any], server_name: str, key: SigningKey, room_version: RoomVersion
) -> tuple[dict[str, Any], str]:
    """`sign_event`, and the signed event's id, from one encoding.

    What the signature covers — the redacted event without `signatures` and
    `unsigned` — is exactly what the reference hash hashes, so the event id
    of a v3+ event comes from the same bytes. Rooms v1–v2 events must carry
    their `event_id` (`InvalidEvent` otherwise).
    """
    signed, data = _sign(event, server_name, key, room_version)
    if room_version.event_format is EventFormat.V1:
        event_id, _ = _v1_event_id(signed)
    else:
        urlsafe = room_version.event_format is EventFormat.V3
        event_id = "$" + encode_base64(hashlib.sha256(data).digest(), urlsafe=urlsafe)
    return signed, event_id


def _is_third_party_invite(event: Mapping[str, Any]) -> bool:
    content = event.get("content")
    return (
        event.get("type") == "m.room.member"
        and isinstance(content, Mapping)
        and content.get("membership") == "invite"
        and "third_party_invite" in content
    )


def _server_of_user(user_id: object, key: str) -> str:
    try:
        return UserId.parse(user_id).server_name
    except InvalidIdentifier as error:
        raise InvalidEvent(f"{key}: {error}", key=key) from None


def required_signature_servers(event: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The servers whose signatures a received event must carry.

    - the `sender`'s server, except for an invite made from a third-party
      invite (the `signed` block's signature stands in for it, checked by the
      auth rules);
    - rooms v1–v2: the server of the `event_id`, if different;
    - rooms with restricted joins (v8+): for a join with
      `join_authorised_via_users_server`, that user's server (auth rule
      "validly signed by the homeserver of the user ID denoted by the key";
      checked here, where the keys are, as Synapse does).
    """
    servers = set()
    if not _is_third_party_invite(event):
        servers.add(_server_of_user(event.get("sender"), "sender"))
    if room_version.event_format is EventFormat.V1:
        _, event_id_server = _v1_event_id(event)
        servers.add(event_id_server)
    content = event.get("content")
    if (
        room_version.restricted_join_rule
        and event.get("type") == "m.room.member"
        and isinstance(content, Mapping)
        and content.get("membership") == "join"
        and "join_authorised_via_users_server" in content
    ):
        authoriser = content["join_authorised_via_users_server"]
        servers.add(_server_of_user(authoriser, "content.join_authorised_via_users_server"))
    return servers


def verify_event_signatures(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    verify_keys: Mapping[str, Mapping[str, VerifyKey]],
    *,
    reference: tuple[Mapping[str, Any], bytes] | None = None,
) -> None:
    """Check a received event's signatures; `SignatureError` if they do not hold.

    `verify_keys` maps server name → key id → key, holding the keys the
    caller knows *and* considers valid at the event's `origin_server_ts`
    (rooms v5+ enforce key validity; the clock and key store are the
    caller's). For each required server, signatures by unknown keys are
    skipped, at least one known key must have signed, and every known key's
    signature must verify — over the redacted event, so a redacted copy
    verifies as well as the full one. `reference` is the event's
    `reference_form` if the caller has it.
    """
    redacted, data = reference if reference is not None else reference_form(event, room_version)
    for server_name in sorted(required_signature_servers(event, room_version)):
        known_keys = verify_keys.get(server_name, {})
        key_ids = [
            key_id for key_id in signed_key_ids(redacted, server_name) if key_id in known_keys
        ]
        if not key_ids:
            raise SignatureError(
                f"event has no signature from {preview(server_name)} by a known key"
            )
        for key_id in key_ids:
            verify_json(redacted, server_name, key_id, known_keys[key_id], data)


# --- format and size --------------------------------------------------------


def _byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def check_event_size(event: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Raise `EventTooLarge` (naming the key) if the event breaks the size limits.

    The whole event as Canonical JSON, signatures included, is at most 65536
    bytes; `sender`, `room_id`, `state_key`, `type` and `event_id` at most 255
    bytes of UTF-8 each. The `event_id` key is a PDU key only in rooms v1–v2
    (`room_version`); elsewhere an id is a 44-character hash.
    """
    keys = _SIZE_LIMITED_KEYS if room_version.event_id_in_event else _SIZE_LIMITED_KEYS[:-1]
    for key in keys:
        value = event.get(key)
        if isinstance(value, str) and (
            len(value) > MAX_KEY_BYTES or _byte_length(value) > MAX_KEY_BYTES
        ):
            raise EventTooLarge(f"{key} is longer than {MAX_KEY_BYTES} bytes", key=key)
    size = len(encode_canonical_json(event))
    if size > MAX_PDU_BYTES:
        raise EventTooLarge(f"event is {size} bytes as Canonical JSON, over {MAX_PDU_BYTES}")


def _require(
    event: Mapping[str, Any], key: str, expected: type | tuple[type, ...], what: str
) -> Any:
    if key not in event:
        raise InvalidEvent(f"event has no {key!r}", key=key)
    value = event[key]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise InvalidEvent(f"{key!r} must be {what}, not {preview(value)}", key=key)
    return value


def _check_optional_string(event: Mapping[str, Any], key: str) -> None:
    if key in event:
        _require(event, key, str, "a string")


def _check_integer(event: Mapping[str, Any], key: str, maximum: int) -> None:
    value = _require(event, key, int, "an integer")
    if not 0 <= value <= maximum:
        raise InvalidEvent(f"{key!r} must be an integer in [0, {maximum}]", key=key)


def _check_event_references(event: Mapping[str, Any], key: str, limit: int, pairs: bool) -> None:
    """`prev_events`/`auth_events`: ids (rooms v3+) or [id, hashes] pairs (v1–v2)."""
    references = _require(event, key, list, "a list")
    if len(references) > limit:
        raise InvalidEvent(f"{key!r} has {len(references)} entries; at most {limit}", key=key)
    for reference in references:
        if pairs:
            is_valid = (
                isinstance(reference, list)
                and len(reference) == 2
                and isinstance(reference[0], str)
                and isinstance(reference[1], dict)
            )
        else:
            is_valid = isinstance(reference, str)
        if not is_valid:
            shape = "[event id, hashes] pairs" if pairs else "event id strings"
            raise InvalidEvent(f"{key!r} must be a list of {shape}", key=key)


def _check_signatures(event: Mapping[str, Any]) -> None:
    signatures = _require(event, "signatures", dict, "an object")
    for by_key in signatures.values():
        if not isinstance(by_key, dict) or not all(
            isinstance(signature, str) for signature in by_key.values()
        ):
            raise InvalidEvent(
                "'signatures' must map server names to {key id: signature}", key="signatures"
            )


def validate_pdu_format(event: object, room_version: RoomVersion) -> None:
    """Raise `InvalidEvent` (naming the key) unless `event` has its room version's PDU format.

    Checks the required keys and their types (`pdu_v*.yaml`), the shape of
    `prev_events`/`auth_events` (pairs in rooms v1–v2, ids after) and their
    counts (≤ 20, ≤ 10), `depth` within its version's range, `sender` a user
    id, and Canonical JSON (strictly in rooms v6+). A v12+ `m.room.create`
    may omit `room_id` (whether it *must* is auth rule 1.2). Size limits are
    `check_event_size`.
    """
    if not isinstance(event, dict):
        raise InvalidEvent(f"an event must be a JSON object, not {preview(event)}")
    try:
        check_canonical_json(event, strict=room_version.strict_canonical_json)
    except CanonicalJsonError as error:
        raise InvalidEvent(f"event is not valid Canonical JSON: {error}") from None
    _require(event, "type", str, "a string")
    _server_of_user(_require(event, "sender", str, "a string"), "sender")
    is_v12_create = room_version.room_id_is_create_event_id and event["type"] == "m.room.create"
    if not is_v12_create or "room_id" in event:
        _require(event, "room_id", str, "a string")
    _require(event, "origin_server_ts", int, "an integer")
    _require(event, "content", dict, "an object")
    _check_optional_string(event, "state_key")
    hashes = _require(event, "hashes", dict, "an object")
    if not isinstance(hashes.get("sha256"), str):
        raise InvalidEvent("'hashes' must have a 'sha256' string", key="hashes")
    _check_signatures(event)
    if "unsigned" in event:
        _require(event, "unsigned", dict, "an object")
    _check_integer(
        event, "depth", MAX_DEPTH_V6 if room_version.strict_canonical_json else MAX_DEPTH_V1
    )
    pairs = room_version.event_format is EventFormat.V1
    _check_event_references(event, "prev_events", MAX_PREV_EVENTS, pairs)
    _check_event_references(event, "auth_events", MAX_AUTH_EVENTS, pairs)
    if pairs:
        compute_event_id(event, room_version)
    if not room_version.redacts_in_content:
        _check_optional_string(event, "redacts")
