"""The rules before any event type is considered: the create event (rule 1), v12's
room ID (rule 2), the cited auth events (rule 2 / v12: 3) and `m.federate` (3 / 4).

Spec: `content/rooms/fragments/v1-auth-rules.md`, `v3-auth-rules.md`,
`v8-auth-rules.md`, `v6.md`, `v7.md`, `v10.md`, `v11.md`, `v12.md`.
"""

from __future__ import annotations

from typing import Any

import pytest

from matrix_conduit.core.auth import check_auth, check_cited_auth_events
from matrix_conduit.core.events import room_id_for_create_event
from matrix_conduit.core.room_versions import RoomVersion, get_room_version

from .auth_tables import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    DAVE,
    Case,
    Room,
    assert_rejected_by,
    cases_by_version,
    established_room,
    rule_number,
    versions,
)


def _create(room: Room, **changes: Any) -> dict[str, Any]:
    """The room's create event with top-level `changes` (None removes a key)."""
    event = dict(room.create)
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def _create_content(room: Room, **changes: Any) -> dict[str, Any]:
    content = dict(room.create["content"])
    content.update(changes)
    return _create(room, content={k: v for k, v in content.items() if v is not None})


CREATE_CASES = [
    Case("create is allowed", ALL_VERSIONS, lambda room: room.create, setup=Room),
    Case(
        "create with prev_events is rejected",
        ALL_VERSIONS,
        lambda room: _create(room, prev_events=["$earlier:a.example"]),
        ("create", 1),
        setup=Room,
    ),
    Case(
        "create whose room_id is on another server is rejected",
        versions("1-11"),
        lambda room: _create(room, room_id="!room:b.example"),
        ("create", "create_room_id"),
        setup=Room,
    ),
    Case(
        "create without room_id is rejected before v12",
        versions("1-11"),
        lambda room: _create(room, room_id=None),
        ("create", "create_room_id"),
        setup=Room,
    ),
    Case(
        "create carrying a room_id is rejected in v12",
        versions("12"),
        lambda room: _create(room, room_id="!room:a.example"),
        ("create", "create_room_id"),
        setup=Room,
    ),
    Case(
        "create naming an unknown room_version is rejected",
        ALL_VERSIONS,
        lambda room: _create_content(room, room_version="99"),
        ("create", 3),
        setup=Room,
    ),
    Case(
        "create naming a non-string room_version is rejected",
        ALL_VERSIONS,
        lambda room: _create_content(room, room_version=10),
        ("create", 3),
        setup=Room,
    ),
    Case(
        "create naming a room_version that is a list is rejected",
        ALL_VERSIONS,
        lambda room: _create_content(room, room_version=["10"]),
        ("create", 3),
        setup=Room,
    ),
    Case(
        "create without room_version is allowed (it defaults to 1)",
        ALL_VERSIONS,
        lambda room: _create_content(room, room_version=None),
        setup=Room,
    ),
    Case(
        "create without creator is rejected before v11",
        versions("1-10"),
        lambda room: _create_content(room, creator=None),
        ("create", "create_creator"),
        setup=Room,
    ),
    Case(
        "create without creator is allowed from v11",
        versions("11+"),
        lambda room: _create_content(room, creator=None),
        setup=Room,
    ),
    Case(
        "create with a creator other than the sender is allowed in v11 (creator is ignored)",
        versions("11"),
        lambda room: _create_content(room, creator=BOB),
        setup=Room,
    ),
    Case(
        "create with additional_creators user IDs is allowed in v12",
        versions("12"),
        lambda room: _create_content(room, additional_creators=[BOB, "@:historical.example"]),
        setup=Room,
    ),
    Case(
        "create with additional_creators not a list is rejected in v12",
        versions("12"),
        lambda room: _create_content(room, additional_creators=BOB),
        ("create", "create_additional_creators"),
        setup=Room,
    ),
    Case(
        "create with an additional creator that is not a user ID is rejected in v12",
        versions("12"),
        lambda room: _create_content(room, additional_creators=[BOB, "bob"]),
        ("create", "create_additional_creators"),
        setup=Room,
    ),
    Case(
        "create with an additional creator that is not a string is rejected in v12",
        versions("12"),
        lambda room: _create_content(room, additional_creators=[42]),
        ("create", "create_additional_creators"),
        setup=Room,
    ),
    Case(
        "create with malformed additional_creators is allowed before v12 (not validated)",
        versions("1-11"),
        lambda room: _create_content(room, additional_creators="anything"),
        setup=Room,
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(CREATE_CASES))
def test_create_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


def test_create_is_judged_without_any_state() -> None:
    for version in ALL_VERSIONS:
        room = Room(version)
        assert check_auth(room.create, {}, version) is None


# --- rule 2 of v12: the room ID names the create event ----------------------------------------


def test_v12_event_whose_room_id_is_not_the_create_events_id_is_rejected() -> None:
    v12 = get_room_version("12")
    room = established_room(v12)
    message = room.message(ALICE)
    message["room_id"] = "!" + "A" * 43
    assert_rejected_by(room.check(message), rule_number(v12, "room_id"))


def test_v12_event_in_a_room_whose_create_event_was_rejected_is_rejected() -> None:
    v12 = get_room_version("12")
    room = established_room(v12)
    rejection = room.check(room.message(ALICE), is_rejected=lambda event: event is room.create)
    assert_rejected_by(rejection, rule_number(v12, "room_id"))


def test_v12_event_without_the_create_event_in_the_state_is_rejected() -> None:
    v12 = get_room_version("12")
    room = established_room(v12)
    del room.state[("m.room.create", "")]
    assert_rejected_by(room.check(room.message(ALICE)), rule_number(v12, "room_id"))


def test_v12_create_event_without_event_id_key_is_identified_by_its_reference_hash() -> None:
    v12 = get_room_version("12")
    room = established_room(v12)
    create = dict(room.create)
    del create["event_id"]
    room.state[("m.room.create", "")] = create
    message = room.message(ALICE)
    message["room_id"] = room_id_for_create_event(create, v12)
    assert room.check(message) is None
    message["room_id"] = room.room_id  # the id the test room made up
    assert_rejected_by(room.check(message), rule_number(v12, "room_id"))


@pytest.mark.parametrize("version", versions("1-11"), ids=lambda v: f"v{v.identifier}")
def test_event_without_the_create_event_in_the_state_is_rejected(version: RoomVersion) -> None:
    room = established_room(version)
    del room.state[("m.room.create", "")]
    assert_rejected_by(room.check(room.message(ALICE)), rule_number(version, "auth_events", 4))


# --- the cited auth events ---------------------------------------------------------------------


def _cite(room: Room, *keys: tuple[str, str]) -> list[dict[str, Any]]:
    return [room.state[key] for key in keys]


def _usual_citations(room: Room, sender: str = ALICE) -> list[tuple[str, str]]:
    keys = [("m.room.power_levels", ""), ("m.room.member", sender)]
    if not room.version.room_id_is_create_event_id:
        keys.insert(0, ("m.room.create", ""))
    return keys


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
class TestCitedAuthEvents:
    def test_citing_exactly_the_selected_events_is_allowed(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room))
        assert room.check(room.message(ALICE), cited_auth_events=cited) is None

    def test_citing_fewer_than_selected_is_allowed(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room)[:-1])
        assert room.check(room.message(ALICE), cited_auth_events=cited) is None

    def test_citing_an_event_twice_is_rejected(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room), ("m.room.power_levels", ""))
        rejection = room.check(room.message(ALICE), cited_auth_events=cited)
        assert_rejected_by(rejection, rule_number(version, "auth_events", 1))

    def test_citing_two_events_for_one_state_key_is_rejected(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room))
        cited.append(room.build("m.room.power_levels", ALICE, {}, state_key=""))
        rejection = room.check(room.message(ALICE), cited_auth_events=cited)
        assert_rejected_by(rejection, rule_number(version, "auth_events", 1))

    def test_citing_state_outside_the_selection_is_rejected(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room), ("m.room.join_rules", ""))
        rejection = room.check(room.message(ALICE), cited_auth_events=cited)
        assert_rejected_by(rejection, rule_number(version, "auth_events", 2))

    def test_citing_another_users_membership_is_rejected(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room), ("m.room.member", DAVE))
        rejection = room.check(room.message(ALICE), cited_auth_events=cited)
        assert_rejected_by(rejection, rule_number(version, "auth_events", 2))

    def test_citing_a_rejected_event_is_rejected(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room))
        power_levels = room.state[("m.room.power_levels", "")]
        rejection = room.check(
            room.message(ALICE),
            cited_auth_events=cited,
            is_rejected=lambda event: event is power_levels,
        )
        assert_rejected_by(rejection, rule_number(version, "auth_events", 3))

    def test_citing_an_event_of_another_room_is_rejected(self, version: RoomVersion) -> None:
        room = established_room(version)
        cited = _cite(room, *_usual_citations(room))
        cited[-1] = {**cited[-1], "room_id": "!elsewhere:a.example"}
        rejection = room.check(room.message(ALICE), cited_auth_events=cited)
        assert_rejected_by(rejection, rule_number(version, "auth_events", 5))

    def test_the_list_check_alone_gives_the_same_answer(self, version: RoomVersion) -> None:
        room = established_room(version)
        good = _cite(room, *_usual_citations(room))
        bad = [*good, room.state[("m.room.join_rules", "")]]
        message = room.message(ALICE)
        assert check_cited_auth_events(message, good, version) is None
        assert check_cited_auth_events(message, bad, version) == room.check(
            message, cited_auth_events=bad
        )


@pytest.mark.parametrize("version", versions("1-11"), ids=lambda v: f"v{v.identifier}")
def test_citing_no_create_event_is_rejected_before_v12(version: RoomVersion) -> None:
    room = established_room(version)
    cited = _cite(room, ("m.room.power_levels", ""), ("m.room.member", ALICE))
    rejection = room.check(room.message(ALICE), cited_auth_events=cited)
    assert_rejected_by(rejection, rule_number(version, "auth_events", 4))


def test_citing_the_create_event_is_rejected_in_v12() -> None:
    v12 = get_room_version("12")
    room = established_room(v12)
    cited = _cite(room, ("m.room.create", ""), ("m.room.member", ALICE))
    rejection = room.check(room.message(ALICE), cited_auth_events=cited)
    assert_rejected_by(rejection, rule_number(v12, "auth_events", 2))


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_a_join_may_cite_the_target_membership_and_join_rules(version: RoomVersion) -> None:
    room = established_room(version, join_rule="public")
    room.set_member(BOB, "leave")
    cited = _cite(
        room,
        *_usual_citations(room, sender=BOB),
        ("m.room.join_rules", ""),
    )
    join = room.member_event(BOB, BOB, "join")
    assert room.check(join, cited_auth_events=cited) is None


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_a_leave_may_not_cite_the_join_rules(version: RoomVersion) -> None:
    room = established_room(version)
    cited = _cite(room, *_usual_citations(room, sender=DAVE), ("m.room.join_rules", ""))
    rejection = room.check(room.member_event(DAVE, DAVE, "leave"), cited_auth_events=cited)
    assert_rejected_by(rejection, rule_number(version, "auth_events", 2))


# --- m.federate ---------------------------------------------------------------------------


def _unfederated_room(version: RoomVersion, federate: object = False) -> Room:
    room = Room(version, create_content={"m.federate": federate})
    room.set_member(ALICE, "join")
    room.set_join_rule("public")
    return room


FEDERATE_CASES = [
    Case(
        "m.federate false rejects a join from another server",
        ALL_VERSIONS,
        lambda room: room.member_event(BOB, BOB, "join"),
        ("federate",),
        setup=_unfederated_room,
    ),
    Case(
        "m.federate false rejects a message from another server before membership is considered",
        ALL_VERSIONS,
        lambda room: room.message(BOB),
        ("federate",),
        setup=_unfederated_room,
    ),
    Case(
        "m.federate false allows a join from the creator's server",
        ALL_VERSIONS,
        lambda room: room.member_event(DAVE, DAVE, "join"),
        setup=_unfederated_room,
    ),
    Case(
        "m.federate true allows a join from another server",
        ALL_VERSIONS,
        lambda room: room.member_event(BOB, BOB, "join"),
        setup=lambda version: _unfederated_room(version, federate=True),
    ),
    Case(
        "m.federate that is a falsy non-boolean restricts too (as Synapse reads it)",
        ALL_VERSIONS,
        lambda room: room.member_event(BOB, BOB, "join"),
        ("federate",),
        setup=lambda version: _unfederated_room(version, federate=0),
    ),
    Case(
        "m.federate that is a truthy non-boolean does not restrict",
        ALL_VERSIONS,
        lambda room: room.member_event(BOB, BOB, "join"),
        setup=lambda version: _unfederated_room(version, federate="yes"),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(FEDERATE_CASES))
def test_federate_rule(case: Case, version: RoomVersion) -> None:
    case.run(version)
