"""Room state resolution: the state of a room where branches of its event graph merge.

Spec: `content/server-server-api.md#room-state-resolution` (what it is for),
`content/rooms/v1.md` (room version 1's algorithm), `content/rooms/fragments/v2-state-res.md`
(versions 2–11) and `content/rooms/v12.md` (version 12's revision of v2). Which one applies
is the room version's `state_resolution` property.

Contract with callers:
- A state map is `(event_type, state_key) -> event_id`.
- Events are plain PDU dicts, and **callers pass events with their `event_id` key set**:
  room v1/v2 events carry one on the wire, v3+ events do not, so whoever loads or receives
  an event adds its id before handing it here.
- `fetch_event(event_id)` returns the event, or None if it is not available. It is
  synchronous: async callers pre-fetch what resolution needs (the events of the state
  sets and their auth chains). An event that cannot be fetched takes no part in the conflicted part
  of resolution (it can be neither ordered nor auth-checked); unconflicted state is kept
  as given.
- `auth_chain(event_id)`, if given, returns the event's (cached) auth chain; otherwise
  chains are walked through `auth_events`.
- `is_rejected(event_id)`, if given, says which events were rejected: their use as
  fallback auth events in the iterative auth checks is excluded by the spec. Without it,
  no event counts as rejected.

Resolution is a pure function: the same inputs give the same state whatever the order of
the state sets, because every ordering it uses ends in `event_id` comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..room_versions import RoomVersion, StateResolution
from .auth_dag import AuthDag
from .conflicts import StateKey
from .v1 import resolve_v1
from .v2 import resolve_v2

__all__ = ["resolve_state"]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    fetch_event: Callable[[str], Mapping[str, Any] | None],
    auth_chain: Callable[[str], set[str]] | None = None,
    *,
    is_rejected: Callable[[str], bool] | None = None,
) -> dict[StateKey, str]:
    """The resolved state of `state_sets` under the room version's algorithm."""
    if len(state_sets) <= 1:
        return dict(state_sets[0]) if state_sets else {}
    dag = AuthDag(fetch_event, auth_chain)
    if room_version.state_resolution is StateResolution.V1:
        return resolve_v1(room_version, state_sets, dag)
    return resolve_v2(room_version, state_sets, dag, is_rejected or _nothing_rejected)


def _nothing_rejected(event_id: str) -> bool:
    return False
