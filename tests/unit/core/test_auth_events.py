"""The rules for everything that is not create, membership or power levels:
messages and ordinary state, `m.room.aliases` (v1–v5), redactions (v1–v2),
the sender-joined rule and user-ID state keys.

Spec: rules 4, 6, 8, 9, 11 of `content/rooms/fragments/v1-auth-rules.md`;
`v3-auth-rules.md` (no redaction rule: "Handling redactions" is not an auth
rule); `v6.md` ("Rule 4 ... m.room.aliases ... is removed"); rules 5, 7, 8 of
`v6.md`–`v11.md`, 6, 8, 9 of `v12.md`; server-server API Definitions
(required power level, redact level).
"""

from __future__ import annotations

from typing import Any

import pytest

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
    cases_by_version,
    established_room,
    room_with,
    versions,
)


def _message(sender: str, event_type: str = "m.room.message"):
    return lambda room: room.message(sender, event_type)


def _state(sender: str, event_type: str, state_key: str = "", **content: Any):
    return lambda room: room.build(event_type, sender, content, state_key=state_key)


SENDER_CASES = [
    Case("joined member sends a message", ALL_VERSIONS, _message(DAVE)),
    Case(
        "user who never joined cannot send",
        ALL_VERSIONS,
        _message(BOB),
        ("sender_joined",),
    ),
    Case(
        "invited user cannot send",
        ALL_VERSIONS,
        _message(BOB),
        ("sender_joined",),
        setup=room_with("invite", {BOB: "invite"}),
    ),
    Case(
        "user who left cannot send",
        ALL_VERSIONS,
        _message(BOB),
        ("sender_joined",),
        setup=room_with("invite", {BOB: "leave"}),
    ),
    Case(
        "banned user cannot send",
        ALL_VERSIONS,
        _message(BOB),
        ("sender_joined",),
        setup=room_with("invite", {BOB: "ban"}),
    ),
    Case(
        "knocking user cannot send",
        versions("7+"),
        _message(BOB),
        ("sender_joined",),
        setup=room_with("knock", {BOB: "knock"}),
    ),
    Case(
        "power without membership does not let one send",
        ALL_VERSIONS,
        _message(MALLORY),
        ("sender_joined",),
        setup=room_with("invite", users={MALLORY: 100}),
    ),
    Case(
        "non-member cannot send state either",
        ALL_VERSIONS,
        _state(MALLORY, "m.room.name", name="taken"),
        ("sender_joined",),
        setup=room_with("invite", users={MALLORY: 100}),
    ),
]

LEVEL_CASES = [
    Case(
        "message at the default events level 0 is allowed",
        ALL_VERSIONS,
        _message(CAROL),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "message below events_default is rejected",
        ALL_VERSIONS,
        _message(CAROL),
        ("required_power_level",),
        setup=room_with("invite", {CAROL: "join"}, events_default=1),
    ),
    Case(
        "message type listed in events uses that level",
        ALL_VERSIONS,
        _message(DAVE, "m.sticker"),
        ("required_power_level",),
        setup=room_with("invite", events={"m.sticker": 51}),
    ),
    Case(
        "message type listed in events may be lower than events_default",
        ALL_VERSIONS,
        _message(CAROL, "m.reaction"),
        setup=room_with("invite", {CAROL: "join"}, events_default=20, events={"m.reaction": 0}),
    ),
    Case(
        "state at state_default is allowed",
        ALL_VERSIONS,
        _state(DAVE, "m.room.topic", topic="hi"),
    ),
    Case(
        "state below state_default is rejected",
        ALL_VERSIONS,
        _state(CAROL, "m.room.topic", topic="hi"),
        ("required_power_level",),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "state type listed in events uses that level",
        ALL_VERSIONS,
        _state(CAROL, "m.room.topic", topic="hi"),
        setup=room_with("invite", {CAROL: "join"}, events={"m.room.topic": 0}),
    ),
    Case(
        "state with a non-empty state key follows the same level",
        ALL_VERSIONS,
        _state(CAROL, "m.space.child", "!child:a.example", via=["a.example"]),
        ("required_power_level",),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "an empty state key makes it a state event, with the state level",
        ALL_VERSIONS,
        _state(CAROL, "m.custom"),
        ("required_power_level",),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "the same type without state key is a message, with the message level",
        ALL_VERSIONS,
        _message(CAROL, "m.custom"),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "without power levels the creator sends state",
        ALL_VERSIONS,
        _state(ALICE, "m.room.name", name="new"),
        setup=lambda version: _room_without_power_levels(version),
    ),
    Case(
        "without power levels others need state_default 50",
        ALL_VERSIONS,
        _state(BOB, "m.room.name", name="new"),
        ("required_power_level",),
        setup=lambda version: _room_without_power_levels(version),
    ),
    Case(
        "without power levels anyone joined sends messages",
        ALL_VERSIONS,
        _message(BOB),
        setup=lambda version: _room_without_power_levels(version),
    ),
    Case(
        "events level written as a string counts before v10",
        versions("1-9"),
        _message(DAVE, "m.sticker"),
        ("required_power_level",),
        setup=room_with("invite", events={"m.sticker": "51"}),
    ),
]


def _room_without_power_levels(version: RoomVersion) -> Room:
    room = Room(version)
    room.set_member(ALICE, "join")
    room.set_join_rule("public")
    room.set_member(BOB, "join")
    return room


STATE_KEY_CASES = [
    Case(
        "state keyed by one's own user ID is allowed",
        ALL_VERSIONS,
        _state(DAVE, "m.custom.profile", DAVE),
    ),
    Case(
        "state keyed by another user's ID is rejected, even for an admin",
        ALL_VERSIONS,
        _state(ALICE, "m.custom.profile", DAVE),
        ("user_state_key",),
    ),
    Case(
        "state keys that merely contain an @ are not user IDs",
        ALL_VERSIONS,
        _state(DAVE, "m.custom.profile", "x@y"),
    ),
    Case(
        "the required level is checked before the state key",
        ALL_VERSIONS,
        _state(CAROL, "m.custom.profile", DAVE),
        ("required_power_level",),
        setup=room_with("invite", {CAROL: "join"}),
    ),
]


@pytest.mark.parametrize(
    ("case", "version"), cases_by_version(SENDER_CASES + LEVEL_CASES + STATE_KEY_CASES)
)
def test_ordinary_event_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- m.room.aliases --------------------------------------------------------------------------


def _aliases(sender: str, state_key: str | None):
    def build(room: Room) -> dict[str, Any]:
        content = {"aliases": ["#room:" + str(state_key)]}
        return room.build("m.room.aliases", sender, content, state_key=state_key)

    return build


ALIASES_CASES = [
    Case(
        "before v6 a server sets its own aliases without joining",
        versions("1-5"),
        _aliases(BOB, "b.example"),
    ),
    Case(
        "before v6 aliases ignore power levels",
        versions("1-5"),
        _aliases(CAROL, "c.example"),
        setup=room_with("invite", {CAROL: "join"}, events={"m.room.aliases": 100}),
    ),
    Case(
        "before v6 aliases for another server are rejected",
        versions("1-5"),
        _aliases(DAVE, "b.example"),
        ("aliases", 2),
    ),
    Case(
        "before v6 aliases without a state key are rejected",
        versions("1-5"),
        _aliases(DAVE, None),
        ("aliases", 1),
    ),
    Case(
        "from v6 aliases need a joined sender",
        versions("6+"),
        _aliases(BOB, "b.example"),
        ("sender_joined",),
    ),
    Case(
        "from v6 aliases need state_default",
        versions("6+"),
        _aliases(CAROL, "c.example"),
        ("required_power_level",),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "from v6 a moderator sets another server's aliases",
        versions("6+"),
        _aliases(DAVE, "b.example"),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(ALIASES_CASES))
def test_aliases_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- m.room.redaction ------------------------------------------------------------------------


def _redaction(sender: str, redacts: str, event_id: str | None = None):
    def build(room: Room) -> dict[str, Any]:
        fields: dict[str, Any] = {"redacts": redacts}
        content: dict[str, Any] = {}
        if room.version.implicit_room_creator:
            content["redacts"] = redacts
            del fields["redacts"]
        event = room.build("m.room.redaction", sender, content, **fields)
        if event_id is not None:
            event["event_id"] = event_id
        return event

    return build


def _room_with(*members: str, **power_levels: Any):
    return room_with("invite", {member: "join" for member in members}, **power_levels)


REDACTION_CASES = [
    Case(
        "v1/v2: at the redact level anything may be redacted",
        versions("1-2"),
        _redaction(DAVE, "$other:b.example", "$r:a.example"),
    ),
    Case(
        "v1/v2: below the redact level a server's own events may be redacted",
        versions("1-2"),
        _redaction(CAROL, "$mine:c.example", "$r:c.example"),
        setup=_room_with(CAROL),
    ),
    Case(
        "v1/v2: below the redact level another server's events may not be redacted",
        versions("1-2"),
        _redaction(CAROL, "$theirs:b.example", "$r:c.example"),
        ("redaction", 3),
        setup=_room_with(CAROL),
    ),
    Case(
        "v1/v2: a redaction that names no event is only for the redact level",
        versions("1-2"),
        _redaction(CAROL, "no-event-id", "$r:c.example"),
        ("redaction", 3),
        setup=_room_with(CAROL),
    ),
    Case(
        "v1/v2: the redaction's event level still applies first",
        versions("1-2"),
        _redaction(CAROL, "$mine:c.example", "$r:c.example"),
        ("required_power_level",),
        setup=_room_with(CAROL, events={"m.room.redaction": 20}),
    ),
    Case(
        "v1/v2: redact level raised above a moderator",
        versions("1-2"),
        _redaction(DAVE, "$other:b.example", "$r:a.example"),
        ("redaction", 3),
        setup=_room_with(redact=51),
    ),
    Case(
        "v3+: the redact level is not an auth rule",
        versions("3+"),
        _redaction(CAROL, "$theirs"),
        setup=_room_with(CAROL, redact=100),
    ),
    Case(
        "v3+: redactions follow events like any event",
        versions("3+"),
        _redaction(CAROL, "$theirs"),
        ("required_power_level",),
        setup=_room_with(CAROL, events={"m.room.redaction": 20}),
    ),
    Case(
        "v3+: redactions follow events_default",
        versions("3+"),
        _redaction(CAROL, "$theirs"),
        ("required_power_level",),
        setup=_room_with(CAROL, events_default=20),
    ),
    Case(
        "every version: a non-member cannot redact",
        ALL_VERSIONS,
        _redaction(BOB, "$theirs:b.example", "$r:b.example"),
        ("sender_joined",),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(REDACTION_CASES))
def test_redaction_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- unreadable power levels in the state ----------------------------------------------------


def _room_with_broken_power_levels(version: RoomVersion, ban: object) -> Room:
    room = established_room(version)
    content = dict(room.state[("m.room.power_levels", "")]["content"], ban=ban)
    room.set_power_levels(**content)
    return room


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_unreadable_power_levels_in_the_state_reject_what_depends_on_them(
    version: RoomVersion,
) -> None:
    room = _room_with_broken_power_levels(version, ban="fifty")
    rejection = room.check(room.message(DAVE))
    assert rejection is not None
    assert rejection.rule.startswith("state:"), rejection


@pytest.mark.parametrize("version", versions("10+"), ids=lambda v: f"v{v.identifier}")
def test_from_v10_string_levels_in_the_state_are_unreadable(version: RoomVersion) -> None:
    room = _room_with_broken_power_levels(version, ban="50")
    rejection = room.check(room.message(DAVE))
    assert rejection is not None
    assert rejection.rule.startswith("state:"), rejection


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_unreadable_power_levels_reject_even_events_that_would_not_consult_them(
    version: RoomVersion,
) -> None:
    room = _room_with_broken_power_levels(version, ban="fifty")
    room.set_join_rule("public")
    rejection = room.check(room.member_event(BOB, BOB, "join"))
    assert rejection is not None
    assert rejection.rule.startswith("state:"), rejection


@pytest.mark.parametrize("version", versions("1-5"), ids=lambda v: f"v{v.identifier}")
def test_unreadable_power_levels_do_not_stop_a_servers_own_aliases(version: RoomVersion) -> None:
    room = _room_with_broken_power_levels(version, ban="fifty")
    assert room.check(_aliases(BOB, "b.example")(room)) is None
