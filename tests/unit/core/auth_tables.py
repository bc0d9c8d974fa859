"""Building blocks for the authorization rule tables: rooms, events, and rule numbers.

A `Room` holds the state an event is judged against and builds events for
it; `rule_number` is the spec's numbering of the rules, transcribed here by
hand from `content/rooms/v*.md` so the tests check `core/auth.py`'s numbering
against an independent copy.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from matrix_conduit.core.auth import Rejection, check_auth
from matrix_conduit.core.room_versions import EventFormat, RoomVersion, get_room_version
from matrix_conduit.core.signing import encode_base64

ALICE = "@alice:a.example"
"""The room's creator."""
BOB = "@bob:b.example"
CAROL = "@carol:c.example"
DAVE = "@dave:a.example"
"""On the creator's server."""
MALLORY = "@mallory:m.example"

ALL_VERSIONS: list[RoomVersion] = [get_room_version(str(number)) for number in range(1, 13)]


def versions(spec: str) -> list[RoomVersion]:
    """Room versions by range: "1-5", "6+", "12", "1-5,12"."""
    chosen: list[RoomVersion] = []
    for part in spec.split(","):
        if part.endswith("+"):
            low, high = int(part[:-1]), 12
        elif "-" in part:
            low, high = (int(bound) for bound in part.split("-"))
        else:
            low = high = int(part)
        chosen += [version for version in ALL_VERSIONS if low <= int(version.identifier) <= high]
    return chosen


# --- the spec's rule numbers -----------------------------------------------------------------

_GROUPS = ("1-2", "3-5", "6", "7", "8-9", "10-11", "12")
"""Room versions whose rules are numbered alike."""

_NUMBERS: Mapping[str, tuple[int | None, ...]] = {
    #                       1-2  3-5   6     7    8-9  10-11  12
    "create": (1, 1, 1, 1, 1, 1, 1),
    "room_id": (None, None, None, None, None, None, 2),
    "auth_events": (2, 2, 2, 2, 2, 2, 3),
    "federate": (3, 3, 3, 3, 3, 3, 4),
    "aliases": (4, 4, None, None, None, None, None),
    "member": (5, 5, 4, 4, 4, 4, 5),
    "sender_joined": (6, 6, 5, 5, 5, 5, 6),
    "third_party_invite": (7, 7, 6, 6, 6, 6, 7),
    "required_power_level": (8, 8, 7, 7, 7, 7, 8),
    "user_state_key": (9, 9, 8, 8, 8, 8, 9),
    "power_levels": (10, 10, 9, 9, 9, 9, 10),
    "redaction": (11, None, None, None, None, None, None),
    # inside "create"
    "create_room_id": (2, 2, 2, 2, 2, 2, 2),
    "create_creator": (4, 4, 4, 4, 4, 4, None),
    "create_additional_creators": (None, None, None, None, None, None, 4),
    # inside "member"
    "authoriser_signature": (None, None, None, None, 2, 2, 2),
    "join": (2, 2, 2, 2, 3, 3, 3),
    "invite": (3, 3, 3, 3, 4, 4, 4),
    "leave": (4, 4, 4, 4, 5, 5, 5),
    "ban": (5, 5, 5, 5, 6, 6, 6),
    "knock": (None, None, None, 6, 7, 7, 7),
    "unknown": (6, 6, 6, 7, 8, 8, 8),
    # inside "join"
    "restricted": (None, None, None, None, 5, 5, 5),
    "join_otherwise": (6, 6, 6, 6, 7, 7, 7),
    # inside "power_levels"
    "pl_properties_integers": (None, None, None, None, None, 1, 1),
    "pl_maps_integers": (None, None, None, None, None, 2, 2),
    "pl_users": (1, 1, 1, 1, 1, 3, 3),
    "pl_creators": (None, None, None, None, None, None, 4),
    "pl_properties": (3, 3, 3, 3, 3, 5, 6),
    "pl_maps_changed": (4, 4, 4, 4, 4, 6, 7),
    "pl_maps_added": (5, 5, 5, 5, 5, 7, 8),
    "pl_users_changed": (6, 6, 6, 6, 6, 8, 9),
    "pl_users_added": (7, 7, 7, 7, 7, 9, 10),
}
"""Where each rule sits, per group of room versions (None: the rule does not exist)."""


def _group_index(version: RoomVersion) -> int:
    number = int(version.identifier)
    for index, group in enumerate(_GROUPS):
        low, _, high = group.partition("-")
        if int(low) <= number <= int(high or low):
            return index
    raise AssertionError(f"no group for room version {number}")


def rule_number(version: RoomVersion, *parts: str | int) -> str:
    """The spec's number of a rule: `rule_number(v8, "member", "join", 3)` is "4.3.3"."""
    numbers = []
    for part in parts:
        if isinstance(part, int):
            numbers.append(part)
            continue
        number = _NUMBERS[part][_group_index(version)]
        assert number is not None, f"rule {part} does not exist in v{version.identifier}"
        numbers.append(number)
    return ".".join(map(str, numbers))


def assert_rejected_by(rejection: Rejection | None, number: str) -> None:
    assert rejection is not None, f"expected rule {number} to reject, but the event was allowed"
    assert rejection.rule.split(" ")[0] == number, rejection
    assert rejection.reason


# --- rooms and events ------------------------------------------------------------------------

_counter = itertools.count()


def _new_event_id(version: RoomVersion, server_name: str) -> str:
    """A fresh event ID in the room version's format."""
    serial = next(_counter)
    if version.event_format is EventFormat.V1:
        return f"${serial}:{server_name}"
    digest = hashlib.sha256(str(serial).encode()).digest()
    return "$" + encode_base64(digest, urlsafe=version.event_format is EventFormat.V3)


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1]


class Room:
    """A room's state, and events built to be checked against it."""

    def __init__(
        self,
        version: RoomVersion,
        *,
        creator: str = ALICE,
        create_content: Mapping[str, Any] | None = None,
    ) -> None:
        self.version = version
        self.creator = creator
        self.room_id = f"!room:{server_of(creator)}"
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        content: dict[str, Any] = {"room_version": version.identifier}
        if not version.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        create = self.build("m.room.create", creator, content, state_key="")
        create["prev_events"] = []
        if version.room_id_is_create_event_id:
            del create["room_id"]
            self.room_id = "!" + create["event_id"][1:]
        self.state[("m.room.create", "")] = create
        self.create = create

    def build(
        self,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """An event of this room, not yet part of its state."""
        event: dict[str, Any] = {
            "event_id": _new_event_id(self.version, server_of(sender)),
            "type": event_type,
            "room_id": self.room_id,
            "sender": sender,
            "content": dict(content),
            "prev_events": [],
            "auth_events": [],
            "depth": 10,
            "origin_server_ts": 1_700_000_000_000,
        }
        if state_key is not None:
            event["state_key"] = state_key
        event.update(fields)
        return event

    def set(self, event: dict[str, Any]) -> dict[str, Any]:
        """Make a state event part of the state."""
        self.state[(event["type"], event["state_key"])] = event
        return event

    def set_state(
        self, event_type: str, content: Mapping[str, Any], *, state_key: str = "", sender=ALICE
    ) -> dict[str, Any]:
        return self.set(self.build(event_type, sender, content, state_key=state_key))

    def set_member(
        self, user_id: str, membership: str, *, sender: str | None = None, **content: Any
    ) -> dict[str, Any]:
        return self.set_state(
            "m.room.member",
            {"membership": membership, **content},
            state_key=user_id,
            sender=sender or user_id,
        )

    def set_power_levels(self, **content: Any) -> dict[str, Any]:
        return self.set_state("m.room.power_levels", content)

    def set_join_rule(self, join_rule: str, **content: Any) -> dict[str, Any]:
        return self.set_state("m.room.join_rules", {"join_rule": join_rule, **content})

    def member_event(
        self, sender: str, target: str, membership: str, **content: Any
    ) -> dict[str, Any]:
        return self.build(
            "m.room.member", sender, {"membership": membership, **content}, state_key=target
        )

    def message(self, sender: str, event_type: str = "m.room.message") -> dict[str, Any]:
        return self.build(event_type, sender, {"body": "hello"})

    def check(self, event: Mapping[str, Any], **options: Any) -> Rejection | None:
        return check_auth(event, self.state, self.version, **options)


def established_room(version: RoomVersion, join_rule: str = "invite") -> Room:
    """A room after the usual creation: creator joined, power levels, join rules.

    The creator (ALICE) is an admin: 100 in v1–v11, infinite as a v12 creator.
    DAVE is a moderator at 50. Nobody else is in the room yet.
    """
    room = Room(version)
    room.set_member(ALICE, "join")
    users = {DAVE: 50} if version.privileged_creators else {ALICE: 100, DAVE: 50}
    room.set_power_levels(users=users)
    room.set_join_rule(join_rule)
    room.set_member(DAVE, "join")
    return room


@dataclass(frozen=True)
class Case:
    """One row of a rule table: a room, an event, and the expected outcome.

    `expect` is None when the event must be allowed, else the parts of the
    rule that must reject it (see `rule_number`).
    """

    name: str
    room_versions: list[RoomVersion]
    event: Callable[[Room], Mapping[str, Any]]
    expect: tuple[str | int, ...] | None = None
    setup: Callable[[RoomVersion], Room] = established_room

    def run(self, version: RoomVersion, **options: Any) -> None:
        room = self.setup(version)
        rejection = room.check(self.event(room), **options)
        if self.expect is None:
            assert rejection is None, rejection
        else:
            assert_rejected_by(rejection, rule_number(version, *self.expect))


def cases_by_version(cases: Iterable[Case]) -> Any:
    """Pytest parameters: every case once per room version it applies to."""
    return [
        pytest.param(case, version, id=f"{case.name}-v{version.identifier}")
        for case in cases
        for version in case.room_versions
    ]


def room_with(
    join_rule: str = "invite",
    members: Mapping[str, str] | None = None,
    **power_levels: Any,
) -> Callable[[RoomVersion], Room]:
    """A setup for `Case`: the established room, with these memberships and power levels.

    `power_levels` are merged over the established room's (ALICE 100, DAVE 50).
    """

    def setup(version: RoomVersion) -> Room:
        room = established_room(version, join_rule)
        for user_id, membership in (members or {}).items():
            sender = user_id if membership in ("join", "leave", "knock") else ALICE
            room.set_member(user_id, membership, sender=sender)
        if power_levels:
            current = room.state[("m.room.power_levels", "")]["content"]
            users = {**current.get("users", {}), **power_levels.get("users", {})}
            room.set_power_levels(**{**current, **power_levels, "users": users})
        return room

    return setup
