"""Power levels: who may do what in a room, as `m.room.power_levels` says.

The one place that knows what a power level means; the authorization rules
(`core/auth.py`), the client API and push rules all ask this module.

Spec:
- client-server API, "Permissions" and the `m.room.power_levels` event
  (`data/event-schemas/schema/m.room.power_levels.yaml`): the defaults
  (`users_default` 0, `events_default` 0, `state_default` 50, `ban`/`kick`/
  `redact` 50, `invite` 0, `notifications.room` 50), and "if the room contains
  no `m.room.power_levels` event, the room's creator has a power level of 100".
- server-server API, "Checks performed on receipt of a PDU" / Definitions:
  required power level, invite/kick/ban/redact level.
- room versions: `fragments/v1-stringy-power-levels.md` (v1–v9 accept integers
  written as strings), `fragments/v1-floaty-power-levels.md` (v1–v5 accept floats,
  truncated), `v10.md` (values must be integers), `v12.md` (room creators — the
  create event's `sender` plus `additional_creators` — have infinite power).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from matrix_conduit.core.errors import preview
from matrix_conduit.core.ids import is_valid_user_id
from matrix_conduit.core.room_versions import RoomVersion

CREATOR_POWER_LEVEL = math.inf
"""The power level of a room creator in room versions with privileged creators (v12+)."""

DEFAULT_CREATOR_POWER_LEVEL = 100
"""The creator's level in rooms v1–v11 while the room has no `m.room.power_levels` event."""

PROPERTY_DEFAULTS: Mapping[str, int] = MappingProxyType(
    {
        "users_default": 0,
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
    }
)
"""The integer-valued top-level properties of the content and their defaults."""

NOTIFICATION_DEFAULTS: Mapping[str, int] = MappingProxyType({"room": 50})
"""Notification levels that have a default when the content does not set them."""

_INTEGER_STRING = re.compile(r"[+-]?[0-9]+")
_EMPTY: Mapping[str, int] = MappingProxyType({})

PowerLevel = int | float
"""An integer, or `CREATOR_POWER_LEVEL` (infinity) for a privileged room creator."""


class MalformedPart(Enum):
    """Which part of a power levels content failed to parse (the auth rules name each)."""

    PROPERTIES = "properties"
    """One of `users_default`, `events_default`, `state_default`, `ban`, `kick`, ..."""
    LEVEL_MAPS = "level maps"
    """`events` or `notifications` is not an object whose values are levels."""
    USERS = "users"
    """`users` is not an object from valid user IDs to levels."""


class InvalidPowerLevels(ValueError):
    """A power levels content that this room version does not accept."""

    def __init__(self, part: MalformedPart, message: str) -> None:
        super().__init__(message)
        self.part = part


def parse_power_level(value: object, room_version: RoomVersion) -> int | None:
    """The integer `value` stands for in `room_version`, or None if it is not a level.

    Integers always count; `true`/`false` never do (JSON booleans are not numbers).
    Before v10, strings holding a base-10 integer count (optional sign, leading
    zeroes and surrounding whitespace allowed); before v6, finite floats count,
    truncated at the decimal point.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if room_version.integer_power_levels:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if not _INTEGER_STRING.fullmatch(stripped):
            return None
        try:
            return int(stripped)
        except ValueError:  # more digits than `int` converts: no level anyone means
            return None
    if isinstance(value, float) and not room_version.strict_canonical_json:
        return int(value) if math.isfinite(value) else None
    return None


def creator_of(create_event: Mapping[str, Any], room_version: RoomVersion) -> str | None:
    """The room's original creator: `content.creator` before v11, the `sender` since."""
    if room_version.implicit_room_creator:
        creator = create_event.get("sender")
    else:
        creator = _content(create_event).get("creator")
    return creator if isinstance(creator, str) else None


def privileged_creators_of(
    create_event: Mapping[str, Any] | None, room_version: RoomVersion
) -> frozenset[str]:
    """The users with infinite power: v12's `sender` plus `additional_creators`; else none."""
    if create_event is None or not room_version.privileged_creators:
        return frozenset()
    additional = _content(create_event).get("additional_creators", [])
    candidates = [create_event.get("sender"), *(additional if isinstance(additional, list) else [])]
    return frozenset(creator for creator in candidates if isinstance(creator, str))


@dataclass(frozen=True, slots=True)
class PowerLevels:
    """The parsed power levels of a room, with the room version's creator rules applied.

    `properties`, `events`, `notifications` and `users` hold only what the
    content states explicitly (the auth rules compare added/changed/removed
    entries); the methods apply the spec's defaults.
    """

    properties: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    events: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    notifications: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    users: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    creators: frozenset[str] = field(default_factory=frozenset)
    """Privileged creators (v12+): infinite power whatever `users` says."""

    @classmethod
    def from_content(
        cls,
        content: Mapping[str, Any],
        room_version: RoomVersion,
        *,
        creators: frozenset[str] = frozenset(),
    ) -> PowerLevels:
        """Parse an `m.room.power_levels` content; `InvalidPowerLevels` if malformed.

        Checked in the order the v10 rules list them: the top-level properties,
        then `events`/`notifications`, then `users`. Before v6, `notifications`
        plays no part in authorization, so an unreadable entry there is ignored
        rather than held against the whole event.
        """
        properties = {}
        for name in PROPERTY_DEFAULTS:
            if name in content:
                level = parse_power_level(content[name], room_version)
                if level is None:
                    raise InvalidPowerLevels(
                        MalformedPart.PROPERTIES,
                        f"{name} is {preview(content[name])}, which is not a power level "
                        f"in room version {room_version.identifier}",
                    )
                properties[name] = level
        events = _parse_level_map(content, "events", room_version, strict=True)
        notifications = _parse_level_map(
            content,
            "notifications",
            room_version,
            strict=room_version.limit_notifications_power_levels,
        )
        return cls(
            properties=MappingProxyType(properties),
            events=events,
            notifications=notifications,
            users=_parse_users(content, room_version),
            creators=creators,
        )

    @classmethod
    def from_state(
        cls,
        power_levels_event: Mapping[str, Any] | None,
        create_event: Mapping[str, Any] | None,
        room_version: RoomVersion,
    ) -> PowerLevels:
        """The power levels in force given the room's power levels and create events.

        Without a power levels event, rooms v1–v11 give their creator 100 and
        everyone else the defaults; in v12+ the creators are infinite either way.
        """
        creators = privileged_creators_of(create_event, room_version)
        if power_levels_event is not None:
            return cls.from_content(_content(power_levels_event), room_version, creators=creators)
        if room_version.privileged_creators or create_event is None:
            return cls(creators=creators)
        creator = creator_of(create_event, room_version)
        if creator is None:
            return cls()
        return cls(users=MappingProxyType({creator: DEFAULT_CREATOR_POWER_LEVEL}))

    def property_level(self, name: str) -> int:
        """The value of a top-level property (`ban`, `invite`, ...), or its default."""
        return self.properties.get(name, PROPERTY_DEFAULTS[name])

    @property
    def ban(self) -> int:
        return self.property_level("ban")

    @property
    def kick(self) -> int:
        return self.property_level("kick")

    @property
    def redact(self) -> int:
        return self.property_level("redact")

    @property
    def invite(self) -> int:
        return self.property_level("invite")

    def user_level(self, user_id: str) -> PowerLevel:
        """The user's power level: infinite for a privileged creator, else `users` or default."""
        if user_id in self.creators:
            return CREATOR_POWER_LEVEL
        return self.users.get(user_id, self.property_level("users_default"))

    def event_level(self, event_type: str, is_state: bool) -> int:
        """The *required power level* to send an event of this type."""
        default = "state_default" if is_state else "events_default"
        return self.events.get(event_type, self.property_level(default))

    def can_send(self, user_id: str, event_type: str, is_state: bool) -> bool:
        return self.user_level(user_id) >= self.event_level(event_type, is_state)

    def can_redact(self, user_id: str, redacting_own: bool) -> bool:
        """Redacting needs the `m.room.redaction` level; another's event also `redact`."""
        if not self.can_send(user_id, "m.room.redaction", is_state=False):
            return False
        return redacting_own or self.user_level(user_id) >= self.redact

    def can_invite(self, user_id: str) -> bool:
        return self.user_level(user_id) >= self.invite

    def can_kick(self, user_id: str, target: str) -> bool:
        """At the kick level and above the target (a peer cannot kick a peer)."""
        return self._outranks_at(user_id, target, self.kick)

    def can_ban(self, user_id: str, target: str) -> bool:
        """At the ban level and above the target."""
        return self._outranks_at(user_id, target, self.ban)

    def notification_level(self, key: str) -> int | None:
        """The level needed to trigger a notification `key` (`room`: 50); None if undefined."""
        return self.notifications.get(key, NOTIFICATION_DEFAULTS.get(key))

    def _outranks_at(self, user_id: str, target: str, required: int) -> bool:
        level = self.user_level(user_id)
        return level >= required and self.user_level(target) < level


def integer_levels(content: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """A copy of a power levels content with every level written as an integer.

    What a room upgrade carries into the new room: older versions accept
    `" 0100 "` and `50.5` as levels, v10+ only integers (`parse_power_level`).
    Levels this version cannot read are left out; other keys are kept as they are.
    """
    copied = dict(content)
    for name in PROPERTY_DEFAULTS:
        if name in copied:
            level = parse_power_level(copied[name], room_version)
            if level is None:
                del copied[name]
            else:
                copied[name] = level
    for name in ("events", "notifications", "users"):
        value = copied.get(name)
        if isinstance(value, Mapping):
            levels = ((key, parse_power_level(raw, room_version)) for key, raw in value.items())
            copied[name] = {key: level for key, level in levels if level is not None}
    return copied


def _content(event: Mapping[str, Any]) -> Mapping[str, Any]:
    content = event.get("content")
    return content if isinstance(content, Mapping) else {}


def _parse_level_map(
    content: Mapping[str, Any], name: str, room_version: RoomVersion, *, strict: bool
) -> Mapping[str, int]:
    """`events` or `notifications` as a map of levels (absent: empty).

    Not strict: anything unreadable is left out instead of raising.
    """
    if name not in content:
        return _EMPTY
    value = content[name]
    if not isinstance(value, Mapping):
        if strict:
            raise InvalidPowerLevels(MalformedPart.LEVEL_MAPS, f"{name} is not an object")
        return _EMPTY
    levels = {}
    for key, raw in value.items():
        level = parse_power_level(raw, room_version)
        if level is not None:
            levels[key] = level
        elif strict:
            raise InvalidPowerLevels(
                MalformedPart.LEVEL_MAPS,
                f"{name}[{preview(key)}] is {preview(raw)}, which is not a power level "
                f"in room version {room_version.identifier}",
            )
    return MappingProxyType(levels)


def _parse_users(content: Mapping[str, Any], room_version: RoomVersion) -> Mapping[str, int]:
    if "users" not in content:
        return _EMPTY
    value = content["users"]
    if not isinstance(value, Mapping):
        raise InvalidPowerLevels(MalformedPart.USERS, "users is not an object")
    users = {}
    for user_id, raw in value.items():
        if not is_valid_user_id(user_id):
            raise InvalidPowerLevels(
                MalformedPart.USERS, f"users key {preview(user_id)} is not a user ID"
            )
        level = parse_power_level(raw, room_version)
        if level is None:
            raise InvalidPowerLevels(
                MalformedPart.USERS,
                f"users[{preview(user_id)}] is {preview(raw)}, which is not a power level "
                f"in room version {room_version.identifier}",
            )
        users[user_id] = level
    return MappingProxyType(users)
