"""The state where branches of a room's event graph meet.

Spec: `content/server-server-api.md` ("Room State Resolution"), with the
algorithm of the room version (`core/state_res/`: v1, v2, and v2.1 for room
v12). The state before an event with several prev_events, and the current
state of a room whose forward extremities diverge, are the resolution of the
states after each of them. The resolution itself is pure; this service feeds
it the stored events, knows which were rejected, and saves the result as a
snapshot for an `EventContext`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...core.state_res import resolve_state
from ...storage import WriteBatch
from .state import RoomState, StateIds
from .timeline import Event, Timeline


class UnknownState(KeyError):
    """An event whose state after is not stored here (an outlier, or unknown):
    the caller must get the state at it (`/state_ids`) before resolving."""


class StateResolution:
    def __init__(self, state: RoomState, timeline: Timeline) -> None:
        self._state = state
        self._timeline = timeline

    def resolve(self, room_id: str, event_ids: Iterable[str]) -> StateIds:
        """The resolved state after `event_ids` (e.g. a room's forward extremities)."""
        hashes = self._hashes_after(event_ids)
        if len(hashes) == 1:
            return self._state.state_ids(hashes[0])
        return self._resolve(room_id, hashes)

    def save_resolved(
        self,
        room_id: str,
        shortstatehashes: Iterable[int],
        batch: WriteBatch,
        *,
        pending: Iterable[Event] = (),
    ) -> int:
        """The resolution of snapshots, saved in `batch` (the shared one when they agree).

        Snapshots rather than events: the state after the event being
        persisted is in its context, not yet stored. For a new current state,
        pass the state after each new forward extremity, and the event being
        persisted as `pending` (resolution reads the events it orders).
        """
        hashes = list(dict.fromkeys(shortstatehashes))
        if not hashes:
            raise ValueError("state resolution needs at least one state")
        if len(hashes) == 1:
            return hashes[0]
        resolved = self._resolve(room_id, hashes, {e["event_id"]: e for e in pending})
        return self._state.save_state(resolved, hashes[0], batch)

    def _resolve(
        self, room_id: str, hashes: list[int], pending: Mapping[str, Event] | None = None
    ) -> StateIds:
        def fetch_event(event_id: str) -> Event | None:
            if pending and event_id in pending:
                return pending[event_id]
            return self._timeline.get_event(event_id)

        return resolve_state(
            self._timeline.room_version(room_id),
            [self._state.state_ids(shortstatehash) for shortstatehash in hashes],
            fetch_event,
            is_rejected=self._timeline.is_rejected,
        )

    def _hashes_after(self, event_ids: Iterable[str]) -> list[int]:
        """The distinct snapshots after the events, in a stable order."""
        hashes: dict[int, None] = {}
        for event_id in event_ids:
            shortstatehash = self._state.shortstatehash_after_event(event_id)
            if shortstatehash is None:
                raise UnknownState(event_id)
            hashes[shortstatehash] = None
        if not hashes:
            raise ValueError("state resolution needs at least one event")
        return list(hashes)
