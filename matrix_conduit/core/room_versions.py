"""The room versions this server knows, and what each one changes.

Spec: `content/rooms/_index.md` and `content/rooms/v1.md` … `v12.md`. Room
versions are opaque identifiers; every difference between them that the server
must act on is a named property here, so that code asks "does this version
have knocking?" rather than comparing version strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EventFormat(Enum):
    """How event ids are formed and where they live (spec: event format)."""

    V1 = 1
    """`event_id` is a property of the event, `$opaque:server` (rooms v1, v2)."""
    V2 = 2
    """The event id is the reference hash, standard unpadded base64 (room v3)."""
    V3 = 3
    """The event id is the reference hash, URL-safe unpadded base64 (v4+)."""


class StateResolution(Enum):
    V1 = "v1"
    V2 = "v2"
    V2_1 = "v2.1"
    """Room version 12's revision of v2 (conflicted state subgraph, empty start)."""


class RedactionRules(Enum):
    """Which redaction algorithm applies (spec fragments `v*-redactions.md`)."""

    V1 = 1
    """Rooms v1–v5: `m.room.aliases` keeps `aliases`."""
    V6 = 6
    """Rooms v6–v7: `m.room.aliases` no longer special."""
    V8 = 8
    """Room v8: `m.room.join_rules` also keeps `allow` (`rooms/v8.md` § Redactions)."""
    V9 = 9
    """Rooms v9–v10: keeps `join_authorised_via_users_server` and `allow`."""
    V11 = 11
    """Rooms v11+: the clarified algorithm (create keeps all, `redacts`, ...)."""


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    stable: bool
    event_format: EventFormat
    state_resolution: StateResolution
    redaction_rules: RedactionRules
    enforce_key_validity: bool
    """v5+: signing keys must be valid at the event's `origin_server_ts`."""
    special_case_aliases_auth: bool
    """v1–v5: `m.room.aliases` has its own auth rule (state_key = sender domain)."""
    strict_canonical_json: bool
    """v6+: integers outside [-(2**53)+1, (2**53)-1] and floats are rejected."""
    limit_notifications_power_levels: bool
    """v6+: changing `notifications` in power levels needs the usual checks."""
    knock_join_rule: bool
    """v7+: the `knock` join rule and membership."""
    restricted_join_rule: bool
    """v8+: the `restricted` join rule."""
    knock_restricted_join_rule: bool
    """v10+: the `knock_restricted` join rule."""
    integer_power_levels: bool
    """v10+: power level values must be integers, not strings."""
    implicit_room_creator: bool
    """v11+: the creator is the create event's sender; `content.creator` is gone."""
    room_id_is_create_event_id: bool
    """v12+: the room id is the create event's id with `!`; no `room_id` on create."""
    privileged_creators: bool
    """v12+: creators (sender + `additional_creators`) have infinite power."""

    @property
    def event_id_in_event(self) -> bool:
        return self.event_format is EventFormat.V1

    @property
    def redacts_in_content(self) -> bool:
        """v11+: `m.room.redaction` names its target in `content.redacts`, not top-level."""
        return self.redaction_rules is RedactionRules.V11


def _version(identifier: str, number: int) -> RoomVersion:
    """The properties of stable room version `number`, from the spec's changelogs."""
    if number <= 2:
        event_format = EventFormat.V1
    elif number == 3:
        event_format = EventFormat.V2
    else:
        event_format = EventFormat.V3
    if number >= 11:
        redaction_rules = RedactionRules.V11
    elif number >= 9:
        redaction_rules = RedactionRules.V9
    elif number == 8:
        redaction_rules = RedactionRules.V8
    elif number >= 6:
        redaction_rules = RedactionRules.V6
    else:
        redaction_rules = RedactionRules.V1
    if number == 1:
        state_resolution = StateResolution.V1
    elif number >= 12:
        state_resolution = StateResolution.V2_1
    else:
        state_resolution = StateResolution.V2
    return RoomVersion(
        identifier=identifier,
        stable=True,
        event_format=event_format,
        state_resolution=state_resolution,
        redaction_rules=redaction_rules,
        enforce_key_validity=number >= 5,
        special_case_aliases_auth=number <= 5,
        strict_canonical_json=number >= 6,
        limit_notifications_power_levels=number >= 6,
        knock_join_rule=number >= 7,
        restricted_join_rule=number >= 8,
        knock_restricted_join_rule=number >= 10,
        integer_power_levels=number >= 10,
        implicit_room_creator=number >= 11,
        room_id_is_create_event_id=number >= 12,
        privileged_creators=number >= 12,
    )


KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    str(number): _version(str(number), number) for number in range(1, 13)
}
"""Every room version this server understands, by identifier."""

DEFAULT_ROOM_VERSION = "10"
"""Conduit's documented default for `default_room_version`."""


class UnsupportedRoomVersion(ValueError):
    def __init__(self, identifier: str) -> None:
        super().__init__(f"room version {identifier!r} is not supported by this server")
        self.identifier = identifier


def get_room_version(identifier: str) -> RoomVersion:
    """The `RoomVersion` for `identifier`; `UnsupportedRoomVersion` if unknown."""
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except (KeyError, TypeError):
        raise UnsupportedRoomVersion(str(identifier)) from None
