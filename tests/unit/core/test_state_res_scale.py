"""Resolution does work in proportion to the conflict, not to the size of the room.

Spec: `content/rooms/fragments/v2-state-res.md`: only the *full conflicted set* is sorted
and re-authorised; the unconflicted state map is taken as it is. With the caller's cached
auth chains, the auth difference needs no event loaded either, so a room with hundreds
of members resolving a topic conflict loads a handful of events. Counted, not timed.
"""

from __future__ import annotations

from typing import Any

import pytest

from matrix_conduit.core.state_res import resolve_state
from tests.unit.core.state_res_scenarios import ALICE, MEMBER, admin_levels, start_room

MEMBERS = 300


@pytest.mark.parametrize("version", ["10", "12"])
def test_a_topic_conflict_in_a_big_room_loads_only_the_events_it_needs(version: str) -> None:
    """300 users join, then alice sets two topics on two forks. Loaded: the two topics,
    and what their auth checks and mainline consult (create, power levels, alice's
    membership and the power levels chain) — none of the 300 joins."""
    room = start_room(version)
    room.power_levels("P", ALICE, admin_levels(room), after=["START"])
    previous = "P"
    for number in range(MEMBERS):
        room.member(f"J{number}", f"@user{number}:example.com", "join", after=[previous])
        previous = f"J{number}"
    room.topic("TA", ALICE, after=[previous])
    room.topic("TB", ALICE, after=[previous])
    loaded: set[str] = set()

    def fetch(event_id: str) -> dict[str, Any] | None:
        loaded.add(event_id)
        return room.fetch(event_id)

    resolved = resolve_state(
        room.room_version,
        [room.state_after("TA"), room.state_after("TB")],
        fetch,
        room.auth_chain_of,
    )

    assert resolved[("m.room.topic", "")] == room.id_of("TB")
    assert len(resolved) == len(room.state_after("TA"))
    joins_loaded = {room.name_of(event_id) for event_id in loaded} & {
        f"J{number}" for number in range(MEMBERS)
    }
    assert joins_loaded == set()
    assert len(loaded) <= 10
    assert (MEMBER, "@user0:example.com") in resolved
