"""The deprecated `GET /events` stream: room events after a token, long-polling.

Spec: `data/api/client-server/old_sync.yaml` (`GET /events`, deprecated in
r0 but still specified) and `peeking_events.yaml` (`GET /events?room_id=`,
"Listen on the event stream of a particular room", for users who have not
joined it). Older clients, bots and test suites still wait on it.

Tokens are the `/sync` tokens: positions on the global counter, so a token
from `/initialSync`, `/sync` or `/events` continues any of them. Without
`from` the stream starts now. The events are those of the user's rooms
(joined and invited, and a room they left in the window, up to their leave),
or of the one `room_id`, which a non-member may read while it is
`world_readable`; each through `Visibility`, in stream order, at most
`MAX_EVENTS` per answer (then `end` is where the next one continues).

Long-polling waits on the notifier, as `/sync` does; a peeker is not a member
whom the timeline notifies, so this service also wakes requests watching a
room after each event of it is committed (an `appending` hook).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import trio

from ..errors import forbidden
from ..storage import WriteBatch
from .account_data import AccountData
from .globals import Globals
from .notifier import Notifier
from .rooms import Rooms
from .rooms.event_context import EventContext
from .rooms.timeline import Event

MAX_EVENTS = 100


@dataclass(frozen=True)
class EventStreamRequest:
    user_id: str
    device_id: str | None
    since: int | None
    """None: from now on."""
    timeout_ms: int = 0
    room_id: str | None = None
    """Only this room's events (peeking, `peeking_events.yaml`)."""


class EventStream:
    def __init__(
        self, globals_: Globals, notifier: Notifier, rooms: Rooms, account_data: AccountData
    ) -> None:
        self._globals = globals_
        self._notifier = notifier
        self._rooms = rooms
        self._account_data = account_data
        self._room_watchers: dict[str, trio.Event] = {}

    async def events(self, request: EventStreamRequest) -> dict[str, Any]:
        """`{"start", "end", "chunk"}`: the visible events after the token, waiting up to
        `timeout_ms` for one when there are none yet."""
        if request.room_id is not None:
            self._check_may_peek(request.user_id, request.room_id)
        start = request.since if request.since is not None else self._globals.current_count()
        wake_ups = [self._notifier.listener(request.user_id)]
        if request.room_id is not None:
            wake_ups.append(self._room_watcher(request.room_id))
        chunk, end = self._collect(request, start)
        if not chunk and request.timeout_ms > 0:
            # As `/sync`: one wait, then whatever there is (a wake-up for news of
            # another kind, such as typing, answers with an empty chunk; the client
            # polls again from `end`).
            await _wait_for_any(wake_ups, request.timeout_ms / 1000)
            chunk, end = self._collect(request, start)
        return {"start": str(start), "end": str(end), "chunk": chunk}

    def note_event(
        self, event: Event, context: EventContext, position: int | None, batch: WriteBatch
    ) -> None:
        """The timeline's `appending` hook: wake who watches this room, once committed."""
        room_id = event.get("room_id")
        if position is None or room_id not in self._room_watchers:
            return
        batch.after_commit(lambda: self._wake_room(room_id))

    # ---- reading

    def _check_may_peek(self, user_id: str, room_id: str) -> None:
        if not self._rooms.visibility.can_read_current_state(user_id, room_id):
            raise forbidden(
                f"You may not peek into {room_id}: you are not joined and it is not world-readable."
            )

    def _collect(self, request: EventStreamRequest, start: int) -> tuple[list[dict], int]:
        """The events to send after `start` and the token after them.

        Each room is read for at most `MAX_EVENTS + 1` candidates; where a room has
        more, the answer ends at the last one read, so nothing is skipped."""
        end = self._globals.current_count()
        ignored = self._account_data.ignored_users(request.user_id)
        found: list[tuple[int, Event]] = []
        for room_id in self._rooms_of(request, start):
            events, read_up_to = self._room_events(request.user_id, room_id, start, end, ignored)
            found.extend(events)
            end = min(end, read_up_to)
        found = sorted((item for item in found if item[0] <= end), key=lambda item: item[0])
        if len(found) > MAX_EVENTS:
            found = found[:MAX_EVENTS]
            end = found[-1][0]
        chunk = [
            self._rooms.events.for_client(event, request.user_id, request.device_id)
            for _, event in found
        ]
        return chunk, end

    def _rooms_of(self, request: EventStreamRequest, start: int) -> Iterable[str]:
        if request.room_id is not None:
            return [request.room_id]
        state_cache = self._rooms.state_cache
        user_id = request.user_id
        rooms = set(state_cache.joined_rooms(user_id))
        rooms.update(room_id for room_id, _ in state_cache.invited_rooms(user_id))
        for room_id in state_cache.left_rooms(user_id):
            member_id = self._rooms.state.current_state_ids(room_id).get(("m.room.member", user_id))
            position = self._rooms.timeline.position(member_id) if member_id else None
            if position is not None and position > start:
                rooms.add(room_id)  # left in this window: send up to the leave
        return sorted(rooms)

    def _room_events(
        self, user_id: str, room_id: str, start: int, now: int, ignored: set[str]
    ) -> tuple[list[tuple[int, Event]], int]:
        """The room's visible events in (start, now], from at most `MAX_EVENTS + 1`
        candidates; and the position up to which the room was read."""
        candidates: list[tuple[int, Event]] = []
        read_up_to = now
        for position, event in self._rooms.timeline.events_after(room_id, start):
            if position > now:
                break
            if position <= start:
                continue
            if len(candidates) > MAX_EVENTS:
                read_up_to = candidates[-1][0]
                break
            candidates.append((position, event))
        wanted = [(p, e) for p, e in candidates if e.get("sender") not in ignored]
        visible = {
            id(event)
            for event in self._rooms.visibility.filter_events(
                user_id, room_id, (event for _, event in wanted)
            )
        }
        return [(p, e) for p, e in wanted if id(e) in visible], read_up_to

    # ---- waking

    def _room_watcher(self, room_id: str) -> trio.Event:
        watcher = self._room_watchers.get(room_id)
        if watcher is None:
            watcher = self._room_watchers[room_id] = trio.Event()
        return watcher

    def _wake_room(self, room_id: str) -> None:
        watcher = self._room_watchers.pop(room_id, None)
        if watcher is not None:
            watcher.set()


async def _wait_for_any(events: list[trio.Event], timeout: float) -> None:
    """Until one of `events` is set, for at most `timeout` seconds."""
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:

            async def wait_then_stop(event: trio.Event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            for event in events:
                nursery.start_soon(wait_then_stop, event)
