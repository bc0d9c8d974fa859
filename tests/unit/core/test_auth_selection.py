"""Which state an event's `auth_events` are chosen from.

Spec: server-server API § Auth events selection; `content/rooms/v12.md`
("The `m.room.create` event MUST NOT be selected for `auth_events`").
"""

from __future__ import annotations

from typing import Any

import pytest

from matrix_conduit.core.auth import auth_types_for_event
from matrix_conduit.core.room_versions import RoomVersion

from .auth_tables import ALICE, ALL_VERSIONS, BOB, CAROL, versions

CREATE = ("m.room.create", "")
POWER_LEVELS = ("m.room.power_levels", "")
JOIN_RULES = ("m.room.join_rules", "")


def _member(user_id: str) -> tuple[str, str]:
    return ("m.room.member", user_id)


def _base(version: RoomVersion, sender: str) -> list[tuple[str, str]]:
    """What every event but the create event selects."""
    create = [] if version.room_id_is_create_event_id else [CREATE]
    return [*create, POWER_LEVELS, _member(sender)]


def _select(
    version: RoomVersion,
    sender: str,
    content: dict[str, Any],
    event_type: str = "m.room.member",
    state_key: str | None = BOB,
):
    return auth_types_for_event(event_type, sender, state_key, content, version)


each_version = pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")


@each_version
def test_the_create_event_selects_nothing(version: RoomVersion) -> None:
    assert auth_types_for_event("m.room.create", ALICE, "", {"creator": ALICE}, version) == []


@each_version
def test_a_message_selects_create_power_levels_and_the_senders_membership(
    version: RoomVersion,
) -> None:
    assert _select(version, ALICE, {"body": "hi"}, "m.room.message", None) == _base(version, ALICE)


@each_version
def test_ordinary_state_selects_the_same_as_a_message(version: RoomVersion) -> None:
    selected = _select(version, ALICE, {"name": "n"}, "m.room.name", "")
    assert selected == _base(version, ALICE)


def test_only_v12_leaves_the_create_event_out() -> None:
    for version in ALL_VERSIONS:
        selected = _select(version, ALICE, {}, "m.room.message", None)
        assert (CREATE in selected) is not version.room_id_is_create_event_id


@each_version
def test_a_join_selects_the_join_rules_once_and_the_membership_once(version: RoomVersion) -> None:
    selected = _select(version, BOB, {"membership": "join"})
    assert selected == [*_base(version, BOB), JOIN_RULES]


@each_version
def test_an_invite_selects_the_targets_membership_and_the_join_rules(
    version: RoomVersion,
) -> None:
    selected = _select(version, ALICE, {"membership": "invite"})
    assert selected == [*_base(version, ALICE), _member(BOB), JOIN_RULES]


@each_version
def test_a_knock_selects_the_join_rules(version: RoomVersion) -> None:
    selected = _select(version, BOB, {"membership": "knock"})
    assert selected == [*_base(version, BOB), JOIN_RULES]


@pytest.mark.parametrize("membership", ["leave", "ban"])
@each_version
def test_leave_and_ban_do_not_select_the_join_rules(version: RoomVersion, membership: str) -> None:
    selected = _select(version, ALICE, {"membership": membership})
    assert selected == [*_base(version, ALICE), _member(BOB)]


@each_version
def test_a_third_party_invite_selects_the_invite_for_its_token(version: RoomVersion) -> None:
    content = {
        "membership": "invite",
        "third_party_invite": {"display_name": "b", "signed": {"mxid": BOB, "token": "tok"}},
    }
    selected = _select(version, ALICE, content)
    assert selected == [
        *_base(version, ALICE),
        _member(BOB),
        JOIN_RULES,
        ("m.room.third_party_invite", "tok"),
    ]


@pytest.mark.parametrize(
    "third_party_invite",
    [{"display_name": "b"}, {"signed": {"mxid": BOB}}, {"signed": {"token": 7}}, "invite"],
    ids=["no signed", "no token", "token not a string", "not an object"],
)
def test_a_third_party_invite_without_a_usable_token_selects_no_invite(
    third_party_invite: object,
) -> None:
    for version in ALL_VERSIONS:
        content = {"membership": "invite", "third_party_invite": third_party_invite}
        selected = _select(version, ALICE, content)
        assert not any(key[0] == "m.room.third_party_invite" for key in selected)


@pytest.mark.parametrize("version", versions("8+"), ids=lambda v: f"v{v.identifier}")
def test_a_restricted_join_selects_the_authorisers_membership(version: RoomVersion) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": CAROL}
    selected = _select(version, BOB, content)
    assert selected == [*_base(version, BOB), JOIN_RULES, _member(CAROL)]


@pytest.mark.parametrize("version", versions("1-7"), ids=lambda v: f"v{v.identifier}")
def test_before_v8_the_authoriser_is_not_selected(version: RoomVersion) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": CAROL}
    assert _member(CAROL) not in _select(version, BOB, content)


@each_version
def test_the_authoriser_is_selected_only_for_joins(version: RoomVersion) -> None:
    content = {"membership": "leave", "join_authorised_via_users_server": CAROL}
    assert _member(CAROL) not in _select(version, BOB, content)


@each_version
def test_an_authoriser_who_is_the_sender_is_selected_once(version: RoomVersion) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": BOB}
    selected = _select(version, BOB, content)
    assert selected.count(_member(BOB)) == 1
