"""Event filters: which events a client asked for.

Spec: `content/client-server-api/_index.md` ("Filtering"),
`data/api/client-server/definitions/event_filter.yaml`,
`room_event_filter.yaml` and `sync_filter.yaml`. Type and sender patterns may
use `*` as a wildcard. Parsing is strict about types (a filter is client
input) and forgiving about unknown keys (filters evolve).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .ids import is_valid_room_id, is_valid_user_id


class InvalidFilter(ValueError):
    """The filter JSON is not of the spec's shape; the message names the key."""


@lru_cache(maxsize=1024)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob))


def _matches_any(value: str, patterns: Sequence[str]) -> bool:
    return any(_pattern(pattern).match(value) for pattern in patterns)


def _string_list(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidFilter(f"{where}{key} must be a list of strings")
    return tuple(value)


def _id_list(
    data: Mapping[str, Any], key: str, where: str, is_valid: Callable[[object], bool], kind: str
) -> tuple[str, ...] | None:
    """A list of room or user ids (filter.yaml): a malformed one is refused, not
    silently matched against nothing."""
    values = _string_list(data, key, where)
    for value in values or ():
        if not is_valid(value):
            raise InvalidFilter(f"{where}{key} must list {kind}s; {value!r} is not one")
    return values


def _room_ids(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    return _id_list(data, key, where, is_valid_room_id, "room id")


def _user_ids(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    return _id_list(data, key, where, is_valid_user_id, "user id")


def _bool(data: Mapping[str, Any], key: str, where: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidFilter(f"{where}{key} must be true or false")
    return value


def _object(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidFilter(f"{where}{key} must be an object")
    return value


@dataclass(frozen=True)
class EventFilter:
    """An EventFilter / RoomEventFilter (the room keys are ignored where meaningless)."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False

    @classmethod
    def from_json(cls, data: object, where: str = "") -> EventFilter:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidFilter(f"{where or 'the filter'} must be an object")
        limit = data.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise InvalidFilter(f"{where}limit must be an integer")
        contains_url = data.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise InvalidFilter(f"{where}contains_url must be true or false")
        return cls(
            limit=limit,
            types=_string_list(data, "types", where),
            not_types=_string_list(data, "not_types", where) or (),
            senders=_user_ids(data, "senders", where),
            not_senders=_user_ids(data, "not_senders", where) or (),
            rooms=_room_ids(data, "rooms", where),
            not_rooms=_room_ids(data, "not_rooms", where) or (),
            contains_url=contains_url,
            lazy_load_members=_bool(data, "lazy_load_members", where),
            include_redundant_members=_bool(data, "include_redundant_members", where),
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def matches(self, event: Mapping[str, Any]) -> bool:
        event_type = event.get("type", "")
        sender = event.get("sender", "")
        if self.not_types and _matches_any(event_type, self.not_types):
            return False
        if self.types is not None and not _matches_any(event_type, self.types):
            return False
        if sender in self.not_senders:
            return False
        if self.senders is not None and sender not in self.senders:
            return False
        room_id = event.get("room_id")
        if isinstance(room_id, str) and not self.allows_room(room_id):
            return False
        if self.contains_url is not None:
            has_url = isinstance((event.get("content") or {}).get("url"), str)
            if has_url != self.contains_url:
                return False
        return True

    def limit_or(self, default: int, maximum: int) -> int:
        limit = self.limit if self.limit is not None else default
        return max(0, min(limit, maximum))


@dataclass(frozen=True)
class RoomFilter:
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    timeline: EventFilter = field(default_factory=EventFilter)
    state: EventFilter = field(default_factory=EventFilter)
    ephemeral: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


@dataclass(frozen=True)
class Filter:
    """A whole sync Filter (`POST /user/{userId}/filter`)."""

    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    room: RoomFilter = field(default_factory=RoomFilter)

    @classmethod
    def from_json(cls, data: object) -> Filter:
        if not isinstance(data, dict):
            raise InvalidFilter("the filter must be a JSON object")
        event_format = data.get("event_format", "client")
        if event_format not in ("client", "federation"):
            raise InvalidFilter('event_format must be "client" or "federation"')
        room = _object(data, "room", "")
        return cls(
            event_fields=_string_list(data, "event_fields", ""),
            event_format=event_format,
            presence=EventFilter.from_json(_object(data, "presence", ""), "presence."),
            account_data=EventFilter.from_json(_object(data, "account_data", ""), "account_data."),
            room=RoomFilter(
                rooms=_room_ids(room, "rooms", "room."),
                not_rooms=_room_ids(room, "not_rooms", "room.") or (),
                include_leave=_bool(room, "include_leave", "room."),
                timeline=EventFilter.from_json(
                    _object(room, "timeline", "room."), "room.timeline."
                ),
                state=EventFilter.from_json(_object(room, "state", "room."), "room.state."),
                ephemeral=EventFilter.from_json(
                    _object(room, "ephemeral", "room."), "room.ephemeral."
                ),
                account_data=EventFilter.from_json(
                    _object(room, "account_data", "room."), "room.account_data."
                ),
            ),
        )


def select_fields(event: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """`event_fields`: keep only the named (dot-separated, `\\.`-escaped) fields."""
    result: dict[str, Any] = {}
    for path in fields:
        parts = [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", path)]
        source: Any = event
        for part in parts:
            if not isinstance(source, Mapping) or part not in source:
                break
            source = source[part]
        else:
            target = result
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = source
    return result
