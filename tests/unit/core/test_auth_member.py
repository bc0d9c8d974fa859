"""The `m.room.member` rules: join, invite, leave, ban, knock, restricted joins.

Spec: rule 5 of `content/rooms/fragments/v1-auth-rules.md` and `v3-auth-rules.md`,
rule 4 of `v6.md`, `v7.md` (knock), `fragments/v8-auth-rules.md` (restricted,
`join_authorised_via_users_server`), `v10.md` (knock_restricted), `v11.md`
(creator is the create event's sender), rule 5 of `v12.md` (creators).
Third-party invites are in `test_auth_third_party_invite.py`.
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
    assert_rejected_by,
    cases_by_version,
    room_with,
    rule_number,
    versions,
)


def _member(sender: str, target: str, membership: object, **content: Any):
    return lambda room: room.member_event(sender, target, membership, **content)


def _without(key: str, event_of):
    def build(room: Room) -> dict[str, Any]:
        event = dict(event_of(room))
        event.pop(key)
        return event

    return build


def _without_membership(room: Room) -> dict[str, Any]:
    return room.build("m.room.member", BOB, {"displayname": "Bob"}, state_key=BOB)


GENERAL_CASES = [
    Case(
        "member event without state_key is rejected",
        ALL_VERSIONS,
        _without("state_key", _member(BOB, BOB, "join")),
        ("member", 1),
        setup=room_with("public"),
    ),
    Case(
        "member event without content.membership is rejected",
        ALL_VERSIONS,
        _without_membership,
        ("member", 1),
        setup=room_with("public"),
    ),
    Case(
        "unknown membership is rejected",
        ALL_VERSIONS,
        _member(BOB, BOB, "lurk"),
        ("member", "unknown"),
        setup=room_with("public"),
    ),
    Case(
        "non-string membership is rejected as unknown",
        ALL_VERSIONS,
        _member(BOB, BOB, 42),
        ("member", "unknown"),
        setup=room_with("public"),
    ),
    Case(
        "knock is an unknown membership before v7",
        versions("1-6"),
        _member(BOB, BOB, "knock"),
        ("member", "unknown"),
        setup=room_with("knock"),
    ),
    Case(
        "a member event needs no prior membership of the sender to be judged",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        setup=room_with("public"),
    ),
]

JOIN_CASES = [
    Case(
        "join for someone else is rejected",
        ALL_VERSIONS,
        _member(ALICE, BOB, "join"),
        ("member", "join", 2),
        setup=room_with("public"),
    ),
    Case(
        "banned user cannot join a public room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        ("member", "join", 3),
        setup=room_with("public", {BOB: "ban"}),
    ),
    Case(
        "banned user cannot join an invite room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        ("member", "join", 3),
        setup=room_with("invite", {BOB: "ban"}),
    ),
    Case(
        "invited user joins an invite room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        setup=room_with("invite", {BOB: "invite"}),
    ),
    Case(
        "joined user may send another join (a profile change) in an invite room",
        ALL_VERSIONS,
        _member(DAVE, DAVE, "join", displayname="Dave"),
    ),
    Case(
        "uninvited user cannot join an invite room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
    ),
    Case(
        "user who left cannot rejoin an invite room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("invite", {BOB: "leave"}),
    ),
    Case(
        "invited user joins a knock room",
        versions("7+"),
        _member(BOB, BOB, "join"),
        setup=room_with("knock", {BOB: "invite"}),
    ),
    Case(
        "knocking user cannot join a knock room before being invited",
        versions("7+"),
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("knock", {BOB: "knock"}),
    ),
    Case(
        "knock join rule means nothing before v7, even to the invited",
        versions("1-6"),
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("knock", {BOB: "invite"}),
    ),
    Case(
        "anyone joins a public room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        setup=room_with("public"),
    ),
    Case(
        "user who left rejoins a public room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        setup=room_with("public", {BOB: "leave"}),
    ),
    Case(
        "nobody joins a private room uninvited",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("private"),
    ),
    Case(
        "invited user joins a private room",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("private", {BOB: "invite"}),
    ),
    Case(
        "nobody joins under an unknown join rule",
        ALL_VERSIONS,
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("everyone_welcome", {BOB: "invite"}),
    ),
    Case(
        "restricted means nothing before v8, even to the invited",
        versions("1-7"),
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("restricted", {BOB: "invite"}),
    ),
    Case(
        "knock_restricted means nothing before v10, even to the invited",
        versions("1-9"),
        _member(BOB, BOB, "join"),
        ("member", "join", "join_otherwise"),
        setup=room_with("knock_restricted", {BOB: "invite"}),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(GENERAL_CASES + JOIN_CASES))
def test_member_and_join_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- the room without join rules -------------------------------------------------------------


def _room_without_join_rules(version: RoomVersion, invited: bool) -> Room:
    room = room_with("invite", {BOB: "invite"} if invited else {})(version)
    del room.state[("m.room.join_rules", "")]
    return room


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_room_without_join_rules_admits_the_invited_as_an_invite_room(
    version: RoomVersion,
) -> None:
    room = _room_without_join_rules(version, invited=True)
    assert room.check(room.member_event(BOB, BOB, "join")) is None


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_room_without_join_rules_refuses_the_uninvited(version: RoomVersion) -> None:
    room = _room_without_join_rules(version, invited=False)
    rejection = room.check(room.member_event(BOB, BOB, "join"))
    assert_rejected_by(rejection, rule_number(version, "member", "join", "join_otherwise"))


# --- the creator's first join ----------------------------------------------------------------


def _first_join(room: Room, user_id: str, prev_events: list[Any] | None = None) -> dict[str, Any]:
    join = room.member_event(user_id, user_id, "join")
    create_id = room.create["event_id"]
    if prev_events is not None:
        join["prev_events"] = prev_events
    elif room.version.event_id_in_event:
        join["prev_events"] = [[create_id, {"sha256": "aGFzaA"}]]
    else:
        join["prev_events"] = [create_id]
    return join


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_creator_joins_right_after_the_create_event(version: RoomVersion) -> None:
    room = Room(version)
    assert room.check(_first_join(room, ALICE)) is None


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_someone_else_cannot_join_right_after_the_create_event(version: RoomVersion) -> None:
    room = Room(version)
    rejection = room.check(_first_join(room, BOB))
    assert_rejected_by(rejection, rule_number(version, "member", "join", "join_otherwise"))


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_creator_join_not_directly_after_the_create_event_needs_the_join_rules(
    version: RoomVersion,
) -> None:
    room = Room(version)
    for prev_events in (["$other:a.example"], [room.create["event_id"], "$other:a.example"], []):
        rejection = room.check(_first_join(room, ALICE, prev_events))
        assert_rejected_by(rejection, rule_number(version, "member", "join", "join_otherwise"))


@pytest.mark.parametrize("version", versions("1-2"), ids=lambda v: f"v{v.identifier}")
def test_creator_join_accepts_v1_prev_events_given_as_bare_ids(version: RoomVersion) -> None:
    room = Room(version)
    assert room.check(_first_join(room, ALICE, [room.create["event_id"]])) is None


@pytest.mark.parametrize("version", versions("1-10"), ids=lambda v: f"v{v.identifier}")
def test_before_v11_the_creator_is_content_creator(version: RoomVersion) -> None:
    room = Room(version, create_content={"creator": BOB})
    assert room.check(_first_join(room, BOB)) is None
    rejection = room.check(_first_join(room, ALICE))
    assert_rejected_by(rejection, rule_number(version, "member", "join", "join_otherwise"))


@pytest.mark.parametrize("version", versions("11+"), ids=lambda v: f"v{v.identifier}")
def test_from_v11_the_creator_is_the_create_events_sender(version: RoomVersion) -> None:
    room = Room(version, create_content={"creator": BOB})
    assert room.check(_first_join(room, ALICE)) is None
    rejection = room.check(_first_join(room, BOB))
    assert_rejected_by(rejection, rule_number(version, "member", "join", "join_otherwise"))


# --- invite ----------------------------------------------------------------------------------

INVITE_CASES = [
    Case(
        "joined member at the invite level invites",
        ALL_VERSIONS,
        _member(DAVE, BOB, "invite"),
    ),
    Case(
        "any joined member invites at the default invite level 0",
        ALL_VERSIONS,
        _member(CAROL, BOB, "invite"),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "invite of a user who left is allowed",
        ALL_VERSIONS,
        _member(DAVE, BOB, "invite"),
        setup=room_with("invite", {BOB: "leave"}),
    ),
    Case(
        "invite of a knocking user is allowed",
        versions("7+"),
        _member(DAVE, BOB, "invite"),
        setup=room_with("knock", {BOB: "knock"}),
    ),
    Case(
        "re-inviting an invited user is allowed",
        ALL_VERSIONS,
        _member(DAVE, BOB, "invite"),
        setup=room_with("invite", {BOB: "invite"}),
    ),
    Case(
        "sender who is not joined cannot invite",
        ALL_VERSIONS,
        _member(CAROL, BOB, "invite"),
        ("member", "invite", 2),
    ),
    Case(
        "invited sender cannot invite",
        ALL_VERSIONS,
        _member(CAROL, BOB, "invite"),
        ("member", "invite", 2),
        setup=room_with("invite", {CAROL: "invite"}),
    ),
    Case(
        "invite of a joined user is rejected",
        ALL_VERSIONS,
        _member(DAVE, ALICE, "invite"),
        ("member", "invite", 3),
    ),
    Case(
        "invite of a banned user is rejected, even by an admin",
        ALL_VERSIONS,
        _member(ALICE, BOB, "invite"),
        ("member", "invite", 3),
        setup=room_with("invite", {BOB: "ban"}),
    ),
    Case(
        "sender below the invite level cannot invite",
        ALL_VERSIONS,
        _member(DAVE, BOB, "invite"),
        ("member", "invite", 5),
        setup=room_with("invite", invite=51),
    ),
    Case(
        "sender exactly at the invite level invites",
        ALL_VERSIONS,
        _member(DAVE, BOB, "invite"),
        setup=room_with("invite", invite=50),
    ),
    Case(
        "invite level written as a string counts before v10",
        versions("1-9"),
        _member(DAVE, BOB, "invite"),
        ("member", "invite", 5),
        setup=room_with("invite", invite="51"),
    ),
]

# --- leave -----------------------------------------------------------------------------------

LEAVE_CASES = [
    Case("joined user leaves", ALL_VERSIONS, _member(DAVE, DAVE, "leave")),
    Case(
        "invited user rejects the invite",
        ALL_VERSIONS,
        _member(BOB, BOB, "leave"),
        setup=room_with("invite", {BOB: "invite"}),
    ),
    Case(
        "knocking user withdraws the knock",
        versions("7+"),
        _member(BOB, BOB, "leave"),
        setup=room_with("knock", {BOB: "knock"}),
    ),
    Case(
        "knock membership cannot be withdrawn before v7",
        versions("1-6"),
        _member(BOB, BOB, "leave"),
        ("member", "leave", 1),
        setup=room_with("knock", {BOB: "knock"}),
    ),
    Case(
        "user with no membership cannot leave",
        ALL_VERSIONS,
        _member(BOB, BOB, "leave"),
        ("member", "leave", 1),
    ),
    Case(
        "user who left cannot leave again",
        ALL_VERSIONS,
        _member(BOB, BOB, "leave"),
        ("member", "leave", 1),
        setup=room_with("invite", {BOB: "leave"}),
    ),
    Case(
        "banned user cannot unban themselves by leaving",
        ALL_VERSIONS,
        _member(BOB, BOB, "leave"),
        ("member", "leave", 1),
        setup=room_with("invite", {BOB: "ban"}),
    ),
    Case(
        "moderator kicks a user below them",
        ALL_VERSIONS,
        _member(DAVE, CAROL, "leave"),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "moderator revokes an invite",
        ALL_VERSIONS,
        _member(DAVE, BOB, "leave"),
        setup=room_with("invite", {BOB: "invite"}),
    ),
    Case(
        "moderator kicks a user who is not in the room",
        ALL_VERSIONS,
        _member(DAVE, BOB, "leave"),
    ),
    Case(
        "sender who is not joined cannot kick",
        ALL_VERSIONS,
        _member(MALLORY, CAROL, "leave"),
        ("member", "leave", 2),
        setup=room_with("invite", {CAROL: "join"}, users={MALLORY: 100}),
    ),
    Case(
        "unban needs the ban level",
        ALL_VERSIONS,
        _member(DAVE, BOB, "leave"),
        ("member", "leave", 3),
        setup=room_with("invite", {BOB: "ban"}, ban=60),
    ),
    Case(
        "unban needs the kick level too",
        ALL_VERSIONS,
        _member(DAVE, BOB, "leave"),
        ("member", "leave", 5),
        setup=room_with("invite", {BOB: "ban"}, ban=50, kick=60),
    ),
    Case(
        "unban with the ban and kick levels is allowed",
        ALL_VERSIONS,
        _member(DAVE, BOB, "leave"),
        setup=room_with("invite", {BOB: "ban"}),
    ),
    Case(
        "kick below the kick level is rejected",
        ALL_VERSIONS,
        _member(CAROL, BOB, "leave"),
        ("member", "leave", 5),
        setup=room_with("invite", {CAROL: "join", BOB: "join"}),
    ),
    Case(
        "kick of a user at the same level is rejected",
        ALL_VERSIONS,
        _member(DAVE, CAROL, "leave"),
        ("member", "leave", 5),
        setup=room_with("invite", {CAROL: "join"}, users={CAROL: 50}),
    ),
    Case(
        "kick of a user above is rejected",
        ALL_VERSIONS,
        _member(DAVE, ALICE, "leave"),
        ("member", "leave", 5),
    ),
    Case(
        "kick level written as a string counts before v10",
        versions("1-9"),
        _member(DAVE, CAROL, "leave"),
        ("member", "leave", 5),
        setup=room_with("invite", {CAROL: "join"}, kick=" +060 "),
    ),
]

# --- ban -------------------------------------------------------------------------------------

BAN_CASES = [
    Case(
        "moderator bans a member below them",
        ALL_VERSIONS,
        _member(DAVE, CAROL, "ban"),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case("moderator bans a user who never joined", ALL_VERSIONS, _member(DAVE, BOB, "ban")),
    Case(
        "sender who is not joined cannot ban",
        ALL_VERSIONS,
        _member(MALLORY, BOB, "ban"),
        ("member", "ban", 1),
        setup=room_with("invite", users={MALLORY: 100}),
    ),
    Case(
        "ban below the ban level is rejected",
        ALL_VERSIONS,
        _member(DAVE, BOB, "ban"),
        ("member", "ban", 3),
        setup=room_with("invite", ban=51),
    ),
    Case(
        "ban of a user at the same level is rejected",
        ALL_VERSIONS,
        _member(DAVE, CAROL, "ban"),
        ("member", "ban", 3),
        setup=room_with("invite", {CAROL: "join"}, users={CAROL: 50}),
    ),
    Case(
        "ban of oneself is rejected (not above oneself)",
        ALL_VERSIONS,
        _member(DAVE, DAVE, "ban"),
        ("member", "ban", 3),
    ),
    Case(
        "admin bans a moderator",
        ALL_VERSIONS,
        _member(ALICE, DAVE, "ban"),
    ),
]

# --- knock -----------------------------------------------------------------------------------

KNOCK_CASES = [
    Case(
        "user knocks on a knock room",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        setup=room_with("knock"),
    ),
    Case(
        "user who left knocks again",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        setup=room_with("knock", {BOB: "leave"}),
    ),
    Case(
        "knocking user knocks again",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        setup=room_with("knock", {BOB: "knock"}),
    ),
    Case(
        "knock on an invite room is rejected",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        ("member", "knock", 1),
    ),
    Case(
        "knock on a public room is rejected",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        ("member", "knock", 1),
        setup=room_with("public"),
    ),
    Case(
        "knock on a restricted room is rejected",
        versions("8+"),
        _member(BOB, BOB, "knock"),
        ("member", "knock", 1),
        setup=room_with("restricted"),
    ),
    Case(
        "knock on a knock_restricted room is allowed from v10",
        versions("10+"),
        _member(BOB, BOB, "knock"),
        setup=room_with("knock_restricted"),
    ),
    Case(
        "knock on a knock_restricted room is rejected before v10",
        versions("7-9"),
        _member(BOB, BOB, "knock"),
        ("member", "knock", 1),
        setup=room_with("knock_restricted"),
    ),
    Case(
        "knock on a room without join rules is rejected (they default to invite)",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        ("member", "knock", 1),
        setup=lambda version: _room_without_join_rules(version, invited=False),
    ),
    Case(
        "knock for someone else is rejected",
        versions("7+"),
        _member(DAVE, BOB, "knock"),
        ("member", "knock", 2),
        setup=room_with("knock"),
    ),
    Case(
        "banned user cannot knock",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        ("member", "knock", 4),
        setup=room_with("knock", {BOB: "ban"}),
    ),
    Case(
        "invited user cannot knock",
        versions("7+"),
        _member(BOB, BOB, "knock"),
        ("member", "knock", 4),
        setup=room_with("knock", {BOB: "invite"}),
    ),
    Case(
        "joined user cannot knock",
        versions("7+"),
        _member(DAVE, DAVE, "knock"),
        ("member", "knock", 4),
        setup=room_with("knock"),
    ),
]


@pytest.mark.parametrize(
    ("case", "version"), cases_by_version(INVITE_CASES + LEAVE_CASES + BAN_CASES + KNOCK_CASES)
)
def test_invite_leave_ban_knock_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- v12: room creators ----------------------------------------------------------------------


def _v12_room_with_additional_creator(version: RoomVersion) -> Room:
    room = Room(version, create_content={"additional_creators": [BOB]})
    room.set_member(ALICE, "join")
    room.set_member(BOB, "join")
    room.set_power_levels(users={DAVE: 99}, kick=0, ban=0)
    room.set_join_rule("invite")
    room.set_member(DAVE, "join")
    return room


CREATOR_CASES = [
    Case(
        "nobody can kick a creator, whatever their level",
        versions("12"),
        _member(DAVE, ALICE, "leave"),
        ("member", "leave", 5),
        setup=_v12_room_with_additional_creator,
    ),
    Case(
        "nobody can ban an additional creator",
        versions("12"),
        _member(DAVE, BOB, "ban"),
        ("member", "ban", 3),
        setup=_v12_room_with_additional_creator,
    ),
    Case(
        "a creator cannot kick another creator (both infinite)",
        versions("12"),
        _member(ALICE, BOB, "leave"),
        ("member", "leave", 5),
        setup=_v12_room_with_additional_creator,
    ),
    Case(
        "an additional creator kicks anyone else",
        versions("12"),
        _member(BOB, DAVE, "leave"),
        setup=_v12_room_with_additional_creator,
    ),
    Case(
        "a creator invites whatever the invite level",
        versions("12"),
        _member(ALICE, CAROL, "invite"),
        setup=room_with("invite", invite=2**53 - 1),
    ),
    Case(
        "before v12 a creator listed below a moderator can be kicked",
        versions("1-11"),
        _member(DAVE, ALICE, "leave"),
        setup=room_with("invite", users={ALICE: 10}),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(CREATOR_CASES))
def test_creator_membership_rules(case: Case, version: RoomVersion) -> None:
    case.run(version)


# --- restricted joins and join_authorised_via_users_server ------------------------------------


def _signed_by(*servers: str):
    """An `is_signed_by` that knows the event carries signatures from `servers`."""
    return lambda event, server_name: server_name in servers


RESTRICTED_RULES = ["restricted", "knock_restricted"]


def _restricted_versions(join_rule: str) -> list[RoomVersion]:
    return versions("10+") if join_rule == "knock_restricted" else versions("8+")


def _restricted_room(join_rule: str, members=None, **power_levels):
    return room_with(join_rule, {CAROL: "join", **(members or {})}, **power_levels)


def _authorised_join(authoriser: object = CAROL):
    return _member(BOB, BOB, "join", join_authorised_via_users_server=authoriser)


def _restricted_cases(join_rule: str) -> list[Case]:
    applies = _restricted_versions(join_rule)
    return [
        Case(
            f"{join_rule}: invited user joins without an authoriser",
            applies,
            _member(BOB, BOB, "join"),
            setup=_restricted_room(join_rule, {BOB: "invite"}),
        ),
        Case(
            f"{join_rule}: joined user sends another join without an authoriser",
            applies,
            _member(CAROL, CAROL, "join"),
            setup=_restricted_room(join_rule),
        ),
        Case(
            f"{join_rule}: join authorised by a joined member who may invite",
            applies,
            _authorised_join(),
            setup=_restricted_room(join_rule),
        ),
        Case(
            f"{join_rule}: join without an authoriser is rejected",
            applies,
            _member(BOB, BOB, "join"),
            ("member", "join", "restricted", 2),
            setup=_restricted_room(join_rule),
        ),
        Case(
            f"{join_rule}: join authorised by someone not joined is rejected",
            applies,
            _authorised_join(MALLORY),
            ("member", "join", "restricted", 2),
            setup=_restricted_room(join_rule, users={MALLORY: 100}),
        ),
        Case(
            f"{join_rule}: join authorised by an invited user is rejected",
            applies,
            _authorised_join(MALLORY),
            ("member", "join", "restricted", 2),
            setup=_restricted_room(join_rule, {MALLORY: "invite"}),
        ),
        Case(
            f"{join_rule}: join authorised by a member below the invite level is rejected",
            applies,
            _authorised_join(),
            ("member", "join", "restricted", 2),
            setup=_restricted_room(join_rule, invite=1),
        ),
        Case(
            f"{join_rule}: banned user cannot join even when authorised",
            applies,
            _authorised_join(),
            ("member", "join", 3),
            setup=_restricted_room(join_rule, {BOB: "ban"}),
        ),
    ]


RESTRICTED_CASES = [case for rule in RESTRICTED_RULES for case in _restricted_cases(rule)]


@pytest.mark.parametrize(("case", "version"), cases_by_version(RESTRICTED_CASES))
def test_restricted_join_rules(case: Case, version: RoomVersion) -> None:
    case.run(version, is_signed_by=_signed_by("b.example", "c.example", "m.example"))


def test_knock_restricted_room_admits_the_invited_through_the_knock_path() -> None:
    for version in versions("10+"):
        room = _restricted_room("knock_restricted", {BOB: "knock"})(version)
        assert room.check(room.member_event(DAVE, BOB, "invite")) is None


AUTHORISER_SIGNATURE_CASES = [
    Case(
        "join naming an authoriser must be signed by the authoriser's server",
        versions("8+"),
        _authorised_join(),
        ("member", "authoriser_signature"),
        setup=_restricted_room("restricted"),
    ),
    Case(
        "the authoriser's signature is needed even in a public room",
        versions("8+"),
        _authorised_join(),
        ("member", "authoriser_signature"),
        setup=room_with("public", {CAROL: "join"}),
    ),
    Case(
        "the authoriser's signature is needed on any membership naming one",
        versions("8+"),
        _member(DAVE, DAVE, "leave", join_authorised_via_users_server=CAROL),
        ("member", "authoriser_signature"),
        setup=room_with("invite", {CAROL: "join"}),
    ),
    Case(
        "an authoriser that is not a user ID cannot sign",
        versions("8+"),
        _authorised_join("c.example"),
        ("member", "authoriser_signature"),
        setup=room_with("public", {CAROL: "join"}),
    ),
    Case(
        "an authoriser that is not a string cannot sign",
        versions("8+"),
        _authorised_join(["@carol:c.example"]),
        ("member", "authoriser_signature"),
        setup=room_with("public", {CAROL: "join"}),
    ),
    Case(
        "before v8 join_authorised_via_users_server means nothing",
        versions("1-7"),
        _authorised_join(),
        setup=room_with("public", {CAROL: "join"}),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(AUTHORISER_SIGNATURE_CASES))
def test_authoriser_signature_rule(case: Case, version: RoomVersion) -> None:
    case.run(version, is_signed_by=_signed_by("b.example"))


@pytest.mark.parametrize("version", versions("8+"), ids=lambda v: f"v{v.identifier}")
def test_without_a_signature_checker_a_join_naming_an_authoriser_is_rejected(
    version: RoomVersion,
) -> None:
    room = _restricted_room("restricted")(version)
    rejection = room.check(_authorised_join()(room))
    assert_rejected_by(rejection, rule_number(version, "member", "authoriser_signature"))


@pytest.mark.parametrize("version", versions("8+"), ids=lambda v: f"v{v.identifier}")
def test_the_signature_is_asked_of_the_authorisers_server_for_this_event(
    version: RoomVersion,
) -> None:
    room = _restricted_room("restricted")(version)
    join = _authorised_join()(room)
    asked: list[tuple[object, str]] = []

    def is_signed_by(event, server_name: str) -> bool:
        asked.append((event, server_name))
        return True

    assert room.check(join, is_signed_by=is_signed_by) is None
    assert asked == [(join, "c.example")]


# --- malformed state -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_a_join_rule_that_is_not_a_string_admits_nobody(version: RoomVersion) -> None:
    room = room_with("public", {BOB: "invite"})(version)
    room.set_state("m.room.join_rules", {"join_rule": ["public"]})
    for user_id in (BOB, CAROL):
        rejection = room.check(room.member_event(user_id, user_id, "join"))
        assert_rejected_by(rejection, rule_number(version, "member", "join", "join_otherwise"))


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_join_rules_without_a_join_rule_mean_invite(version: RoomVersion) -> None:
    room = room_with("public", {BOB: "invite"})(version)
    room.set_state("m.room.join_rules", {})
    assert room.check(room.member_event(BOB, BOB, "join")) is None
    rejection = room.check(room.member_event(CAROL, CAROL, "join"))
    assert_rejected_by(rejection, rule_number(version, "member", "join", "join_otherwise"))


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_a_membership_that_is_not_a_string_counts_as_none(version: RoomVersion) -> None:
    room = room_with("invite")(version)
    room.set_member(BOB, ["join"])  # type: ignore[arg-type]
    assert_rejected_by(room.check(room.message(BOB)), rule_number(version, "sender_joined"))
    rejection = room.check(room.member_event(BOB, BOB, "leave"))
    assert_rejected_by(rejection, rule_number(version, "member", "leave", 1))
