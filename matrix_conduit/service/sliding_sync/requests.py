"""A sliding sync request body, checked: lists, room subscriptions, extensions.

Spec: MSC4186 ("Request Body") in the shape clients send to the unstable
endpoint (MSC3575's: `ranges`, `required_state` as `[type, state_key]` pairs
with `*`, `$LAZY` and `$ME`). Every field that is not what the proposal says
gets 400 `M_INVALID_PARAM` (or `M_BAD_JSON` for the wrong JSON type) naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import MatrixError

MAX_LISTS = 100
MAX_TIMELINE_LIMIT = 100
MAX_RANGE_END = 1_000_000
MAX_RANGES = 10
MAX_SUBSCRIPTIONS = 500
MAX_REQUIRED_STATE = 100
WILDCARD = "*"
LAZY = "$LAZY"
ME = "$ME"
EXTENSIONS = ("to_device", "e2ee", "account_data", "receipts", "typing")


def _invalid(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def _bad_type(name: str, kind: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", f"`{name}` must be {kind}.")


@dataclass(frozen=True)
class RoomConfig:
    """What to send of a room: `timeline_limit` events and the `required_state` pairs."""

    timeline_limit: int = 0
    required_state: tuple[tuple[str, str], ...] = ()

    def combined(self, other: RoomConfig) -> RoomConfig:
        """The superset of two configs (MSC4186 "Combining room configs")."""
        pairs = dict.fromkeys(self.required_state + other.required_state)
        return RoomConfig(max(self.timeline_limit, other.timeline_limit), tuple(pairs))

    def to_json(self) -> list[Any]:
        return [self.timeline_limit, [list(pair) for pair in self.required_state]]

    @classmethod
    def from_json(cls, data: list[Any]) -> RoomConfig:
        return cls(int(data[0]), tuple((str(t), str(k)) for t, k in data[1]))


@dataclass(frozen=True)
class Filters:
    is_dm: bool | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()
    spaces: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        return self == Filters()


@dataclass(frozen=True)
class ListRequest:
    ranges: tuple[tuple[int, int], ...] | None
    """Inclusive index ranges (None: every matching room)."""
    config: RoomConfig
    filters: Filters = field(default_factory=Filters)


@dataclass(frozen=True)
class ExtensionRequest:
    enabled: bool
    since: str | None = None
    limit: int | None = None
    lists: tuple[str, ...] | None = None
    rooms: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SlidingSyncBody:
    conn_id: str
    lists: dict[str, ListRequest]
    subscriptions: dict[str, RoomConfig]
    extensions: dict[str, ExtensionRequest]


def _bool(data: dict[str, Any], key: str, where: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise _bad_type(f"{where}.{key}", "a boolean")
    return value


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(name, "an integer")
    if not low <= value <= high:
        raise _invalid(f"`{name}` must be between {low} and {high}.")
    return value


def _strings(value: Any, name: str, *, nullable: bool = False) -> tuple[Any, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) or (nullable and item is None) for item in value
    ):
        raise _bad_type(name, "a list of strings" + (" or nulls" if nullable else ""))
    return tuple(value)


def _or_empty(value: Any) -> Any:
    """An absent or null section is an empty one; anything else is checked as given."""
    return {} if value is None else value


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_type(name, "an object")
    return value


def parse_required_state(value: Any, name: str) -> tuple[tuple[str, str], ...]:
    """`[[type, state_key], ...]`, `*` for any; `$LAZY` and `$ME` as state keys."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_REQUIRED_STATE:
        raise _bad_type(name, f"a list of at most {MAX_REQUIRED_STATE} [type, state_key] pairs")
    pairs = []
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise _bad_type(name, "a list of [type, state_key] string pairs")
        pairs.append((pair[0], pair[1]))
    return tuple(dict.fromkeys(pairs))


def parse_room_config(data: dict[str, Any], name: str) -> RoomConfig:
    limit = data.get("timeline_limit", 0)
    return RoomConfig(
        _int(limit, f"{name}.timeline_limit", 0, MAX_TIMELINE_LIMIT),
        parse_required_state(data.get("required_state"), f"{name}.required_state"),
    )


def _parse_ranges(data: dict[str, Any], name: str) -> tuple[tuple[int, int], ...] | None:
    if "ranges" in data:
        raw = data["ranges"]
    elif "range" in data:  # MSC4186's later text: one range
        raw = [data["range"]]
    else:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_RANGES:
        raise _bad_type(f"{name}.ranges", f"a list of at most {MAX_RANGES} [start, end] pairs")
    ranges = []
    for pair in raw:
        if not isinstance(pair, list) or len(pair) != 2:
            raise _bad_type(f"{name}.ranges", "a list of [start, end] pairs")
        start = _int(pair[0], f"{name}.ranges", 0, MAX_RANGE_END)
        end = _int(pair[1], f"{name}.ranges", 0, MAX_RANGE_END)
        if end < start:
            raise _invalid(f"`{name}.ranges`: a range ends before it starts ({start} > {end}).")
        ranges.append((start, end))
    return tuple(ranges)


def _parse_filters(value: Any, name: str) -> Filters:
    if value is None:
        return Filters()
    data = _object(value, name)
    return Filters(
        is_dm=_bool(data, "is_dm", name),
        is_encrypted=_bool(data, "is_encrypted", name),
        is_invite=_bool(data, "is_invite", name),
        room_types=(
            _strings(data["room_types"], f"{name}.room_types", nullable=True)
            if data.get("room_types") is not None
            else None
        ),
        not_room_types=_strings(
            data.get("not_room_types") or [], f"{name}.not_room_types", nullable=True
        ),
        tags=_strings(data["tags"], f"{name}.tags") if data.get("tags") is not None else None,
        not_tags=_strings(data.get("not_tags") or [], f"{name}.not_tags"),
        spaces=_strings(data["spaces"], f"{name}.spaces")
        if data.get("spaces") is not None
        else None,
    )


def _parse_extension(name: str, value: Any) -> ExtensionRequest:
    data = _object(value, f"extensions.{name}")
    since = data.get("since")
    if since is not None and not isinstance(since, str):
        raise _bad_type(f"extensions.{name}.since", "a string")
    limit = data.get("limit")
    return ExtensionRequest(
        enabled=bool(_bool(data, "enabled", f"extensions.{name}")),
        since=since,
        limit=_int(limit, f"extensions.{name}.limit", 1, 1000) if limit is not None else None,
        lists=_strings(data["lists"], f"extensions.{name}.lists") if "lists" in data else None,
        rooms=_strings(data["rooms"], f"extensions.{name}.rooms") if "rooms" in data else None,
    )


def merged_sticky(body: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """`lists`, `extensions` and `room_subscriptions` with what the connection's last
    request said filled in.

    MSC3575's sticky parameters: a list (by name) or an extension that omits a
    field keeps its value from before, a room subscription lasts until
    `unsubscribe_rooms` names it; MSC4186 clients send everything anyway.
    """
    merged = dict(body)
    subscriptions = body.get("room_subscriptions")
    if isinstance(subscriptions, dict) or subscriptions is None:
        # MSC3575 clients (matrix-js-sdk) send a subscription once and end it with
        # `unsubscribe_rooms`; those that send all of them each time lose nothing.
        kept = previous.get("room_subscriptions") or {}
        merged_subscriptions = {**kept, **(subscriptions or {})}
        unsubscribe = body.get("unsubscribe_rooms")
        if unsubscribe is not None:
            for room_id in _strings(unsubscribe, "unsubscribe_rooms"):
                merged_subscriptions.pop(room_id, None)
        merged["room_subscriptions"] = merged_subscriptions
    for section in ("lists", "extensions"):
        new = body.get(section)
        old = previous.get(section) or {}
        if new is None and section == "extensions":
            merged[section] = old
            continue
        if not isinstance(new, dict):
            continue
        merged[section] = {
            name: {**old[name], **value}
            if isinstance(value, dict) and isinstance(old.get(name), dict)
            else value
            for name, value in new.items()
        }
    return merged


def parse_body(body: dict[str, Any]) -> SlidingSyncBody:
    """The request (already merged with the connection's sticky parameters)."""
    conn_id = body.get("conn_id", "")
    if not isinstance(conn_id, str) or len(conn_id) > 255:
        raise _bad_type("conn_id", "a string of at most 255 characters")
    raw_lists = _object(_or_empty(body.get("lists")), "lists")
    if len(raw_lists) > MAX_LISTS:
        raise _invalid(f"At most {MAX_LISTS} lists.")
    lists = {}
    for list_name, value in raw_lists.items():
        where = f"lists.{list_name}"
        data = _object(value, where)
        lists[list_name] = ListRequest(
            _parse_ranges(data, where),
            parse_room_config(data, where),
            _parse_filters(data.get("filters"), f"{where}.filters"),
        )
    raw_subscriptions = _object(_or_empty(body.get("room_subscriptions")), "room_subscriptions")
    if len(raw_subscriptions) > MAX_SUBSCRIPTIONS:
        raise _invalid(f"At most {MAX_SUBSCRIPTIONS} room subscriptions.")
    subscriptions = {
        room_id: parse_room_config(
            _object(value, f"room_subscriptions.{room_id}"), f"room_subscriptions.{room_id}"
        )
        for room_id, value in raw_subscriptions.items()
    }
    raw_extensions = _object(_or_empty(body.get("extensions")), "extensions")
    extensions = {
        name: _parse_extension(name, value)
        for name, value in raw_extensions.items()
        if name in EXTENSIONS
    }
    return SlidingSyncBody(conn_id, lists, subscriptions, extensions)
