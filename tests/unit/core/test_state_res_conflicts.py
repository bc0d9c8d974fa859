"""What state resolution works on: the conflicted state, the auth difference, the conflicted
state subgraph (v12), power events, and events it cannot fetch or that were rejected.

Spec: `content/rooms/fragments/v2-state-res.md`, *Definitions* and *Rejected events*;
`content/rooms/v12.md`, *conflicted state subgraph* and *full conflicted set*;
`content/rooms/v1.md` for what counts as a conflict in room version 1.
"""

from __future__ import annotations

from typing import Any

import pytest

from matrix_conduit.core.state_res import resolve_state
from matrix_conduit.core.state_res.auth_dag import AuthDag, NearestMembers
from matrix_conduit.core.state_res.conflicts import split_v1, split_v2
from matrix_conduit.core.state_res.v2 import (
    auth_difference,
    conflicted_state_subgraph,
    full_conflicted_set_of,
    is_power_event,
)
from tests.unit.core.state_res_scenarios import (
    ALICE,
    BOB,
    ELLA,
    MEMBER,
    TOPIC,
    Room,
    admin_levels,
    start_room,
)

TOPIC_KEY = (TOPIC, "")
NAME_KEY = ("m.room.name", "")


# --- unconflicted state map and conflicted state set ------------------------------------


def test_a_key_missing_from_one_state_is_conflicted_in_v2() -> None:
    conflicts = split_v2([{TOPIC_KEY: "$t", NAME_KEY: "$n"}, {TOPIC_KEY: "$t"}])

    assert conflicts.unconflicted == {TOPIC_KEY: "$t"}
    assert conflicts.conflicted == {NAME_KEY: frozenset({"$n"})}


def test_a_key_missing_from_one_state_is_not_a_conflict_in_v1() -> None:
    conflicts = split_v1([{TOPIC_KEY: "$t", NAME_KEY: "$n"}, {TOPIC_KEY: "$t"}])

    assert conflicts.unconflicted == {TOPIC_KEY: "$t", NAME_KEY: "$n"}
    assert conflicts.conflicted == {}


def test_different_events_for_a_key_are_conflicted_in_both_versions() -> None:
    states = [{TOPIC_KEY: "$a"}, {TOPIC_KEY: "$b"}, {TOPIC_KEY: "$a"}]

    for split in (split_v1, split_v2):
        assert split(states).conflicted == {TOPIC_KEY: frozenset({"$a", "$b"})}


@pytest.mark.parametrize("version", ["1", "10", "12"])
def test_states_that_agree_resolve_to_themselves_without_fetching_anything(version: str) -> None:
    room = start_room(version)
    state = room.state_after("START")
    fetched: list[str] = []

    def fetch(event_id: str) -> dict[str, Any] | None:
        fetched.append(event_id)
        return room.fetch(event_id)

    resolved = resolve_state(room.room_version, [state, dict(state)], fetch)

    assert resolved == state
    assert fetched == []


def test_resolving_one_state_gives_it_back_and_none_gives_the_empty_state() -> None:
    room = start_room("10")
    state = room.state_after("START")

    assert room.resolve([state]) == state
    assert room.resolve([]) == {}


# --- power events -----------------------------------------------------------------------


def member_event(sender: str, target: str, membership: str) -> dict[str, Any]:
    return {
        "type": MEMBER,
        "state_key": target,
        "sender": sender,
        "content": {"membership": membership},
    }


@pytest.mark.parametrize(
    ("event", "is_power"),
    [
        ({"type": "m.room.power_levels", "state_key": "", "sender": ALICE, "content": {}}, True),
        ({"type": "m.room.join_rules", "state_key": "", "sender": ALICE, "content": {}}, True),
        (member_event(ALICE, BOB, "ban"), True),
        (member_event(ALICE, BOB, "leave"), True),
        (member_event(BOB, BOB, "leave"), False),
        (member_event(ALICE, BOB, "invite"), False),
        (member_event(BOB, BOB, "join"), False),
        ({"type": TOPIC, "state_key": "", "sender": ALICE, "content": {}}, False),
        ({"type": "m.room.power_levels", "sender": ALICE, "content": {}}, False),
    ],
    ids=[
        "power levels",
        "join rules",
        "ban",
        "kick",
        "leaving oneself",
        "invite",
        "join",
        "topic",
        "non-state power levels",
    ],
)
def test_power_events_are_those_that_can_take_an_ability_away(
    event: dict[str, Any], is_power: bool
) -> None:
    assert is_power_event(event) is is_power


# --- auth difference --------------------------------------------------------------------


def topic_basic_forks(room: Room) -> tuple[dict, dict]:
    """Alice demotes bob on one fork (PA2); bob re-sends levels (PB) and a topic (T3)."""
    room.topic("T1", ALICE, after=["START"])
    room.power_levels("PA1", ALICE, admin_levels(room, bob=50), after=["T1"])
    room.topic("T2", ALICE, after=["PA1"])
    room.power_levels("PA2", ALICE, admin_levels(room, bob=0), after=["T2"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50), after=["PA1"])
    room.topic("T3", BOB, after=["PB"])
    return room.state_after("PA2"), room.state_after("T3")


@pytest.mark.parametrize("cached_chains", [False, True], ids=["walked", "cached"])
def test_the_auth_difference_is_what_only_some_forks_auth_chains_hold(cached_chains: bool) -> None:
    """Fork 2's state has T3 citing PB and IMB (bob's join): nothing in fork 1's state
    cites either (no event of bob's is in it, and IMB's own auth events do not count
    towards its chain). PA1 is in both (T2 and PB cite it), and so is everything older.
    Difference: {PB, IMB}."""
    room = start_room("10")
    states = topic_basic_forks(room)
    dag = AuthDag(room.fetch, room.auth_chain_of if cached_chains else None)

    difference = auth_difference(states, split_v2(states), dag)

    assert {room.name_of(event_id) for event_id in difference} == {"PB", "IMB"}


# --- conflicted state subgraph (v12) ----------------------------------------------------


def linked(event_id: str, *auth: str) -> dict[str, Any]:
    return {"event_id": event_id, "auth_events": list(auth)}


def test_the_conflicted_subgraph_holds_the_events_between_two_conflicted_events() -> None:
    """$c1 → $between → $c2 → $below
              └──→ $aside          ($c1 and $c2 conflicted)

    `$between` is on a path from `$c1` to `$c2`; `$aside` leads to no conflicted event;
    `$below` is reached from a conflicted event but leads to none."""
    events = {
        event["event_id"]: event
        for event in (
            linked("$c1", "$between", "$aside"),
            linked("$between", "$c2"),
            linked("$c2", "$below"),
            linked("$aside"),
            linked("$below"),
        )
    }

    subgraph = conflicted_state_subgraph(frozenset({"$c1", "$c2"}), AuthDag(events.get))

    assert subgraph == {"$between", "$c2"}


def test_only_v12_pulls_the_conflicted_subgraph_into_the_full_conflicted_set() -> None:
    """Bob changes his display name (MB2, citing PL P1); then bob sets a topic on one
    fork (TA, citing P1 and MB2) while alice sends new power levels P2 and bob a topic
    TB on the other.

    Conflicted: power levels {P1, P2}, topic {TA, TB}. Both forks' auth chains hold MB2
    (cited by TA and TB) and P1, so the auth difference is {P2}. But MB2 lies on the
    path TA → MB2 → P1 between two conflicted events: v12 adds it, v2 does not."""
    for version, expected_extra in (("11", set()), ("12", {"MB2"})):
        room = start_room(version)
        room.power_levels("P1", ALICE, admin_levels(room, bob=50), after=["START"])
        room.add(
            "MB2",
            MEMBER,
            BOB,
            {"membership": "join", "displayname": "B"},
            state_key=BOB,
            after=["P1"],
        )
        room.topic("TA", BOB, after=["MB2"])
        room.power_levels("P2", ALICE, admin_levels(room, bob=50, ella=10), after=["MB2"])
        room.topic("TB", BOB, after=["P2"])
        states = room.state_after("TA"), room.state_after("TB")
        revised = room.room_version.privileged_creators

        full = full_conflicted_set_of(
            states, split_v2(states), AuthDag(room.fetch), revised=revised
        )

        assert {room.name_of(event_id) for event_id in full} == {
            "P1",
            "P2",
            "TA",
            "TB",
            *expected_extra,
        }, version


# --- events that cannot be fetched, rejected events -------------------------------------


@pytest.mark.parametrize("version", ["1", "10", "12"])
def test_a_conflicted_event_that_cannot_be_fetched_takes_no_part(version: str) -> None:
    room = start_room(version)
    room.topic("TA", ALICE, after=["START"])
    room.topic("TB", ALICE, after=["START"])
    missing = room.id_of("TB")

    resolved = resolve_state(
        room.room_version,
        [room.state_after("TA"), room.state_after("TB")],
        lambda event_id: None if event_id == missing else room.fetch(event_id),
    )

    assert resolved[TOPIC_KEY] == room.id_of("TA")


@pytest.mark.parametrize("version", ["1", "10", "12"])
def test_unconflicted_state_is_kept_even_if_its_events_cannot_be_fetched(version: str) -> None:
    room = start_room(version)
    room.topic("TA", ALICE, after=["START"])
    room.topic("TB", ALICE, after=["START"])
    zara = room.state_after("START")[(MEMBER, "@zara:example.com")]

    resolved = resolve_state(
        room.room_version,
        [room.state_after("TA"), room.state_after("TB")],
        lambda event_id: None if event_id == zara else room.fetch(event_id),
    )

    assert resolved[(MEMBER, "@zara:example.com")] == zara


def test_a_rejected_auth_event_is_not_used_in_place_of_missing_state() -> None:
    """The scenario of `test_a_topic_survives_its_senders_rejected_join_through_its_own_
    auth_events` (v2 tests): ella's topic TE passes only by falling back on its own auth
    event ME, ella's join. If the caller rejected ME, the fallback is not allowed ("if
    the auth event is not rejected"), ella is not joined, and TE fails."""
    room = start_room("10")
    room.join_rules("JR", ALICE, "invite", after=["START"])
    room.member("ME", ELLA, "join", after=["START"])
    room.power_levels("PE", ALICE, admin_levels(room, ella=50), after=["ME"])
    room.topic("TE", ELLA, after=["PE"])
    states = [room.state_after("JR"), room.state_after("TE")]

    accepted = room.resolve(states)
    with_me_rejected = room.resolve(
        states, is_rejected=lambda event_id: event_id == room.id_of("ME")
    )

    assert accepted[TOPIC_KEY] == room.id_of("TE")
    assert TOPIC_KEY not in with_me_rejected


# --- walking the auth graph -------------------------------------------------------------


def test_step_1_takes_in_conflicted_events_reached_through_events_outside_the_set() -> None:
    """ "For each such power event P, enlarge X by adding the events in the auth chain of
    P which also belong to the full conflicted set": `$member` is in `$power`'s auth
    chain through `$outside`, which is not in the set, and still joins X."""
    events = {
        event["event_id"]: event
        for event in (
            linked("$power", "$outside"),
            linked("$outside", "$member"),
            linked("$member"),
            linked("$unrelated"),
        )
    }
    full_conflicted_set = frozenset({"$power", "$member", "$unrelated"})

    x = NearestMembers(AuthDag(events.get), full_conflicted_set).closure(["$power"])

    assert x == {"$power", "$member"}


def test_walks_of_an_auth_graph_with_a_cycle_end() -> None:
    """Room v1/v2 event ids are picked by the sender, so forged events can cite each
    other in a loop; walking them must still terminate."""
    events = {
        event["event_id"]: event
        for event in (
            linked("$a", "$b"),
            linked("$b", "$c"),
            linked("$c", "$a", "$m"),
            linked("$m"),
        )
    }
    dag = AuthDag(events.get)

    assert dag.auth_chain_union(["$a"]) == {"$a", "$b", "$c", "$m"}
    assert NearestMembers(dag, frozenset({"$m"})).closure(["$a"]) == {"$a", "$m"}
