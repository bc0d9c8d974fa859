"""State resolution for room version 1 (the original algorithm, known to reset state).

Spec: `content/rooms/v1.md`, *State resolution*. Start from every key the states agree on,
then resolve the conflicted keys in passes, checking events against the state R built so
far: first `m.room.power_levels`, then `m.room.join_rules`, then `m.room.member`, each by
walking its events from the lowest `depth` upward (ties: descending `sha1(event_id)`) and
stopping at the first one the auth rules reject; finally every other key takes the event
with the highest `depth` (ties: lowest `sha1(event_id)`) that passes auth in R.

Where the text leaves room, this follows the reference implementation (Synapse), so that
servers converge:
- each conflicted key is resolved on its own against R as it stood when its pass began, so
  the order in which keys are visited does not matter;
- if no event of an "other" key passes auth, the last one tried (lowest depth) is taken;
- a conflicted key whose events cannot be fetched, except one, takes that one; with none
  left it is dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..room_versions import RoomVersion
from .auth_dag import AuthDag, Event
from .conflicts import StateKey, StateMap, split_v1
from .iterative_auth import is_allowed_in_state

AUTH_PASSES = ("m.room.power_levels", "m.room.join_rules", "m.room.member")
"""The event types resolved by walking up from the lowest depth, in this order."""


def resolve_v1(
    room_version: RoomVersion, state_sets: Sequence[StateMap], dag: AuthDag
) -> dict[StateKey, str]:
    """The resolution of `state_sets` by the room version 1 algorithm."""
    conflicts = split_v1(state_sets)
    resolved = dict(conflicts.unconflicted)
    candidates: dict[StateKey, list[Event]] = {}
    for key, event_ids in conflicts.conflicted.items():
        events = [event for event_id in event_ids if (event := dag.event(event_id)) is not None]
        if len(events) == 1:
            resolved[key] = events[0]["event_id"]
        elif events:
            candidates[key] = events

    for event_type in AUTH_PASSES:
        state_at_pass_start = dict(resolved)
        for key, events in candidates.items():
            if key[0] == event_type:
                resolved[key] = _walk_up(events, state_at_pass_start, dag, room_version)
    state_for_others = dict(resolved)
    for key, events in candidates.items():
        if key[0] not in AUTH_PASSES:
            resolved[key] = _first_allowed(events, state_for_others, dag, room_version)
    return resolved


def _walk_up(
    events: list[Event], state: dict[StateKey, str], dag: AuthDag, room_version: RoomVersion
) -> str:
    """The last event, from the lowest depth up, before one the auth rules reject."""
    ascending = sorted(events, key=_depth_then_descending_sha1)
    state = dict(state)
    accepted = ascending[0]
    for event in ascending[1:]:
        state[(accepted["type"], accepted["state_key"])] = accepted["event_id"]
        if not is_allowed_in_state(event, state, dag, room_version):
            break
        accepted = event
    return accepted["event_id"]


def _first_allowed(
    events: list[Event], state: dict[StateKey, str], dag: AuthDag, room_version: RoomVersion
) -> str:
    """The highest event (lowest sha1 among equal depths) that passes auth in `state`."""
    descending = sorted(events, key=_depth_then_descending_sha1, reverse=True)
    for event in descending:
        if is_allowed_in_state(event, state, dag, room_version):
            return event["event_id"]
    return descending[-1]["event_id"]


def _depth_then_descending_sha1(event: Event) -> tuple[int, bytes]:
    """Ascending `depth`, then descending `sha1(event_id)`: negate the digest's bytes."""
    digest = hashlib.sha1(event["event_id"].encode()).digest()
    return (event["depth"], bytes(255 - byte for byte in digest))
