"""The `m.room.power_levels` rules: what a power levels event may change, and by whom.

Spec: rule 10 of `content/rooms/fragments/v1-auth-rules.md` and `v3-auth-rules.md`,
rule 9 of `v6.md` (`notifications` joins `events`), `v7.md`, `fragments/v8-auth-rules.md`,
`v10.md` / `v11.md` (9.1, 9.2: integers only), rule 10 of `v12.md` (10.4: creators
may not be listed); `fragments/v1-stringy-power-levels.md`, `v1-floaty-power-levels.md`.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.core.power_levels import PowerLevels
from matrix_conduit.core.room_versions import RoomVersion

from .auth_tables import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    DAVE,
    MALLORY,
    Case,
    Room,
    assert_rejected_by,
    cases_by_version,
    rule_number,
    versions,
)

PEER = "@peer:p.example"
"""A second moderator, at DAVE's level 50."""


def _current_content(version: RoomVersion) -> dict[str, Any]:
    users = {DAVE: 50, PEER: 50, CAROL: 10}
    if not version.privileged_creators:
        users[ALICE] = 100
    return {
        "users": users,
        "users_default": 0,
        "events": {"m.room.name": 50, "m.room.tombstone": 100},
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 60,
        "redact": 50,
        "invite": 0,
        "notifications": {"room": 50, "special": 70},
    }


def _moderated_room(version: RoomVersion) -> Room:
    """ALICE (creator, 100 or infinite), DAVE and PEER at 50, CAROL at 10; kick at 60."""
    room = Room(version)
    for user_id in (ALICE, DAVE, PEER, CAROL):
        room.set_member(user_id, "join")
    room.set_power_levels(**_current_content(version))
    room.set_join_rule("invite")
    return room


def _moderated_room_with(**changes: Any):
    def setup(version: RoomVersion) -> Room:
        room = _moderated_room(version)
        room.set_power_levels(**_merge(_current_content(version), changes))
        return room

    return setup


def _merge(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`current` with `changes`: None removes a key, nested objects merge."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _change(sender: str = DAVE, **changes: Any):
    """A power levels event from `sender` that applies `changes` to the room's current one."""

    def build(room: Room) -> dict[str, Any]:
        content = _merge(room.state[("m.room.power_levels", "")]["content"], changes)
        return room.build("m.room.power_levels", sender, content, state_key="")

    return build


def _replace(content: dict[str, Any], sender: str = DAVE):
    return lambda room: room.build("m.room.power_levels", sender, content, state_key="")


PL = "power_levels"

FORMAT_CASES = [
    Case("unchanged power levels are allowed", ALL_VERSIONS, _change(), setup=_moderated_room),
    Case(
        "users that is not an object is rejected",
        ALL_VERSIONS,
        _change(users=[DAVE]),
        (PL, "pl_users"),
        setup=_moderated_room,
    ),
    Case(
        "users key that is not a user ID is rejected",
        ALL_VERSIONS,
        _change(users={"dave": 0}),
        (PL, "pl_users"),
        setup=_moderated_room,
    ),
    Case(
        "users key with a historical localpart is allowed",
        ALL_VERSIONS,
        _change(users={"@Ünïcode Ü:u.example": 0}),
        setup=_moderated_room,
    ),
    Case(
        "users value that is not a number is rejected",
        ALL_VERSIONS,
        _change(users={CAROL: "ten"}),
        (PL, "pl_users"),
        setup=_moderated_room,
    ),
    Case(
        "users value that is a boolean is rejected",
        ALL_VERSIONS,
        _change(users={CAROL: True}),
        (PL, "pl_users"),
        setup=_moderated_room,
    ),
    Case(
        "users value written as an integer string is allowed before v10",
        versions("1-9"),
        _change(users={CAROL: " +020 "}),
        setup=_moderated_room,
    ),
    Case(
        "users value written as an integer string is rejected from v10",
        versions("10+"),
        _change(users={CAROL: "20"}),
        (PL, "pl_users"),
        setup=_moderated_room,
    ),
    Case(
        "users value written as a decimal string is rejected",
        ALL_VERSIONS,
        _change(users={CAROL: "20.5"}),
        (PL, "pl_users"),
        setup=_moderated_room,
    ),
    Case(
        "users value that is a float is truncated before v6",
        versions("1-5"),
        _change(users={BOB: 50.9}),
        setup=_moderated_room,
    ),
    Case(
        "users value that is a float is rejected from v6",
        versions("6+"),
        _change(users={BOB: 20.0}),
        (PL, "pl_users"),
        setup=_moderated_room,
    ),
    Case(
        "a property written as a string is rejected from v10",
        versions("10+"),
        _change(ban="50"),
        (PL, "pl_properties_integers"),
        setup=_moderated_room,
    ),
    Case(
        "a property written as a string is allowed before v10",
        versions("1-9"),
        _change(ban=" 0050"),
        setup=_moderated_room,
    ),
    Case(
        "events that is not an object is rejected from v10",
        versions("10+"),
        _change(events=["m.room.name"]),
        (PL, "pl_maps_integers"),
        setup=_moderated_room,
    ),
    Case(
        "an events value written as a string is rejected from v10",
        versions("10+"),
        _change(events={"m.room.topic": "50"}),
        (PL, "pl_maps_integers"),
        setup=_moderated_room,
    ),
    Case(
        "a notifications value written as a string is rejected from v10",
        versions("10+"),
        _change(notifications={"room": "50"}),
        (PL, "pl_maps_integers"),
        setup=_moderated_room,
    ),
    Case(
        "events and notifications written as strings are allowed before v10",
        versions("1-9"),
        _change(events={"m.room.topic": "50"}, notifications={"room": "050"}),
        setup=_moderated_room,
    ),
    Case(
        "unreadable notifications are ignored before v6 (they are not authorised)",
        versions("1-5"),
        _change(notifications={"room": "lots"}),
        setup=_moderated_room,
    ),
    Case(
        "the property check comes before the users check from v10",
        versions("10+"),
        _change(ban="50", users={CAROL: "x"}),
        (PL, "pl_properties_integers"),
        setup=_moderated_room,
    ),
    Case(
        "the events check comes before the users check from v10",
        versions("10+"),
        _change(events={"m.room.topic": "x"}, users={CAROL: "x"}),
        (PL, "pl_maps_integers"),
        setup=_moderated_room,
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(FORMAT_CASES))
def test_power_levels_content_format(case: Case, version: RoomVersion) -> None:
    case.run(version)


@pytest.mark.parametrize(
    "changes",
    [{"ban": "fifty"}, {"events": {"m.room.topic": "high"}}, {"events": "none"}],
    ids=["property", "events value", "events object"],
)
@pytest.mark.parametrize("version", versions("1-9"), ids=lambda v: f"v{v.identifier}")
def test_before_v10_unreadable_levels_break_the_stringy_format_rule(
    version: RoomVersion, changes: dict[str, Any]
) -> None:
    room = _moderated_room(version)
    rejection = room.check(_change(**changes)(room))
    assert rejection is not None
    assert rejection.rule.startswith("power_levels:"), "not a numbered rule before v10"


@pytest.mark.parametrize("version", versions("6-9"), ids=lambda v: f"v{v.identifier}")
def test_from_v6_unreadable_notifications_are_rejected(version: RoomVersion) -> None:
    room = _moderated_room(version)
    rejection = room.check(_change(notifications={"room": "lots"})(room))
    assert rejection is not None
    assert rejection.rule.startswith("power_levels:")


# --- v12: creators are not listed ------------------------------------------------------------


def _room_with_additional_creator(version: RoomVersion) -> Room:
    room = Room(version, create_content={"additional_creators": [BOB]})
    for user_id in (ALICE, BOB, DAVE):
        room.set_member(user_id, "join")
    room.set_power_levels(users={DAVE: 50})
    return room


CREATOR_CASES = [
    Case(
        "users listing the creator is rejected in v12",
        versions("12"),
        _change(ALICE, users={ALICE: 100}),
        (PL, "pl_creators"),
        setup=_room_with_additional_creator,
    ),
    Case(
        "users listing an additional creator is rejected in v12",
        versions("12"),
        _change(ALICE, users={BOB: 100}),
        (PL, "pl_creators"),
        setup=_room_with_additional_creator,
    ),
    Case(
        "the first power levels may not list a creator either in v12",
        versions("12"),
        _replace({"users": {ALICE: 100}}, sender=ALICE),
        (PL, "pl_creators"),
        setup=lambda version: _new_room(version),
    ),
    Case(
        "a creator gives others any level in v12",
        versions("12"),
        _change(ALICE, users={DAVE: 2**53 - 1}, ban=2**53 - 1),
        setup=_room_with_additional_creator,
    ),
    Case(
        "an additional creator changes levels set above everyone in v12",
        versions("12"),
        _change(BOB, events={"m.room.tombstone": 2**53 - 1}),
        setup=_room_with_additional_creator,
    ),
    Case(
        "before v12 the creator may be listed",
        versions("1-11"),
        _change(ALICE, users={ALICE: 100}),
        setup=_moderated_room,
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(CREATOR_CASES))
def test_v12_creator_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- the first power levels event ------------------------------------------------------------


def _new_room(version: RoomVersion) -> Room:
    room = Room(version)
    room.set_member(ALICE, "join")
    room.set_member(BOB, "join")
    return room


FIRST_CASES = [
    Case(
        "the creator's first power levels may set anything",
        ALL_VERSIONS,
        _replace({"users": {BOB: 1000}, "ban": 5000, "events": {"x": 9000}}, sender=ALICE),
        setup=_new_room,
    ),
    Case(
        "anyone else needs state_default (50) to send the first power levels",
        ALL_VERSIONS,
        _replace({"users": {BOB: 100}}, sender=BOB),
        ("required_power_level",),
        setup=_new_room,
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(FIRST_CASES))
def test_first_power_levels_event(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- changes ---------------------------------------------------------------------------------

CHANGE_CASES = [
    Case(
        "lowering a property to below one's level is allowed",
        ALL_VERSIONS,
        _change(ban=40),
        setup=_moderated_room,
    ),
    Case(
        "raising a property to one's own level is allowed",
        ALL_VERSIONS,
        _change(invite=50),
        setup=_moderated_room,
    ),
    Case(
        "raising a property above one's level is rejected",
        ALL_VERSIONS,
        _change(ban=51),
        (PL, "pl_properties", 2),
        setup=_moderated_room,
    ),
    Case(
        "changing a property that is above one's level is rejected",
        ALL_VERSIONS,
        _change(kick=50),
        (PL, "pl_properties", 1),
        setup=_moderated_room,
    ),
    Case(
        "removing a property that is above one's level is rejected",
        ALL_VERSIONS,
        _change(kick=None),
        (PL, "pl_properties", 1),
        setup=_moderated_room,
    ),
    Case(
        "removing a property at one's level is allowed",
        ALL_VERSIONS,
        _change(state_default=None),
        setup=_moderated_room,
    ),
    Case(
        "raising users_default above one's level is rejected",
        ALL_VERSIONS,
        _change(users_default=51),
        (PL, "pl_properties", 2),
        setup=_moderated_room,
    ),
    Case(
        "raising events_default to one's level is allowed",
        ALL_VERSIONS,
        _change(events_default=50),
        setup=_moderated_room,
    ),
    Case(
        "an unchanged property above one's level is no obstacle",
        ALL_VERSIONS,
        _change(ban=10),
        setup=_moderated_room,
    ),
    Case(
        "the same level written differently is not a change before v10",
        versions("1-9"),
        _change(kick="060"),
        setup=_moderated_room,
    ),
    Case(
        "adding an events level at one's own level is allowed",
        ALL_VERSIONS,
        _change(events={"m.room.topic": 50}),
        setup=_moderated_room,
    ),
    Case(
        "adding an events level above one's own is rejected",
        ALL_VERSIONS,
        _change(events={"m.room.topic": 51}),
        (PL, "pl_maps_added", 1),
        setup=_moderated_room,
    ),
    Case(
        "lowering an events level from above one's own is rejected",
        ALL_VERSIONS,
        _change(events={"m.room.tombstone": 50}),
        (PL, "pl_maps_changed", 1),
        setup=_moderated_room,
    ),
    Case(
        "removing an events level above one's own is rejected",
        ALL_VERSIONS,
        _change(events={"m.room.tombstone": None}),
        (PL, "pl_maps_changed", 1),
        setup=_moderated_room,
    ),
    Case(
        "changing an events level at one's own level is allowed",
        ALL_VERSIONS,
        _change(events={"m.room.name": 0}),
        setup=_moderated_room,
    ),
    Case(
        "raising a notifications level above one's own is rejected from v6",
        versions("6+"),
        _change(notifications={"room": 51}),
        (PL, "pl_maps_added", 1),
        setup=_moderated_room,
    ),
    Case(
        "removing a notifications level above one's own is rejected from v6",
        versions("6+"),
        _change(notifications={"special": None}),
        (PL, "pl_maps_changed", 1),
        setup=_moderated_room,
    ),
    Case(
        "notifications levels change freely before v6",
        versions("1-5"),
        _change(notifications={"room": 100, "special": None}),
        setup=_moderated_room,
    ),
    Case(
        "promoting a user to one's own level is allowed",
        ALL_VERSIONS,
        _change(users={CAROL: 50, BOB: 50}),
        setup=_moderated_room,
    ),
    Case(
        "promoting a user above one's own level is rejected",
        ALL_VERSIONS,
        _change(users={CAROL: 51}),
        (PL, "pl_users_added", 1),
        setup=_moderated_room,
    ),
    Case(
        "adding a user above one's own level is rejected",
        ALL_VERSIONS,
        _change(users={BOB: 51}),
        (PL, "pl_users_added", 1),
        setup=_moderated_room,
    ),
    Case(
        "demoting a user below one is allowed",
        ALL_VERSIONS,
        _change(users={CAROL: -5}),
        setup=_moderated_room,
    ),
    Case(
        "removing a user below one is allowed",
        ALL_VERSIONS,
        _change(users={CAROL: None}),
        setup=_moderated_room,
    ),
    Case(
        "demoting a peer at one's own level is rejected",
        ALL_VERSIONS,
        _change(users={PEER: 0}),
        (PL, "pl_users_changed", 1),
        setup=_moderated_room,
    ),
    Case(
        "removing a peer at one's own level is rejected",
        ALL_VERSIONS,
        _change(users={PEER: None}),
        (PL, "pl_users_changed", 1),
        setup=_moderated_room,
    ),
    Case(
        "demoting a user above one is rejected",
        versions("1-11"),
        _change(users={ALICE: 0}),
        (PL, "pl_users_changed", 1),
        setup=_moderated_room,
    ),
    Case(
        "demoting oneself is allowed",
        ALL_VERSIONS,
        _change(users={DAVE: 20}),
        setup=_moderated_room,
    ),
    Case(
        "removing oneself is allowed",
        ALL_VERSIONS,
        _change(users={DAVE: None}),
        setup=_moderated_room,
    ),
    Case(
        "promoting oneself is rejected",
        ALL_VERSIONS,
        _change(users={DAVE: 51}),
        (PL, "pl_users_added", 1),
        setup=_moderated_room,
    ),
    Case(
        "a peer's level written differently is not a change before v10",
        versions("1-9"),
        _change(users={PEER: "+50"}),
        setup=_moderated_room,
    ),
    Case(
        "a member below the power levels' level cannot send them",
        ALL_VERSIONS,
        _change(CAROL),
        ("required_power_level",),
        setup=_moderated_room,
    ),
    Case(
        "the power levels' own events level counts, not state_default (too high)",
        ALL_VERSIONS,
        _change(),
        ("required_power_level",),
        setup=_moderated_room_with(events={"m.room.power_levels": 51}),
    ),
    Case(
        "the power levels' own events level counts, not state_default (low enough)",
        ALL_VERSIONS,
        _change(CAROL, users={CAROL: 5}),
        setup=_moderated_room_with(events={"m.room.power_levels": 10}),
    ),
    Case(
        "a non-member cannot send power levels",
        ALL_VERSIONS,
        _change(MALLORY),
        ("sender_joined",),
        setup=_moderated_room,
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(CHANGE_CASES))
def test_power_levels_changes(case: Case, version: RoomVersion) -> None:
    case.run(version)


def test_adding_a_property_below_its_default_is_judged_by_the_new_value_alone() -> None:
    """The rule compares the values present in the content: adding `ban: 0` where `ban`
    was absent (so 50) is no change of a "current value" (spec; Synapse likewise)."""
    for version in ALL_VERSIONS:
        room = _moderated_room_with(events={"m.room.power_levels": 10})(version)
        content = dict(room.state[("m.room.power_levels", "")]["content"])
        del content["ban"]
        room.set_power_levels(**content)
        assert room.check(_change(CAROL, ban=0)(room)) is None


def test_adding_a_property_is_judged_by_its_new_value_not_its_default() -> None:
    """`redact` absent means 50; adding it as 50 is still an addition, allowed at 50."""
    for version in ALL_VERSIONS:
        room = _moderated_room(version)
        content = dict(room.state[("m.room.power_levels", "")]["content"])
        del content["redact"]
        room.set_power_levels(**content)
        assert room.check(_change(redact=50)(room)) is None
        rejection = room.check(_change(redact=51)(room))
        assert_rejected_by(rejection, rule_number(version, PL, "pl_properties", 2))


# --- what the rules guarantee ----------------------------------------------------------------

USERS = [ALICE, BOB, CAROL, DAVE]
PROPERTIES = ["users_default", "events_default", "state_default", "ban", "kick", "redact"]
levels = st.integers(min_value=-5, max_value=110)


@st.composite
def power_level_changes(draw):
    """A room version, a current power levels content, a sender, and an edited copy."""
    version = draw(st.sampled_from(ALL_VERSIONS))
    listable = [user for user in USERS if not (version.privileged_creators and user == ALICE)]
    current = {
        "users": draw(st.dictionaries(st.sampled_from(listable), levels)),
        **draw(st.dictionaries(st.sampled_from(PROPERTIES), levels)),
    }
    new = {"users": dict(current["users"])}
    new.update({name: value for name, value in current.items() if name != "users"})
    for name in draw(st.lists(st.sampled_from(PROPERTIES), unique=True)):
        new[name] = draw(levels)
    for user in draw(st.lists(st.sampled_from(listable), unique=True)):
        new["users"][user] = draw(levels)
    if new["users"]:
        for user in draw(st.lists(st.sampled_from(sorted(new["users"])), unique=True)):
            del new["users"][user]
    sender = draw(st.sampled_from(USERS))
    return version, current, sender, new


@settings(max_examples=250, deadline=None)
@given(power_level_changes())
def test_an_allowed_change_never_lifts_anyone_above_the_sender(change) -> None:
    """Nobody ends above the sender's level, unless the room's existing `users_default`
    already put them there: removing a `users` entry is judged by its old value only,
    so a user listed below the default rises to it (the spec allows it; Synapse too)."""
    version, current, sender, new = change
    room = Room(version)
    for user_id in USERS:
        room.set_member(user_id, "join")
    room.set_power_levels(**current)
    if room.check(room.build("m.room.power_levels", sender, new, state_key="")) is not None:
        return
    create = room.state[("m.room.create", "")]
    before = PowerLevels.from_state(room.state[("m.room.power_levels", "")], create, version)
    after = PowerLevels.from_content(new, version, creators=before.creators)
    sender_level = before.user_level(sender)
    ceiling = max(sender_level, before.property_level("users_default"))
    for user_id in USERS:
        if after.user_level(user_id) > before.user_level(user_id):
            assert after.user_level(user_id) <= ceiling
    for name in PROPERTIES:
        old, new_value = before.properties.get(name), after.properties.get(name)
        if old != new_value:
            assert old is None or old <= sender_level
            assert new_value is None or new_value <= sender_level
    assert after.user_level(sender) <= ceiling


@settings(max_examples=150, deadline=None)
@given(power_level_changes())
def test_an_allowed_change_never_touches_a_listed_user_at_or_above_the_sender(change) -> None:
    version, current, sender, new = change
    room = Room(version)
    for user_id in USERS:
        room.set_member(user_id, "join")
    room.set_power_levels(**current)
    if room.check(room.build("m.room.power_levels", sender, new, state_key="")) is not None:
        return
    before = PowerLevels.from_state(
        room.state[("m.room.power_levels", "")], room.state[("m.room.create", "")], version
    )
    sender_level = before.user_level(sender)
    for user_id, old_level in current["users"].items():
        if user_id != sender and new["users"].get(user_id) != old_level:
            assert old_level < sender_level
