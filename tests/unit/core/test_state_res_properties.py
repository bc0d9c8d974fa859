"""Properties every resolution must have, over randomly grown rooms.

Spec: `content/server-server-api.md#room-state-resolution` and the room versions'
algorithms: the resolution of a *set* of states is a function of that set, so every
server — whatever order it lists the forks in, whichever events it happens to load
first, cached auth chains or not — computes the same state. All tie-breaks end in
`event_id` comparisons, which is what makes this hold; these tests hold the
implementation to it.

Rooms are grown from `start_room()`, plus bob and charlie at 50, by random steps (topics,
power level changes, kicks, bans, joins, leaves, join rule changes, merges) on random
branches, with timestamps drawn from a small range so ties happen. Steps the auth rules
reject are skipped.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matrix_conduit.core.state_res import resolve_state
from tests.unit.core.state_res_scenarios import (
    ALICE,
    BOB,
    CHARLIE,
    ELLA,
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS,
    TOPIC,
    NotAllowed,
    Room,
    start_room,
)

USERS = [ALICE, BOB, CHARLIE, ELLA]
KINDS = ["topic", "power", "ban", "kick", "join", "leave", "join_rules", "merge"]

steps = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(USERS),
        st.sampled_from(USERS),
        st.integers(0, 7),
        st.booleans(),
        st.integers(1, 4),
    ),
    min_size=2,
    max_size=14,
)


def grow(room: Room, random_steps: list[tuple]) -> list[str]:
    """Give bob and charlie 50, then apply the steps the auth rules allow (while there is
    one branch, each starts another); return the branches' latest events."""
    moderators = {BOB: 50, CHARLIE: 50}
    if not room.room_version.privileged_creators:
        moderators[ALICE] = 100
    room.add("P0", POWER_LEVELS, ALICE, {"users": moderators}, state_key="", after=["START"])
    tips = ["P0"]
    for index, (kind, sender, target, choice, fork, ts) in enumerate(random_steps):
        name = f"E{index}"
        branch = choice % len(tips)
        after = [tips[branch]]
        if kind == "merge":
            if len(tips) < 2:
                continue
            after.append(tips[(branch + 1) % len(tips)])
        try:
            add_step(room, name, kind, sender, target, choice, after, ts)
        except NotAllowed:
            continue
        if kind == "merge":
            tips.remove(after[1])
            tips[tips.index(after[0])] = name
        elif fork or len(tips) == 1:
            tips.append(name)
        else:
            tips[branch] = name
    return tips


def add_step(
    room: Room,
    name: str,
    kind: str,
    sender: str,
    target: str,
    choice: int,
    after: list[str],
    ts: int,
) -> None:
    content: dict[str, Any]
    state_key: str | None = ""
    if kind == "topic":
        event_type, content = TOPIC, {"topic": name}
    elif kind == "power":
        users = {} if room.room_version.privileged_creators else {ALICE: 100}
        if target != ALICE:
            users[target] = [0, 25, 50, 100][choice % 4]
        event_type, content = POWER_LEVELS, {"users": users}
    elif kind == "join_rules":
        event_type, content = JOIN_RULES, {"join_rule": ["public", "invite"][choice % 2]}
    elif kind in ("ban", "kick", "join", "leave"):
        membership = {"kick": "leave"}.get(kind, kind)
        state_key = sender if kind in ("join", "leave") else target
        event_type, content = MEMBER, {"membership": membership}
    else:
        event_type, content, state_key = "m.room.message", {"body": name}, None
    room.add(
        name, event_type, sender, content, state_key=state_key, after=after, origin_server_ts=ts
    )


def forked_room(version: str, random_steps: list[tuple]) -> tuple[Room, list[dict]]:
    room = start_room(version)
    tips = grow(room, random_steps)
    return room, [room.state_after(tip) for tip in tips]


versions = st.sampled_from(["1", "2", "10", "12"])
property_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@property_settings
@given(versions, steps, st.randoms())
def test_the_resolved_state_does_not_depend_on_the_order_of_the_state_sets(
    version: str, random_steps: list[tuple], random: Any
) -> None:
    room, states = forked_room(version, random_steps)
    orders = list(itertools.permutations(states))[:6]
    random.shuffle(orders)

    results = [room.resolve(list(order)) for order in orders]

    assert all(result == results[0] for result in results)


@property_settings
@given(versions, steps, st.randoms())
def test_the_resolved_state_does_not_depend_on_how_events_are_loaded(
    version: str, random_steps: list[tuple], random: Any
) -> None:
    """Events handed over as fresh copies, with their `auth_events` and keys listed in
    another order, and with auth chains from a cache instead of walked: same state."""
    room, states = forked_room(version, random_steps)

    def fetch_reshuffled(event_id: str) -> dict[str, Any] | None:
        event = copy.deepcopy(room.fetch(event_id))
        if event is None:
            return None
        random.shuffle(event["auth_events"])
        items = list(event.items())
        random.shuffle(items)
        return dict(items)

    plain = room.resolve(states)
    reshuffled = resolve_state(room.room_version, states, fetch_reshuffled)
    cached = room.resolve(states, auth_chain=room.auth_chain_of)

    assert reshuffled == plain
    assert cached == plain


@property_settings
@given(versions, steps)
def test_a_state_resolved_with_itself_is_unchanged(version: str, random_steps: list[tuple]) -> None:
    room, states = forked_room(version, random_steps)

    for state in states:
        assert room.resolve([state, dict(state)]) == state


@property_settings
@given(versions, steps)
def test_the_resolved_state_only_holds_events_from_the_state_sets_or_their_auth_chains(
    version: str, random_steps: list[tuple]
) -> None:
    """Resolution chooses among the events it was given; it never invents one. (It can
    bring back an older event from an auth chain: that is the auth difference at work.)"""
    room, states = forked_room(version, random_steps)
    candidates = {event_id for state in states for event_id in state.values()}
    candidates |= {
        auth_id
        for state in states
        for event_id in state.values()
        for auth_id in room.auth_chain_of(event_id)
    }

    resolved = room.resolve(states)

    assert set(resolved.values()) <= candidates
    assert all(room.fetch(event_id)["state_key"] == key[1] for key, event_id in resolved.items())
