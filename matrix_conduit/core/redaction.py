"""The redaction algorithm of every room version, and the redacted event clients see.

Spec: the room versions' Redactions sections — `rooms/fragments/v1-redactions.md`
(rooms v1–v5), `v6-redactions.md` (v6, v7), `rooms/v8.md` § Redactions (v8),
`v9-redactions.md` (v9, v10), `v11-redactions.md` (v11, v12) — and
`client-server-api/_index.md` § Redactions (`unsigned.redacted_because`).

Redaction decides what an event's hashes and signatures cover (the redacted
form is what is signed and what the reference hash is taken over), so a
difference of one key here splits a room between servers. The algorithm is a
table per `RedactionRules`; `redact` never modifies its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from matrix_conduit.core.errors import InvalidEvent, preview
from matrix_conduit.core.room_versions import RedactionRules, RoomVersion

_TOP_LEVEL_KEYS_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)
_TOP_LEVEL_KEYS_V11 = _TOP_LEVEL_KEYS_V1 - {"origin", "membership", "prev_state"}

_POWER_LEVELS_KEYS_V1 = frozenset(
    {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
)

_CONTENT_KEYS_V1: Mapping[str, frozenset[str]] = {
    "m.room.member": frozenset({"membership"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule"}),
    "m.room.power_levels": _POWER_LEVELS_KEYS_V1,
    "m.room.aliases": frozenset({"aliases"}),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}
_CONTENT_KEYS_V6 = {
    event_type: keys
    for event_type, keys in _CONTENT_KEYS_V1.items()
    if event_type != "m.room.aliases"
}
_CONTENT_KEYS_V8 = {**_CONTENT_KEYS_V6, "m.room.join_rules": frozenset({"join_rule", "allow"})}
_CONTENT_KEYS_V9 = {
    **_CONTENT_KEYS_V8,
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
}
_CONTENT_KEYS_V11 = {
    **_CONTENT_KEYS_V9,
    "m.room.power_levels": _POWER_LEVELS_KEYS_V1 | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}


@dataclass(frozen=True, slots=True)
class _RedactionAlgorithm:
    top_level_keys: frozenset[str]
    content_keys: Mapping[str, frozenset[str]]
    """Per event type, the `content` keys that survive."""
    keeps_all_create_content: bool
    """v11+: `m.room.create` keeps its whole `content`."""
    keeps_third_party_invite_signed: bool
    """v11+: `m.room.member` keeps `third_party_invite`, reduced to its `signed` key."""


_ALGORITHMS: Mapping[RedactionRules, _RedactionAlgorithm] = {
    RedactionRules.V1: _RedactionAlgorithm(_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V1, False, False),
    RedactionRules.V6: _RedactionAlgorithm(_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V6, False, False),
    RedactionRules.V8: _RedactionAlgorithm(_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V8, False, False),
    RedactionRules.V9: _RedactionAlgorithm(_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V9, False, False),
    RedactionRules.V11: _RedactionAlgorithm(_TOP_LEVEL_KEYS_V11, _CONTENT_KEYS_V11, True, True),
}


def _copy_json(value: Any) -> Any:
    """A deep copy of a JSON tree, so the redacted event shares nothing with its source."""
    if isinstance(value, dict):
        return {key: _copy_json(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_copy_json(child) for child in value]
    return value


def _redacted_content(
    event_type: object, content: Mapping[str, Any], algorithm: _RedactionAlgorithm
) -> dict[str, Any]:
    if event_type == "m.room.create" and algorithm.keeps_all_create_content:
        return _copy_json(dict(content))
    kept_keys = (
        algorithm.content_keys.get(event_type, frozenset())
        if isinstance(event_type, str)
        else frozenset()
    )
    redacted = {key: _copy_json(value) for key, value in content.items() if key in kept_keys}
    third_party_invite = content.get("third_party_invite")
    if (
        event_type == "m.room.member"
        and algorithm.keeps_third_party_invite_signed
        and isinstance(third_party_invite, Mapping)
    ):
        redacted["third_party_invite"] = (
            {"signed": _copy_json(third_party_invite["signed"])}
            if "signed" in third_party_invite
            else {}
        )
    return redacted


def redact(event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The event stripped to the keys its room version's redaction algorithm protects.

    Top-level keys outside the version's list go (`unsigned` always does);
    `content` keeps only the keys protected for the event's type — and is
    emptied when it is not an object. A new dict is returned; the input is
    untouched. Raises `InvalidEvent` if `event` is not an object.
    """
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"an event must be a JSON object, not {preview(event)}")
    algorithm = _ALGORITHMS[room_version.redaction_rules]
    redacted = {
        key: _copy_json(value)
        for key, value in event.items()
        if key in algorithm.top_level_keys and key != "content"
    }
    if "content" in event:
        content = event["content"]
        redacted["content"] = (
            _redacted_content(event.get("type"), content, algorithm)
            if isinstance(content, Mapping)
            else {}
        )
    return redacted


def redact_for_client(
    event: Mapping[str, Any], redaction_event: Mapping[str, Any], room_version: RoomVersion
) -> dict[str, Any]:
    """The redacted event as served to clients: `unsigned.redacted_because` is the redaction.

    Client-Server API § Redactions: "Servers should include a copy of the
    `m.room.redaction` event under `unsigned` as `redacted_because`".
    """
    redacted = redact(event, room_version)
    redacted["unsigned"] = {"redacted_because": _copy_json(dict(redaction_event))}
    return redacted
