"""What room version 12's state resolution ("v2.1") does differently from v2.

Spec: `content/rooms/v12.md`, *State resolution* (the note lists the changes): the first
iterative auth checks start from an *empty* state map, the *full conflicted set* also
holds the *conflicted state subgraph* (tested in `test_state_res_conflicts.py`), and
room creators have infinite power, which decides the reverse topological power ordering.
Each test runs the same events in v11 and v12 and derives both outcomes. The two "state
reset" problems of MSC4297 (the proposal behind these changes) are rebuilt here from its
description: in both, one state set holds an outdated event, as a partial
synchronisation (`/state`) can hand a server.
"""

from __future__ import annotations

import pytest

from tests.unit.core.state_res_scenarios import (
    ALICE,
    BOB,
    CHARLIE,
    ELLA,
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS,
    Room,
    admin_levels,
    start_room,
)

PL_KEY = (POWER_LEVELS, "")
JOIN_RULES_KEY = (JOIN_RULES, "")


def ban_agreed_but_power_levels_not(room: Room) -> list[dict]:
    """Alice gives bob 50 (PA); from there bob sends power levels PB on one fork and
    alice bans bob (MB) on another. The second state set has both PB and the ban: a state
    no correct resolution yields, but one a faulty or malicious server can claim, and
    resolution takes any state sets it is given."""
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50, charlie=50), after=["PA"])
    room.member("MB", ALICE, "ban", target=BOB, after=["PA"])
    return [room.state_after("MB"), room.with_events(room.state_after("PB"), "MB")]


@pytest.mark.parametrize(("version", "power_levels"), [("11", "PA"), ("12", "PB")])
def test_v12_checks_conflicted_power_events_without_the_unconflicted_state(
    version: str, power_levels: str
) -> None:
    """Unconflicted: bob's ban MB. Conflicted: power levels {PA, PB}, auth difference
    empty. X = {PA, PB}, PA first (PB cites it).

    v11: step 2 starts from the unconflicted state, where bob is banned: PB is rejected,
    power levels are PA. v12: step 2 starts empty; PB's checks fall back on its own auth
    events, where bob is joined (IMB) with 50 (PA, now in the partial state): PB passes.
    Step 5 then puts the unconflicted ban back. Bob ends banned either way.
    """
    room = start_room(version)
    states = ban_agreed_but_power_levels_not(room)

    resolved = room.resolve(states)

    assert resolved[PL_KEY] == room.id_of(power_levels)
    assert resolved[(MEMBER, BOB)] == room.id_of("MB")


@pytest.mark.parametrize(("version", "power_levels"), [("11", "PA"), ("12", "PB")])
def test_a_room_creator_goes_before_a_user_at_100_only_in_v12(
    version: str, power_levels: str
) -> None:
    """Alice (the creator) has given bob 100 (P), and bob has set a topic (TB). Then bob
    gives ella 10 (PB, ts 11) on one fork while alice gives charlie 50 (PA, ts 12) on the
    other; each keeps the other's change out.

    Conflicted: power levels {PA, PB}. The auth difference is empty (both states hold TB,
    which cites bob's join). X = {PA, PB}, unrelated by auth events.

    v11: alice and bob are both at 100; the earlier timestamp goes first: PB, then PA.
    Both pass, and PA, applied last, stays. v12: alice is a creator with infinite power
    and goes first: PA, then PB. Both pass, and PB stays.
    """
    room = start_room(version)
    room.power_levels("P", ALICE, admin_levels(room, bob=100), after=["START"])
    room.topic("TB", BOB, after=["P"])
    room.power_levels("PB", BOB, admin_levels(room, bob=100, ella=10), after=["TB"])
    room.power_levels("PA", ALICE, admin_levels(room, bob=100, charlie=50), after=["TB"])

    resolved = room.state_after("PA", "PB")

    assert resolved[PL_KEY] == room.id_of(power_levels)


def test_v12_events_do_not_cite_the_create_event_yet_resolution_authorises_them() -> None:
    """In v12 the room id names the create event and no event cites it; the auth rules
    still need it, and resolution finds it through the room id. Alice's ban of bob
    (against bob's topic on the other fork) could not pass without it."""
    room = start_room("12")
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.topic("TB", BOB, after=["PA"])
    room.member("MB", ALICE, "ban", target=BOB, after=["PA"])
    create_id = room.id_of("CREATE")

    resolved = room.state_after("TB", "MB")

    assert all(create_id not in event["auth_events"] for event in room.events.values())
    assert resolved[(MEMBER, BOB)] == room.id_of("MB")
    assert ("m.room.topic", "") not in resolved


@pytest.mark.parametrize(("version", "join_rules"), [("11", None), ("12", "JR2")])
def test_an_outdated_join_rule_no_longer_resets_the_join_rules_once_their_sender_left(
    version: str, join_rules: str | None
) -> None:
    """MSC4297 problem A. Alice sets the join rules again (JR2, public), ella joins under
    them (ME), and alice leaves (AL). One state set is right; the other has the outdated
    IJR instead of JR2.

    Conflicted: join rules {IJR, JR2}; unconflicted: alice has left. Auth difference
    empty (ME cites JR2 in both states, bob's join cites IJR). X = {IJR, JR2}: IJR (ts 4)
    then JR2, both alice's.

    v11: step 2 starts from the unconflicted state, where alice is not in the room: both
    join rules fail and the room is left with none. v12: step 2 starts empty; each join
    rules event falls back on its own auth events, where alice is joined: both pass, and
    JR2 stays.
    """
    room = start_room(version)
    room.join_rules("JR2", ALICE, "public", after=["START"])
    room.member("ME", ELLA, "join", after=["JR2"])
    room.member("AL", ALICE, "leave", after=["ME"])
    right = room.state_after("AL")
    outdated = room.with_events(right, "IJR")

    resolved = room.resolve([right, outdated])

    expected = None if join_rules is None else room.id_of(join_rules)
    assert resolved.get(JOIN_RULES_KEY) == expected


@pytest.mark.parametrize(("version", "power_levels"), [("11", "IPOWER"), ("12", "PB")])
def test_an_outdated_power_levels_event_no_longer_undoes_a_chain_of_promotions(
    version: str, power_levels: str
) -> None:
    """MSC4297 problem B. Alice promotes bob (PA), bob promotes charlie (PB), charlie sets
    the topic (TC). One state set is right; the other has the outdated IPOWER as power
    levels.

    Conflicted: power levels {IPOWER, PB}. Both states' auth chains hold PA and PB (TC
    cites PB, PB cites PA): the auth difference is empty.

    v11: X = {IPOWER, PB}; IPOWER passes, then PB is checked with IPOWER as power
    levels, where bob has 0: rejected, power levels fall back to IPOWER. v12: PA lies on
    the path PB → PA → IPOWER between two conflicted events, so the conflicted state
    subgraph adds it: X = {IPOWER, PA, PB}, replayed in that order, all pass: PB.
    """
    room = start_room(version)
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50, charlie=50), after=["PA"])
    room.topic("TC", CHARLIE, after=["PB"])
    right = room.state_after("TC")
    outdated = room.with_events(right, "IPOWER")

    resolved = room.resolve([right, outdated])

    assert resolved[PL_KEY] == room.id_of(power_levels)
