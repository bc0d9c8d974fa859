"""State resolution v2 on whole scenarios, each worked out by hand from the algorithm.

Spec: `content/rooms/fragments/v2-state-res.md`. These are the classic cases other
implementations test v2 with (ban vs power levels, join rule evasion, off-topic power
levels, topic basic / reset / with a merge, mainline sort), rebuilt from the spec's
text, plus a few more. Every scenario starts from `start_room()`:

    CREATE → IMA → IPOWER (alice 100) → IJR (public) → IMB → IMC → IMZ → START

with timestamps 1–8, and the events each test adds get 9, 10, ... in the order written.
The derivations are for room version 10; each test also runs in version 2 (room v1
event format) and version 12 (state resolution v2.1, creators with infinite power), where
the same outcome follows: the v12 differences are exercised in `test_state_res_v12.py`.

Notation in the derivations: C_i is the full auth chain of fork i, FCS the full conflicted
set, X the power events with their conflicted auth ancestors (step 1).
"""

from __future__ import annotations

import pytest

from tests.unit.core.state_res_scenarios import (
    ALICE,
    BOB,
    CHARLIE,
    ELLA,
    MEMBER,
    MESSAGE,
    POWER_LEVELS,
    TOPIC,
    ZARA,
    Room,
    admin_levels,
    start_room,
)


@pytest.fixture(params=["2", "10", "12"])
def room(request: pytest.FixtureRequest) -> Room:
    return start_room(request.param)


def assert_state(room: Room, resolved: dict, expected: dict) -> None:
    assert room.names(resolved) == room.names(expected)


def test_a_ban_racing_a_power_level_change_is_applied_before_it(room: Room) -> None:
    """Alice bans bob on one fork; bob, given 50 before the fork, sends power levels on another.

        START → PA (alice: bob 50) → MA (alice re-joins) → MB (alice bans bob)
                      └──────────→ PB (bob: same levels)

    Conflicted: power levels {PA, PB}, alice {MA, IMA}, bob {MB, IMB}. Auth difference
    {MA} (only MB cites it). X = {PA, PB, MB} and their conflicted auth ancestors
    {IMA, MA, IMB}. Order: IMA (alice, creator, 100, ts 2) → PA (100) → MA (100) →
    IMB (bob 0, ts 5) → MB (alice 100, ts 11) → PB (bob 50, ts 12). From the
    unconflicted state all pass until PB: bob is banned by then, so PB is rejected.
    Nothing is left for the mainline. Result: PA, MA, MB.
    """
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.member("MA", ALICE, "join", after=["PA"])
    room.member("MB", ALICE, "ban", target=BOB, after=["MA"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50), after=["PA"])

    resolved = room.state_after("MB", "PB")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "PA", "MA", "MB"))


def test_a_join_racing_a_change_to_invite_only_is_rejected(room: Room) -> None:
    """Alice makes the room invite-only on one fork while ella joins on another.

        START → JR (alice: invite)
          └───→ ME (ella joins, the room still public for her)

    Conflicted: join rules {JR, IJR}, ella {ME} (absent on the JR fork). Auth difference
    is empty (IJR is in both chains: bob's join cites it). X = {IJR, JR}, unrelated by
    auth, both by alice at 100: IJR (ts 4) then JR (ts 9), both pass. ME is left for the
    mainline; checked against join rule `invite` with no invite, it is rejected.
    Result: JR, and no member event for ella.
    """
    room.join_rules("JR", ALICE, "invite", after=["START"])
    room.member("ME", ELLA, "join", after=["START"])

    resolved = room.state_after("JR", "ME")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "JR"))
    assert (MEMBER, ELLA) not in resolved


def test_power_levels_passed_down_a_chain_of_delegates_survive(room: Room) -> None:
    """Power levels handed on alice → bob → charlie on one fork, alice's first step on the other.

        START → PA (alice: bob 50) → PB (bob: charlie 50) → PC (charlie: charlie 0)
                  └ (the other fork ends at PA)

    Conflicted: power levels {PA, PC}. Auth difference {PA, PB, IMB, IMC}: only the PC
    fork's chain has them (PC cites PB and charlie's join IMC, PB cites PA and bob's join
    IMB; nothing in the PA fork's state cites bob's or charlie's join). X is all of these:
    PA (alice 100) goes first, then the joins IMB (ts 5) and IMC (ts 6) at power 0, then
    PB and PC, which cite them. Every one passes, each power levels event allowed by the
    one before (charlie may lower his own level). Result: PC.
    """
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50, charlie=50), after=["PA"])
    room.power_levels("PC", CHARLIE, admin_levels(room, bob=50, charlie=0), after=["PB"])

    resolved = room.state_after("PC", "PA")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "PC"))


def test_a_topic_from_a_user_demoted_on_the_other_fork_is_rejected(room: Room) -> None:
    """Topic basic: alice demotes bob on one fork; bob, still 50, re-sends levels and a topic.

        START → T1 → PA1 (bob 50) → T2 (alice) → PA2 (alice: bob 0)
                        └─────────→ PB (bob: bob 50) → T3 (bob)

    Conflicted: topic {T2, T3}, power levels {PA2, PB}. Auth difference {PB, IMB} (bob's
    join is cited only on his fork). X = {PA2, PB, IMB}: PA2 (alice 100) and IMB (bob 0)
    are ready first, PA2 goes first; then IMB, then PB, which cites it. PA2 and IMB pass;
    PB does not (bob is now 0, power levels need 50). Mainline of PA2: [PA2, PA1,
    IPOWER]. T2 cites PA1 (position 1), T3 cites PB, whose power levels are PA1
    (position 1): a tie, so T2 (ts 11) before T3 (ts 14). T2 passes, T3 fails
    (bob 0 < 50). Result: PA2, T2.
    """
    room.topic("T1", ALICE, after=["START"])
    room.power_levels("PA1", ALICE, admin_levels(room, bob=50), after=["T1"])
    room.topic("T2", ALICE, after=["PA1"])
    room.power_levels("PA2", ALICE, admin_levels(room, bob=0), after=["T2"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50), after=["PA1"])
    room.topic("T3", BOB, after=["PB"])

    resolved = room.state_after("PA2", "T3")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "PA2", "T2"))


def test_a_topic_reverts_when_its_sender_is_banned_on_the_same_fork(room: Room) -> None:
    """Topic reset: bob's topic is followed by his ban; the other fork stops at alice's T1.

        START → T1 (alice) → PA (alice: bob 50) → T2 (bob) → MB (alice bans bob)
                  └ (the other fork ends at T1)

    Conflicted: topic {T1, T2}, power levels {IPOWER, PA}, bob {IMB, MB}. Auth difference
    {PA, IMB}. X = {IPOWER, PA, MB, IMB}: IPOWER (alice) → PA (alice) → IMB (bob 0) → MB;
    all pass, so bob ends banned and power levels are PA. Mainline of PA: [PA, IPOWER];
    T1 cites IPOWER (position 1), T2 cites PA (position 0): T1 first. T1 passes, T2 fails
    (bob is banned). Result: T1, PA, MB.
    """
    room.topic("T1", ALICE, after=["START"])
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["T1"])
    room.topic("T2", BOB, after=["PA"])
    room.member("MB", ALICE, "ban", target=BOB, after=["T2"])

    resolved = room.state_after("MB", "T1")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "T1", "PA", "MB"))


def test_a_topic_sent_after_a_merge_wins_over_the_topic_before_it(room: Room) -> None:
    """Topic with a merge: the topic-basic forks merge at MZ1, and alice then sets T4.

        ... PA2 ──┐
        ... T3 ───┴→ MZ1 (zara's message; state: PA2, T2 as in topic basic) → T4 (alice)

    Resolving T4's fork with MZ1's: conflicted only topic {T2, T4}; power levels PA2 are
    unconflicted. Auth difference {PA2} (T4 cites it; nothing in MZ1's state does). X =
    {PA2}, re-checked against the unconflicted state (where it is the current power levels:
    no change, allowed). Mainline of PA2: T2 cites PA1 (position 1), T4 cites PA2
    (position 0): T2 then T4, both pass. Result: T4, PA2.
    """
    room.topic("T1", ALICE, after=["START"])
    room.power_levels("PA1", ALICE, admin_levels(room, bob=50), after=["T1"])
    room.topic("T2", ALICE, after=["PA1"])
    room.power_levels("PA2", ALICE, admin_levels(room, bob=0), after=["T2"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50), after=["PA1"])
    room.topic("T3", BOB, after=["PB"])
    room.add("MZ1", MESSAGE, ZARA, {"body": "merge"}, after=["PA2", "T3"])
    room.topic("T4", ALICE, after=["MZ1"])

    resolved = room.state_after("T4", "MZ1")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "T4", "PA2"))


def test_the_mainline_puts_the_topic_based_on_older_power_levels_first(room: Room) -> None:
    """Mainline sort: two topics, each based on a different power levels event.

        START → T1 → PA1 (bob 50) → T2 → PA2 (bob 50, power levels need 100) → T3 (bob)
                        └─────────→ PB (bob: bob 50) → T4 (alice)

    Conflicted: topic {T3, T4}, power levels {PA2, PB}. X = {PA2, PB}: PA2 (alice 100)
    passes, PB (bob 50 < 100 for power levels) fails. Mainline of PA2: [PA2, PA1, IPOWER].
    T4 cites PB, not on it; PB cites PA1: position 1. T3 cites PA2: position 0. The
    greater position goes first: T4, then T3; both pass, the last applied wins.
    Result: T3, PA2 — although T4 is the later event by timestamp.
    """
    room.topic("T1", ALICE, after=["START"])
    room.power_levels("PA1", ALICE, admin_levels(room, bob=50), after=["T1"])
    room.topic("T2", ALICE, after=["PA1"])
    room.power_levels(
        "PA2", ALICE, admin_levels(room, bob=50), events={POWER_LEVELS: 100}, after=["T2"]
    )
    room.power_levels("PB", BOB, admin_levels(room, bob=50), after=["PA1"])
    room.topic("T3", BOB, after=["PA2"])
    room.topic("T4", ALICE, after=["PB"])

    resolved = room.state_after("T3", "T4")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "T3", "PA2"))


def test_topics_based_on_the_same_power_levels_are_decided_by_timestamp(room: Room) -> None:
    """Two topics on two forks after PC (alice gives charlie 50, ts 9): TB by alice (ts 10)
    and TA by charlie (ts 11).

    Conflicted: topic {TA, TB}; auth difference {IMC} (charlie's join is cited only by
    TA). No power events. Mainline of PC: [PC, IPOWER]; IMC cites IPOWER (position 1),
    both topics cite PC (position 0). Order: IMC, then the tie TB (ts 10) before TA
    (ts 11). All pass; TA is applied last. Result: TA — although TB's sender, alice, has
    more power than charlie: power orders only power events.
    """
    room.power_levels("PC", ALICE, admin_levels(room, charlie=50), after=["START"])
    room.topic("TB", ALICE, after=["PC"])
    room.topic("TA", CHARLIE, after=["PC"])

    resolved = room.state_after("TA", "TB")

    assert_state(room, resolved, room.with_events(room.state_after("PC"), "TA"))


def test_a_topic_survives_its_senders_rejected_join_through_its_own_auth_events(
    room: Room,
) -> None:
    """Alice makes the room invite-only on one fork; on another, ella joins, is given 50
    by alice and sets the topic.

        START → JR (alice: invite)
          └───→ ME (ella joins) → PE (alice: ella 50) → TE (ella's topic)

    Conflicted: join rules {IJR, JR}, power levels {IPOWER, PE}, ella {ME}, topic {TE}.
    Auth difference {ME, PE}. X = {IPOWER, IJR, JR, PE} (all alice): IPOWER first (the
    others cite it), then by timestamp IJR (4), JR (9), PE (11); all pass. Mainline of PE:
    ME cites IPOWER (position 1), TE cites PE (position 0). ME is rejected (invite only).
    TE needs ella's membership, which the partial state lacks, so the iterative auth checks
    use TE's own auth event ME ("the appropriate state event from the event's
    `auth_events` is used"): ella counts as joined at 50 and TE passes. Result: JR, PE,
    TE, and no member event for ella.
    """
    room.join_rules("JR", ALICE, "invite", after=["START"])
    room.member("ME", ELLA, "join", after=["START"])
    room.power_levels("PE", ALICE, admin_levels(room, ella=50), after=["ME"])
    room.topic("TE", ELLA, after=["PE"])

    resolved = room.state_after("JR", "TE")

    assert_state(room, resolved, room.with_events(room.state_after("START"), "JR", "PE", "TE"))
    assert (MEMBER, ELLA) not in resolved


def test_state_the_forks_agree_on_is_kept_whatever_else_changes(room: Room) -> None:
    """Bob sets the topic before the fork; then alice bans bob on one fork, zara leaves on
    the other. The topic is in both states with the same event: unconflicted, so it is
    in the result (step 5) without being checked again, even though its sender ends up
    banned. Conflicted: bob {MB, IMB} and zara {ZL, IMZ}; both changes pass.
    Result: TB, MB, ZL.
    """
    room.power_levels("PB", ALICE, admin_levels(room, bob=50), after=["START"])
    room.topic("TB", BOB, after=["PB"])
    room.member("MB", ALICE, "ban", target=BOB, after=["TB"])
    room.member("ZL", ZARA, "leave", after=["TB"])

    resolved = room.state_after("MB", "ZL")

    assert_state(room, resolved, room.with_events(room.state_after("TB"), "MB", "ZL"))
    assert resolved[(TOPIC, "")] == room.id_of("TB")
