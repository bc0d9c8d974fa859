"""The public face of `core/auth.py`: `check_auth`'s answer, `require_auth`, and how a
rejection names its rule (the spec's number in that room version, then a stable name).

Spec: the rule lists of `content/rooms/v1.md` … `v12.md`; the numbers below are
copied from those pages by hand.
"""

from __future__ import annotations

import dataclasses

import pytest

from matrix_conduit.core.auth import AuthError, Rejection, check_auth, require_auth
from matrix_conduit.core.room_versions import get_room_version

from .auth_tables import ALICE, BOB, DAVE, established_room, room_with


@pytest.mark.parametrize(
    ("version", "rule"),
    [
        ("1", "5.2.3 member/join: sender is banned"),
        ("5", "5.2.3 member/join: sender is banned"),
        ("6", "4.2.3 member/join: sender is banned"),
        ("7", "4.2.3 member/join: sender is banned"),
        ("8", "4.3.3 member/join: sender is banned"),
        ("11", "4.3.3 member/join: sender is banned"),
        ("12", "5.3.3 member/join: sender is banned"),
    ],
)
def test_a_rejection_names_the_spec_rule_of_its_room_version(version: str, rule: str) -> None:
    room = room_with("public", {BOB: "ban"})(get_room_version(version))
    rejection = room.check(room.member_event(BOB, BOB, "join"))
    assert rejection is not None
    assert rejection.rule == rule
    assert BOB in rejection.reason


@pytest.mark.parametrize(
    ("version", "number"),
    [("1", "10.7.1"), ("6", "9.7.1"), ("9", "9.7.1"), ("10", "9.9.1"), ("12", "10.10.1")],
)
def test_power_levels_rules_are_numbered_as_each_version_numbers_them(
    version: str, number: str
) -> None:
    room = established_room(get_room_version(version))
    content = dict(room.state[("m.room.power_levels", "")]["content"])
    content["users"] = {**content["users"], BOB: 51}
    rejection = room.check(room.build("m.room.power_levels", DAVE, content, state_key=""))
    assert rejection is not None
    assert rejection.rule.split(" ")[0] == number


def test_require_auth_raises_the_rejection_and_passes_what_is_allowed() -> None:
    room = established_room(get_room_version("10"))
    assert require_auth(room.message(ALICE), room.state, room.version) is None
    with pytest.raises(AuthError) as raised:
        require_auth(room.message(BOB), room.state, room.version)
    assert raised.value.rejection == check_auth(room.message(BOB), room.state, room.version)
    assert raised.value.rejection.rule in str(raised.value)


def test_require_auth_takes_the_same_options_as_check_auth() -> None:
    room = room_with("restricted", {DAVE: "join"})(get_room_version("10"))
    join = room.member_event(BOB, BOB, "join", join_authorised_via_users_server=DAVE)
    with pytest.raises(AuthError):
        require_auth(join, room.state, room.version)
    require_auth(join, room.state, room.version, is_signed_by=lambda event, server: True)


def test_a_rejection_is_an_immutable_value() -> None:
    rejection = Rejection("5 sender is not joined", "@bob:b.example is not joined")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rejection.rule = "something else"  # type: ignore[misc]
    assert rejection == Rejection("5 sender is not joined", "@bob:b.example is not joined")
    assert str(rejection) == "5 sender is not joined — @bob:b.example is not joined"


def test_check_auth_does_not_modify_the_event_or_the_state() -> None:
    room = established_room(get_room_version("12"))
    event = room.member_event(BOB, BOB, "join")
    before = (repr(event), repr(room.state))
    room.check(event)
    assert (repr(event), repr(room.state)) == before
