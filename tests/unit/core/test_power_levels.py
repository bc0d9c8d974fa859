"""What a power level means: parsing per room version, defaults, and the questions
the rest of the server asks (may this user send, redact, invite, kick, ban, notify?).

Spec: `data/event-schemas/schema/m.room.power_levels.yaml` (defaults, creator 100
without a power levels event), client-server API § Permissions, server-server
API § Definitions, `content/rooms/fragments/v1-stringy-power-levels.md`,
`v1-floaty-power-levels.md`, `v10.md` (integers only), `v12.md` (infinite creators).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from matrix_conduit.core.power_levels import (
    CREATOR_POWER_LEVEL,
    InvalidPowerLevels,
    MalformedPart,
    PowerLevels,
    creator_of,
    parse_power_level,
    privileged_creators_of,
)
from matrix_conduit.core.room_versions import RoomVersion

from .auth_tables import ALICE, ALL_VERSIONS, BOB, CAROL, DAVE, versions

# value, versions where it is a level, the level (elsewhere: not a level)
PARSE_CASES: list[tuple[Any, str, int]] = [
    (50, "1+", 50),
    (-3, "1+", -3),
    (0, "1+", 0),
    (2**53 - 1, "1+", 2**53 - 1),
    ("50", "1-9", 50),
    ("-10", "1-9", -10),
    ("+100", "1-9", 100),
    ("000100", "1-9", 100),
    (" 00100 ", "1-9", 100),
    ("\t+100\n", "1-9", 100),
    (50.9, "1-5", 50),
    (-1.5, "1-5", -1),
    (5.114698e4, "1-5", 51146),
    (50.0, "1-5", 50),
]

NEVER_LEVELS: list[Any] = [
    True,
    False,
    None,
    "",
    " ",
    "+",
    "-",
    "+-5",
    "5.0",
    "5e1",
    "1_000",
    "0x10",
    "١٠",
    "fifty",
    "50 50",
    math.inf,
    -math.inf,
    math.nan,
    [50],
    {"level": 50},
]


@pytest.mark.parametrize(("value", "where", "level"), PARSE_CASES, ids=repr)
def test_a_value_is_a_level_exactly_where_the_spec_allows_it(
    value: Any, where: str, level: int
) -> None:
    allowed = {version.identifier for version in versions(where)}
    for version in ALL_VERSIONS:
        expected = level if version.identifier in allowed else None
        assert parse_power_level(value, version) == expected, f"v{version.identifier}"


@pytest.mark.parametrize("value", NEVER_LEVELS, ids=repr)
def test_values_that_are_never_levels(value: Any) -> None:
    for version in ALL_VERSIONS:
        assert parse_power_level(value, version) is None, f"v{version.identifier}"


def test_parsed_levels_are_plain_integers() -> None:
    for version in versions("1-5"):
        level = parse_power_level(" 7 ", version)
        assert type(level) is int
        assert type(parse_power_level(7.9, version)) is int


# --- defaults --------------------------------------------------------------------------------


def _create(version: RoomVersion, sender: str = ALICE, **content: Any) -> dict[str, Any]:
    if not version.implicit_room_creator:
        content.setdefault("creator", sender)
    return {"type": "m.room.create", "sender": sender, "state_key": "", "content": content}


def _power_levels_event(**content: Any) -> dict[str, Any]:
    return {"type": "m.room.power_levels", "state_key": "", "sender": ALICE, "content": content}


each_version = pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")


@each_version
def test_the_spec_defaults_apply_when_the_content_is_empty(version: RoomVersion) -> None:
    levels = PowerLevels.from_content({}, version)
    assert (levels.ban, levels.kick, levels.redact, levels.invite) == (50, 50, 50, 0)
    assert levels.event_level("m.room.message", is_state=False) == 0
    assert levels.event_level("m.room.name", is_state=True) == 50
    assert levels.user_level(BOB) == 0
    assert levels.notification_level("room") == 50


@each_version
def test_without_power_levels_others_have_the_defaults(version: RoomVersion) -> None:
    levels = PowerLevels.from_state(None, _create(version), version)
    assert levels.user_level(BOB) == 0
    assert levels.event_level("m.room.name", is_state=True) == 50
    assert levels.ban == 50


@pytest.mark.parametrize("version", versions("1-11"), ids=lambda v: f"v{v.identifier}")
def test_before_v12_the_creator_has_100_without_power_levels(version: RoomVersion) -> None:
    levels = PowerLevels.from_state(None, _create(version), version)
    assert levels.user_level(ALICE) == 100


@pytest.mark.parametrize("version", versions("1-10"), ids=lambda v: f"v{v.identifier}")
def test_before_v11_content_creator_is_the_creator(version: RoomVersion) -> None:
    create = _create(version, ALICE, creator=BOB)
    assert creator_of(create, version) == BOB
    levels = PowerLevels.from_state(None, create, version)
    assert (levels.user_level(BOB), levels.user_level(ALICE)) == (100, 0)


@pytest.mark.parametrize("version", versions("11+"), ids=lambda v: f"v{v.identifier}")
def test_from_v11_the_sender_is_the_creator(version: RoomVersion) -> None:
    create = _create(version, ALICE, creator=BOB)
    assert creator_of(create, version) == ALICE


@pytest.mark.parametrize("version", versions("1-11"), ids=lambda v: f"v{v.identifier}")
def test_before_v12_power_levels_decide_the_creators_level(version: RoomVersion) -> None:
    levels = PowerLevels.from_state(
        _power_levels_event(users={BOB: 100}), _create(version), version
    )
    assert levels.user_level(ALICE) == 0
    assert not levels.creators


@pytest.mark.parametrize("version", versions("12"), ids=lambda v: f"v{v.identifier}")
def test_v12_creators_are_infinite_with_or_without_power_levels(version: RoomVersion) -> None:
    create = _create(version, ALICE, additional_creators=[BOB])
    for event in (None, _power_levels_event(users={CAROL: 100}, users_default=10)):
        levels = PowerLevels.from_state(event, create, version)
        assert levels.user_level(ALICE) == CREATOR_POWER_LEVEL
        assert levels.user_level(BOB) == CREATOR_POWER_LEVEL
        assert levels.user_level(CAROL) < CREATOR_POWER_LEVEL
    assert privileged_creators_of(create, version) == {ALICE, BOB}


@pytest.mark.parametrize("version", versions("1-11"), ids=lambda v: f"v{v.identifier}")
def test_before_v12_additional_creators_mean_nothing(version: RoomVersion) -> None:
    create = _create(version, ALICE, additional_creators=[BOB])
    assert privileged_creators_of(create, version) == frozenset()
    assert PowerLevels.from_state(None, create, version).user_level(BOB) == 0


# --- questions -------------------------------------------------------------------------------

V10 = versions("10")[0]


def _levels(**content: Any) -> PowerLevels:
    return PowerLevels.from_content(content, V10)


def test_event_level_prefers_events_then_the_state_or_message_default() -> None:
    levels = _levels(events={"m.room.name": 80, "m.reaction": 5}, state_default=40)
    assert levels.event_level("m.room.name", is_state=True) == 80
    assert levels.event_level("m.reaction", is_state=False) == 5
    assert levels.event_level("m.room.topic", is_state=True) == 40
    assert levels.event_level("m.room.message", is_state=False) == 0


def test_users_default_applies_to_unlisted_users() -> None:
    levels = _levels(users={ALICE: 100}, users_default=10)
    assert (levels.user_level(ALICE), levels.user_level(BOB)) == (100, 10)


def test_can_send_at_or_above_the_required_level() -> None:
    levels = _levels(users={ALICE: 50}, events={"m.room.topic": 50})
    assert levels.can_send(ALICE, "m.room.topic", is_state=True)
    assert not levels.can_send(BOB, "m.room.topic", is_state=True)
    assert levels.can_send(BOB, "m.room.message", is_state=False)


def test_redacting_ones_own_event_needs_only_the_redaction_event_level() -> None:
    levels = _levels(users={ALICE: 10}, events={"m.room.redaction": 10}, redact=50)
    assert levels.can_redact(ALICE, redacting_own=True)
    assert not levels.can_redact(ALICE, redacting_own=False)
    assert not levels.can_redact(BOB, redacting_own=True)


def test_redacting_others_events_needs_the_redact_level_too() -> None:
    levels = _levels(users={ALICE: 50, BOB: 100}, events={"m.room.redaction": 60})
    assert not levels.can_redact(ALICE, redacting_own=False), "redaction event level is 60"
    assert levels.can_redact(BOB, redacting_own=False)


def test_invite_needs_the_invite_level() -> None:
    levels = _levels(users={ALICE: 20}, invite=20)
    assert levels.can_invite(ALICE)
    assert not levels.can_invite(BOB)


@pytest.mark.parametrize(
    ("sender_level", "target_level", "allowed"),
    [(50, 0, True), (50, 49, True), (50, 50, False), (50, 51, False), (49, 0, False)],
)
def test_kick_and_ban_need_the_level_and_more_power_than_the_target(
    sender_level: int, target_level: int, allowed: bool
) -> None:
    levels = _levels(users={ALICE: sender_level, BOB: target_level}, kick=50, ban=50)
    assert levels.can_kick(ALICE, BOB) is allowed
    assert levels.can_ban(ALICE, BOB) is allowed


def test_notification_levels_default_room_to_50_and_know_no_other_key() -> None:
    assert _levels().notification_level("room") == 50
    assert _levels(notifications={"room": 20}).notification_level("room") == 20
    assert _levels(notifications={"custom": 5}).notification_level("custom") == 5
    assert _levels().notification_level("custom") is None


def test_a_v12_creator_kicks_anyone_and_nobody_kicks_a_creator() -> None:
    v12 = versions("12")[0]
    levels = PowerLevels.from_state(
        _power_levels_event(users={BOB: 2**53 - 1}), _create(v12, ALICE), v12
    )
    assert levels.can_kick(ALICE, BOB)
    assert not levels.can_kick(BOB, ALICE)
    assert levels.can_send(ALICE, "m.room.tombstone", is_state=True)


# --- malformed content -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "part"),
    [
        ({"ban": "x"}, MalformedPart.PROPERTIES),
        ({"users_default": True}, MalformedPart.PROPERTIES),
        ({"events": []}, MalformedPart.LEVEL_MAPS),
        ({"events": {"m.room.name": None}}, MalformedPart.LEVEL_MAPS),
        ({"notifications": {"room": "x"}}, MalformedPart.LEVEL_MAPS),
        ({"users": []}, MalformedPart.USERS),
        ({"users": {"alice": 1}}, MalformedPart.USERS),
        ({"users": {DAVE: "x"}}, MalformedPart.USERS),
        ({"ban": "x", "users": {"alice": 1}}, MalformedPart.PROPERTIES),
    ],
    ids=repr,
)
def test_malformed_content_names_the_part_at_fault(content: dict, part: MalformedPart) -> None:
    for version in versions("6+"):
        with pytest.raises(InvalidPowerLevels) as raised:
            PowerLevels.from_content(content, version)
        assert raised.value.part is part


@pytest.mark.parametrize("version", versions("1-5"), ids=lambda v: f"v{v.identifier}")
def test_before_v6_unreadable_notifications_are_left_out(version: RoomVersion) -> None:
    levels = PowerLevels.from_content({"notifications": {"room": "x", "other": 5}}, version)
    assert levels.notification_level("room") == 50
    assert levels.notification_level("other") == 5
    assert PowerLevels.from_content({"notifications": "x"}, version).notifications == {}


def test_only_explicit_values_are_recorded() -> None:
    levels = _levels(ban=10, events={"a": 1}, users={ALICE: 5})
    assert dict(levels.properties) == {"ban": 10}
    assert dict(levels.events) == {"a": 1}
    assert dict(levels.users) == {ALICE: 5}


def test_only_string_additional_creators_count() -> None:
    v12 = versions("12")[0]
    create = _create(v12, ALICE, additional_creators=[["@x:x.example"], BOB, {}, 7])
    assert privileged_creators_of(create, v12) == {ALICE, BOB}
    assert privileged_creators_of(_create(v12, ALICE, additional_creators=BOB), v12) == {ALICE}
