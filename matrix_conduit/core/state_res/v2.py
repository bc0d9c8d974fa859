"""State resolution v2 (room versions 2–11) and its v12 revision ("v2.1").

Spec: `content/rooms/fragments/v2-state-res.md` (*Algorithm*, steps 1–5) and
`content/rooms/v12.md` (*State resolution*). The v12 revision changes three things:

1. the *conflicted state subgraph* (every event on an auth path between two conflicted
   events) is part of the *full conflicted set* (`full_conflicted_set_of`);
2. the first iterative auth checks start from an empty state instead of the unconflicted
   state map (`resolve_v2`, step 2);
3. room creators (the create event's sender and `additional_creators`) have infinite
   power, which the power ordering inherits from `core/power_levels.py`.

Only the conflicted part of the room does real work: the auth chains of the unconflicted
state are walked once, as a whole, to be subtracted from the auth difference.

Read as written, where implementations have drifted from the text: a power event is
exactly what the spec defines (Synapse also counts the create event, which in practice is
never conflicted); step 1 adds every full-conflicted-set event in a power event's auth
chain, also those reached only through events outside the set (Synapse stops its walk
at the first such event). Both differences need a conflicted event that every fork's
auth chain already contains.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..room_versions import RoomVersion, StateResolution
from .auth_dag import POWER_LEVELS_KEY, AuthDag, Event, NearestMembers
from .conflicts import Conflicts, StateKey, StateMap, split_v2
from .iterative_auth import IsRejected, iterative_auth_checks
from .ordering import mainline_order, reverse_topological_power_order
from .sender_power import sender_power_level


def resolve_v2(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    dag: AuthDag,
    is_rejected: IsRejected,
) -> dict[StateKey, str]:
    """The resolution of `state_sets` by the algorithm of the room's state resolution version."""
    conflicts = split_v2(state_sets)
    if not conflicts.conflicted:
        return conflicts.unconflicted
    revised = room_version.state_resolution is StateResolution.V2_1
    full_conflicted_set = full_conflicted_set_of(state_sets, conflicts, dag, revised=revised)

    # Step 1: the power events and the conflicted parts of their auth chains.
    power_events = [
        event_id for event_id in full_conflicted_set if is_power_event(dag.event(event_id))
    ]
    power_and_auth = NearestMembers(dag, full_conflicted_set).closure(power_events)
    ordered_power = reverse_topological_power_order(
        power_and_auth, dag, lambda event_id: sender_power_level(event_id, dag, room_version)
    )
    # Step 2.
    initial_state = {} if revised else conflicts.unconflicted
    partial = iterative_auth_checks(room_version, ordered_power, initial_state, dag, is_rejected)
    # Steps 3 and 4.
    ordered_rest = mainline_order(
        full_conflicted_set - power_and_auth, partial.get(POWER_LEVELS_KEY), dag
    )
    resolved = iterative_auth_checks(room_version, ordered_rest, partial, dag, is_rejected)
    # Step 5.
    resolved.update(conflicts.unconflicted)
    return resolved


def full_conflicted_set_of(
    state_sets: Sequence[StateMap], conflicts: Conflicts, dag: AuthDag, *, revised: bool
) -> frozenset[str]:
    """The conflicted state set and the auth difference, plus in v12 the conflicted state
    subgraph; only the events that can be fetched, as no other can be ordered or checked.
    """
    full = conflicts.conflicted_events | auth_difference(state_sets, conflicts, dag)
    if revised:
        full |= conflicted_state_subgraph(conflicts.conflicted_events, dag)
    return frozenset(filter(dag.has, full))


def is_power_event(event: Event) -> bool:
    """Whether an event might take someone's ability to do something away (spec: power events).

    Power levels and join rules, and memberships of `leave` or `ban` sent by someone else
    than their subject (a kick or a ban; leaving or unbanning oneself is not one).
    """
    if event.get("state_key") is None:
        return False
    if event["type"] in ("m.room.power_levels", "m.room.join_rules"):
        return True
    return (
        event["type"] == "m.room.member"
        and event["content"].get("membership") in ("leave", "ban")
        and event["sender"] != event["state_key"]
    )


def auth_difference(state_sets: Sequence[StateMap], conflicts: Conflicts, dag: AuthDag) -> set[str]:
    """The events in some but not all of the states' full auth chains.

    With U the auth chains of the unconflicted state and D_i the rest of state i's full
    auth chain, C_i = U ∪ D_i with U and D_i disjoint, so ∪C_i − ∩C_i = ∪D_i − ∩D_i:
    U is walked once and every D_i stops where it meets U.
    """
    shared = dag.auth_chain_union(conflicts.unconflicted.values())
    own_parts = [
        dag.auth_chain_union(
            (event_id for key, event_id in state.items() if key not in conflicts.unconflicted),
            known=shared,
        )
        for state in state_sets
    ]
    return set().union(*own_parts) - set.intersection(*own_parts)


def conflicted_state_subgraph(conflicted_events: frozenset[str], dag: AuthDag) -> set[str]:
    """Every event on an auth path from one conflicted event to another (v12 definition).

    An event is on such a path when it is in the auth chain of a conflicted event and a
    conflicted event is in its own auth chain (or it is one). The endpoints, conflicted
    events themselves, are already in the full conflicted set.
    """
    reaches_conflicted = NearestMembers(dag, conflicted_events)
    return {
        event_id
        for event_id in dag.auth_chain_union(conflicted_events)
        if event_id in conflicted_events or reaches_conflicted.of(event_id)
    }
