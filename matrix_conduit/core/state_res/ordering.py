"""The two orders state resolution v2 sorts events into before auth-checking them.

Spec: `content/rooms/fragments/v2-state-res.md` (and the same text in `content/rooms/v12.md`),
definitions *reverse topological power ordering* and *mainline ordering*. Both orders end
in `origin_server_ts` then `event_id`, so they are total: the same events always come out
in the same order, whatever order they went in.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable

from .auth_dag import POWER_LEVELS_KEY, AuthDag, NearestMembers

PowerLevelOf = Callable[[str], float]
"""The power level of an event's sender according to the event's own auth events."""


def reverse_topological_power_order(
    event_ids: Collection[str], dag: AuthDag, sender_power_level: PowerLevelOf
) -> list[str]:
    """`event_ids` from earliest to latest: auth events first, the powerful first among equals.

    Kahn's algorithm over the auth DAG restricted to `event_ids` (paths through other
    events count: if `x` is anywhere in the auth chain of `y`, `x` comes first); among
    the events whose auth events within the set are all placed, the smallest comes next,
    where smaller means: sender with greater power level, then earlier
    `origin_server_ts`, then lexicographically smaller `event_id`.
    """
    members = frozenset(event_ids)
    nearest = NearestMembers(dag, members)
    waiting_for = {event_id: set(nearest.of(event_id)) for event_id in members}
    unblocks: defaultdict[str, list[str]] = defaultdict(list)
    for event_id, auth_ancestors in waiting_for.items():
        for ancestor in auth_ancestors:
            unblocks[ancestor].append(event_id)

    def sort_key(event_id: str) -> tuple[float, int, str]:
        return (-sender_power_level(event_id), _origin_server_ts(dag, event_id), event_id)

    ready = [sort_key(event_id) for event_id, waiting in waiting_for.items() if not waiting]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        *_, event_id = heapq.heappop(ready)
        ordered.append(event_id)
        for dependant in unblocks[event_id]:
            waiting_for[dependant].discard(event_id)
            if not waiting_for[dependant]:
                heapq.heappush(ready, sort_key(dependant))
    return ordered


def mainline_order(
    event_ids: Iterable[str], power_levels_id: str | None, dag: AuthDag
) -> list[str]:
    """`event_ids` in the mainline ordering based on the power levels event `power_levels_id`.

    An event's mainline position is the index in the mainline of the first power levels
    event reached by following `m.room.power_levels` auth events from it (the event itself
    not included), or infinity if none is on the mainline. Events based on an earlier
    mainline event come first; ties go to `origin_server_ts`, then `event_id`. Without a
    power levels event the mainline is empty and every position is infinite.
    """
    positions = _MainlinePositions(dag, _mainline(power_levels_id, dag))

    def sort_key(event_id: str) -> tuple[float, int, str]:
        position = positions.of_power_levels(dag.auth_event_of_type(event_id, POWER_LEVELS_KEY))
        return (-position, _origin_server_ts(dag, event_id), event_id)

    return sorted(event_ids, key=sort_key)


def _mainline(power_levels_id: str | None, dag: AuthDag) -> dict[str, int]:
    """Each event of the mainline of `power_levels_id` mapped to its index (P0 is 0)."""
    mainline: dict[str, int] = {}
    current = power_levels_id
    while current is not None and current not in mainline:
        mainline[current] = len(mainline)
        current = dag.auth_event_of_type(current, POWER_LEVELS_KEY)
    return mainline


class _MainlinePositions:
    """Mainline positions of power levels events, memoised along the chains walked."""

    def __init__(self, dag: AuthDag, mainline: dict[str, int]) -> None:
        self._dag = dag
        self._positions: dict[str, float] = dict(mainline)

    def of_power_levels(self, power_levels_id: str | None) -> float:
        """The position reached by walking power levels auth events from this one on."""
        walked: list[str] = []
        current = power_levels_id
        position = math.inf
        while current is not None and current not in walked:
            if current in self._positions:
                position = self._positions[current]
                break
            walked.append(current)
            current = self._dag.auth_event_of_type(current, POWER_LEVELS_KEY)
        for event_id in walked:
            self._positions[event_id] = position
        return position


def _origin_server_ts(dag: AuthDag, event_id: str) -> int:
    event = dag.event(event_id)
    if event is None:
        raise ValueError(f"cannot order {event_id}: the event is not available")
    return event["origin_server_ts"]
