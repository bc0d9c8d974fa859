"""The orderings of state resolution v2, and the sender power level they start from.

Spec: `content/rooms/fragments/v2-state-res.md`, definitions *reverse topological power
ordering* (Kahn's algorithm over the auth DAG, choosing among the ready events the one
whose sender has the greatest power, then the smallest `origin_server_ts`, then the
smallest `event_id`) and *mainline ordering*; `content/rooms/v12.md` for creators.

Most tests here build bare events with only the fields the ordering reads, and give the
power levels as a table, so each tie-break is seen on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from matrix_conduit.core.state_res.auth_dag import AuthDag
from matrix_conduit.core.state_res.ordering import mainline_order, reverse_topological_power_order
from matrix_conduit.core.state_res.sender_power import sender_power_level
from tests.unit.core.state_res_scenarios import (
    ALICE,
    BOB,
    CHARLIE,
    CREATE,
    POWER_LEVELS,
    Room,
    admin_levels,
    start_room,
)


def event(
    event_id: str,
    *,
    auth: Sequence[str] = (),
    ts: int = 0,
    event_type: str = "m.room.topic",
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": event_type,
        "state_key": "",
        "sender": ALICE,
        "content": {},
        "auth_events": list(auth),
        "origin_server_ts": ts,
    }


def dag_of(*events: Mapping[str, Any]) -> AuthDag:
    by_id = {event["event_id"]: event for event in events}
    return AuthDag(by_id.get)


def power_order(dag: AuthDag, powers: Mapping[str, int], members: Sequence[str]) -> list[str]:
    return reverse_topological_power_order(members, dag, powers.__getitem__)


# --- reverse topological power ordering -------------------------------------------------


def test_the_sender_with_more_power_comes_first_among_unrelated_events() -> None:
    dag = dag_of(event("$low", ts=1), event("$high", ts=2))

    assert power_order(dag, {"$low": 50, "$high": 100}, ["$low", "$high"]) == ["$high", "$low"]


def test_equal_power_falls_back_to_the_earlier_timestamp() -> None:
    dag = dag_of(event("$a", ts=2), event("$b", ts=1))

    assert power_order(dag, {"$a": 50, "$b": 50}, ["$a", "$b"]) == ["$b", "$a"]


def test_equal_power_and_timestamp_fall_back_to_the_smaller_event_id() -> None:
    dag = dag_of(event("$b", ts=1), event("$a", ts=1))

    assert power_order(dag, {"$a": 50, "$b": 50}, ["$b", "$a"]) == ["$a", "$b"]


def test_an_auth_event_comes_before_the_event_citing_it_whatever_their_power() -> None:
    dag = dag_of(event("$weak", ts=9), event("$strong", auth=["$weak"], ts=1))

    order = power_order(dag, {"$weak": 0, "$strong": 100}, ["$strong", "$weak"])

    assert order == ["$weak", "$strong"]


def test_an_auth_path_through_events_outside_the_set_still_orders_it() -> None:
    """`$strong` cites `$outside`, which cites `$weak`: `$weak` is in `$strong`'s auth
    chain, so it comes first though `$outside` is not being sorted."""
    dag = dag_of(
        event("$weak", ts=9),
        event("$outside", auth=["$weak"]),
        event("$strong", auth=["$outside"], ts=1),
    )

    order = power_order(dag, {"$weak": 0, "$strong": 100}, ["$strong", "$weak"])

    assert order == ["$weak", "$strong"]


def test_each_step_takes_the_smallest_event_that_is_ready_not_the_smallest_overall() -> None:
    """`$b` (100) waits for its auth event `$c` (50); `$a` (100) waits for nothing.

    Ready at first: `$a` and `$c` → `$a` (more power). Then only `$c`, then `$b`. A plain
    sort by (power, timestamp) would put `$b` before `$c`, which the auth DAG forbids.
    """
    dag = dag_of(event("$a", ts=5), event("$c", ts=1), event("$b", auth=["$c"], ts=2))

    order = power_order(dag, {"$a": 100, "$b": 100, "$c": 50}, ["$b", "$c", "$a"])

    assert order == ["$a", "$c", "$b"]


# --- the sender's power level -----------------------------------------------------------


def test_a_senders_power_comes_from_the_power_levels_event_it_cites() -> None:
    """PB is sent by bob citing PA, which gives him 50; by the current state he has 0."""
    room = start_room("10")
    room.power_levels("PA", ALICE, admin_levels(room, bob=50), after=["START"])
    room.power_levels("PB", BOB, admin_levels(room, bob=50), after=["PA"])
    room.power_levels("PZ", ALICE, admin_levels(room, bob=0), after=["PB"])

    level = sender_power_level(room.id_of("PB"), AuthDag(room.fetch), room.room_version)

    assert level == 50


def test_the_creator_has_100_while_no_power_levels_event_is_cited_before_v12() -> None:
    room = start_room("10")

    level = sender_power_level(room.id_of("IPOWER"), AuthDag(room.fetch), room.room_version)

    assert level == 100


def test_a_sender_absent_from_users_has_the_users_default() -> None:
    room = start_room("10")
    room.power_levels("PD", ALICE, admin_levels(room), users_default=7, after=["START"])
    room.member("MC", CHARLIE, "join", after=["PD"])

    level = sender_power_level(room.id_of("MC"), AuthDag(room.fetch), room.room_version)

    assert level == 7


def test_room_creators_have_infinite_power_in_v12() -> None:
    """Alice created the room; in v12 she is never listed in `users` and outranks all."""
    room = start_room("12")
    room.topic("TA", ALICE, after=["START"])

    level = sender_power_level(room.id_of("TA"), AuthDag(room.fetch), room.room_version)

    assert level == math.inf


def test_additional_creators_have_infinite_power_in_v12() -> None:
    room = start_room_with_additional_creator(BOB)
    room.topic("TB", BOB, after=["IMB"])

    level = sender_power_level(room.id_of("TB"), AuthDag(room.fetch), room.room_version)

    assert level == math.inf


def start_room_with_additional_creator(creator: str) -> Room:
    room = Room("12")
    room.add("CREATE", CREATE, ALICE, {"additional_creators": [creator]}, state_key="")
    room.member("IMA", ALICE, "join", after=["CREATE"])
    room.power_levels("IPOWER", ALICE, {}, after=["IMA"])
    room.join_rules("IJR", ALICE, "public", after=["IPOWER"])
    room.member("IMB", creator, "join", after=["IJR"])
    return room


# --- mainline ordering ------------------------------------------------------------------


def mainline_room() -> tuple[dict[str, Any], ...]:
    """P0 ← P1 ← P2 power levels (each citing the one before), plus an unrelated PX."""
    p0 = event("$P0", event_type=POWER_LEVELS)
    p1 = event("$P1", auth=["$P0"], event_type=POWER_LEVELS, ts=1)
    p2 = event("$P2", auth=["$P1"], event_type=POWER_LEVELS, ts=2)
    px = event("$PX", event_type=POWER_LEVELS, ts=3)
    return p0, p1, p2, px


def test_events_based_on_older_power_levels_come_first() -> None:
    *power_levels, _ = mainline_room()
    dag = dag_of(
        *power_levels,
        event("$on_p2", auth=["$P2"], ts=1),
        event("$on_p1", auth=["$P1"], ts=2),
        event("$on_p0", auth=["$P0"], ts=3),
    )

    order = mainline_order(["$on_p2", "$on_p1", "$on_p0"], "$P2", dag)

    assert order == ["$on_p0", "$on_p1", "$on_p2"]


def test_events_whose_power_levels_never_meet_the_mainline_come_first_of_all() -> None:
    """`$stray` cites PX, which cites nothing on the mainline: position infinity;
    `$bare` cites no power levels at all: also infinity. Between the two, timestamps."""
    dag = dag_of(
        *mainline_room(),
        event("$on_p0", auth=["$P0"], ts=1),
        event("$stray", auth=["$PX"], ts=5),
        event("$bare", ts=4),
    )

    order = mainline_order(["$on_p0", "$stray", "$bare"], "$P2", dag)

    assert order == ["$bare", "$stray", "$on_p0"]


def test_a_power_levels_event_off_the_mainline_is_placed_by_the_mainline_event_it_reaches() -> None:
    """`$fork` is a power levels event citing P1; `$topic` cites `$fork`. Walking from
    `$topic`: `$fork` (not on the mainline), then P1 (position 1)."""
    dag = dag_of(
        *mainline_room(),
        event("$fork", auth=["$P1"], event_type=POWER_LEVELS, ts=7),
        event("$topic", auth=["$fork"], ts=1),
        event("$on_p2", auth=["$P2"], ts=0),
        event("$on_p0", auth=["$P0"], ts=9),
    )

    order = mainline_order(["$on_p2", "$topic", "$on_p0"], "$P2", dag)

    assert order == ["$on_p0", "$topic", "$on_p2"]


def test_the_event_itself_does_not_count_towards_its_mainline_position() -> None:
    """P1 is on the mainline at position 1, but its own position is that of the power
    levels it cites, P0 (position 2): it goes before a topic citing P1."""
    dag = dag_of(*mainline_room(), event("$on_p1", auth=["$P1"], ts=0))

    assert mainline_order(["$on_p1", "$P1"], "$P2", dag) == ["$P1", "$on_p1"]


def test_equal_mainline_positions_fall_back_to_timestamp_then_event_id() -> None:
    dag = dag_of(
        *mainline_room(),
        event("$late", auth=["$P1"], ts=9),
        event("$b", auth=["$P1"], ts=3),
        event("$a", auth=["$P1"], ts=3),
    )

    assert mainline_order(["$late", "$b", "$a"], "$P2", dag) == ["$a", "$b", "$late"]


def test_without_power_levels_in_the_state_only_timestamps_and_ids_order() -> None:
    dag = dag_of(
        *mainline_room(),
        event("$on_p0", auth=["$P0"], ts=2),
        event("$on_p2", auth=["$P2"], ts=1),
    )

    assert mainline_order(["$on_p0", "$on_p2"], None, dag) == ["$on_p2", "$on_p0"]


@pytest.mark.parametrize(("version", "first"), [("11", "TB"), ("12", "TA")])
def test_a_room_creator_outranks_a_user_at_100_in_v12(version: str, first: str) -> None:
    """Bob (100) sets a topic before alice (the creator) does. In v11 they tie on power
    and bob's earlier timestamp puts him first; in v12 alice's infinite power does."""
    room = start_room(version)
    users = {BOB: 100} if room.room_version.privileged_creators else {ALICE: 100, BOB: 100}
    room.power_levels("P", ALICE, users, after=["START"])
    room.topic("TB", BOB, after=["P"])
    room.topic("TA", ALICE, after=["P"])
    dag = AuthDag(room.fetch)

    order = reverse_topological_power_order(
        [room.id_of("TA"), room.id_of("TB")],
        dag,
        lambda event_id: sender_power_level(event_id, dag, room.room_version),
    )

    assert room.name_of(order[0]) == first
