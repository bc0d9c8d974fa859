"""State resolution in room version 1: the original algorithm, reset bugs included.

Spec: `content/rooms/v1.md`, *State resolution*. R starts as the union of the states
without the conflicting keys; conflicting power levels, then join rules, then members are
resolved by walking their events from the lowest `depth` up (ties: descending
`sha1(event_id)`), adding the first to R and each next one while the auth rules allow it
in R, stopping at the first they reject; every other conflicting key takes the event
with the highest `depth` (ties: lowest `sha1(event_id)`) that passes auth in R.
A conflict is two states giving *different* events for a key, so a key only some states
have is not one.

Depths in these scenarios: CREATE is 1, START 8, and each event one more than its prev.
"""

from __future__ import annotations

import hashlib

from tests.unit.core.state_res_scenarios import (
    ALICE,
    BOB,
    MEMBER,
    POWER_LEVELS,
    TOPIC,
    Room,
    admin_levels,
    start_room,
)

PL_KEY = (POWER_LEVELS, "")
TOPIC_KEY = (TOPIC, "")


def ban_and_evading_topic(room: Room) -> list[dict]:
    """The spec's soft-failure example (server-server API, "Soft failure"): from A
    (here PA, alice gives bob 50), B bans bob and C is bob's topic, sent on the other
    branch. The room has no topic before."""
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.member("B", ALICE, "ban", target=BOB, after=["PA"])
    room.topic("C", BOB, after=["PA"])
    return [room.state_after("B"), room.state_after("C")]


def test_v1_keeps_a_topic_set_by_a_user_banned_on_the_other_branch() -> None:
    """ "In the original version of the algorithm C would be in the resolved state."

    The topic key is only in C's state: not a conflict, so C is in R from the start.
    Bob's membership conflicts {IMB (depth 5), B (depth 10)}: IMB goes in first, then B
    (alice, 100, may ban bob at 50) is allowed. Result: bob banned, topic C.
    """
    room = start_room("1")

    resolved = room.resolve(ban_and_evading_topic(room))

    assert resolved[(MEMBER, BOB)] == room.id_of("B")
    assert resolved[TOPIC_KEY] == room.id_of("C")


def test_v2_prioritises_the_ban_over_the_evading_topic() -> None:
    """ "whereas in latter versions the algorithm tries to prioritise the ban over the
    topic change": the topic key is missing from B's state, so it is conflicted; the ban
    is a power event, applied first, and C, checked after it, is rejected."""
    room = start_room("2")

    resolved = room.resolve(ban_and_evading_topic(room))

    assert resolved[(MEMBER, BOB)] == room.id_of("B")
    assert TOPIC_KEY not in resolved


def test_power_levels_stop_at_the_first_one_the_auth_rules_reject() -> None:
    """Three branches from PA (alice gives bob 50):

        PA → PL1 (alice: bob 0)                         depth 10
        PA → TB1 (bob's topic) → PL2 (bob: charlie 50)  depth 11
        PA → TA1 → TA2 (alice's topics) → PL3 (alice)   depth 12

    Power levels conflict {PL1, PL2, PL3}; ascending depth: PL1 goes into R; PL2 is
    checked in R, where bob is now at 0 and power levels need 50: rejected, so the walk
    stops, and PL3, which alice could send, is never considered. The topics conflict
    {TB1 (depth 10), TA2 (depth 11)}: the highest that passes in R is alice's TA2.
    Result: PL1 and TA2.
    """
    room = start_room("1")
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.power_levels("PL1", ALICE, admin_levels(room, bob=0), after=["PA"])
    room.topic("TB1", BOB, after=["PA"])
    room.power_levels("PL2", BOB, admin_levels(room, bob=50, charlie=50), after=["TB1"])
    room.topic("TA1", ALICE, after=["PA"])
    room.topic("TA2", ALICE, after=["TA1"])
    room.power_levels("PL3", ALICE, admin_levels(room, bob=50, ella=10), after=["TA2"])

    resolved = room.state_after("PL1", "PL2", "PL3")

    assert resolved[PL_KEY] == room.id_of("PL1")
    assert resolved[TOPIC_KEY] == room.id_of("TA2")


def test_other_conflicts_go_to_the_deepest_event_not_the_latest() -> None:
    """Alice's topic TD sits two events deep on its branch (depth 10) but was sent first
    (ts 1); her topic TS on the other branch is at depth 9 with ts 100. Depth decides:
    TD. (v2 would order these by timestamp and keep TS.)"""
    room = start_room("1")
    room.add("M", "m.room.message", ALICE, {"body": "first"}, after=["START"])
    room.topic("TD", ALICE, after=["M"], origin_server_ts=1)
    room.topic("TS", ALICE, after=["START"], origin_server_ts=100)

    resolved = room.state_after("TD", "TS")

    assert resolved[TOPIC_KEY] == room.id_of("TD")


def test_other_conflicts_at_equal_depth_go_to_the_lowest_sha1_of_the_event_id() -> None:
    """TA and TE, both at depth 9: sha1("$TE:example.com") = 298e8b25… is below
    sha1("$TA:example.com") = 29b6e1ae…, so TE wins, though "$TA" sorts first as a
    string and TA has the later timestamp."""
    assert (
        hashlib.sha1(b"$TE:example.com").hexdigest() < hashlib.sha1(b"$TA:example.com").hexdigest()
    )
    room = start_room("1")
    room.topic("TE", ALICE, after=["START"], origin_server_ts=1)
    room.topic("TA", ALICE, after=["START"], origin_server_ts=2)

    resolved = room.state_after("TA", "TE")

    assert resolved[TOPIC_KEY] == room.id_of("TE")


def test_the_deepest_topic_is_skipped_when_its_sender_lost_power_in_r() -> None:
    """Alice takes bob from 50 (PA) to 0 (PZ, depth 10) and sets TA (depth 11); on a
    branch from PA, bob sends two messages and TB (depth 12).

    Power levels conflict {PA (depth 9), PZ}: PA goes into R, then PZ is allowed. The
    topics conflict {TA, TB}: TB is deeper, but in R bob is at 0 and topics need 50, so
    TB fails and the next deepest, TA, wins."""
    room = start_room("1")
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.power_levels("PZ", ALICE, admin_levels(room, bob=0), after=["PA"])
    room.topic("TA", ALICE, after=["PZ"])
    room.add("M1", "m.room.message", BOB, {"body": "one"}, after=["PA"])
    room.add("M2", "m.room.message", BOB, {"body": "two"}, after=["M1"])
    room.topic("TB", BOB, after=["M2"])

    resolved = room.state_after("TA", "TB")

    assert resolved[PL_KEY] == room.id_of("PZ")
    assert resolved[TOPIC_KEY] == room.id_of("TA")
