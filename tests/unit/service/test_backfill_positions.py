"""Where backfilled history goes in a room's timeline, and how tokens page through it.

`Timeline` (module docstring): an event fetched later from another server
(`/backfill`) is stored just before the event whose missing prev_events it is,
under a negative stream position, so `/messages` tokens page through it in
order (spec `content/client-server-api/_index.md` § Pagination) while `/sync`,
which only moves forwards from positions it gave out, never sees it as new.
Here the events are stand-ins (no signatures): placement is all that is judged.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from matrix_conduit.service import Services
from tests.support.rooms import ALICE, open_services, public_room

_ids = itertools.count(1)


@pytest.fixture
def services(tmp_path) -> Services:
    with open_services(tmp_path) as services:
        yield services


def old_message(room_id: str, text: str) -> dict[str, Any]:
    return {
        "event_id": f"$old{next(_ids)}",
        "room_id": room_id,
        "type": "m.room.message",
        "sender": "@zara:remote.example",
        "content": {"msgtype": "m.text", "body": text},
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
        "origin_server_ts": 0,
    }


async def fill_before(
    services: Services, room_id: str, below: str, texts: list[str]
) -> list[dict[str, Any]]:
    """Stand-ins for `texts` (oldest first) stored just before `below`."""
    timeline = services.rooms.timeline
    events = [old_message(room_id, text) for text in texts]
    room_version = timeline.room_version(room_id)
    async with services.rooms.locks.hold(room_id) as guard:
        positions = timeline.backfill_positions(room_id, below, len(events))
        for event, position in zip(events, positions, strict=True):
            timeline.persist_backfilled(guard, event, room_version, position, None, None)
    return events


def paged_back(services: Services, room_id: str, page: int) -> list[str]:
    """Event ids, newest first, as `/messages?dir=b` pages them (end = last position - 1)."""
    timeline = services.rooms.timeline
    token = timeline.last_position(room_id)
    seen: list[str] = []
    while True:
        chunk = list(itertools.islice(timeline.events_before(room_id, token), page))
        seen.extend(event["event_id"] for _, event in chunk)
        if len(chunk) < page:
            return seen
        token = chunk[-1][0] - 1


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["event_id"] for event in events]


async def test_history_before_the_first_event_comes_before_it_oldest_first(services):
    room_id = await public_room(services)
    timeline = services.rooms.timeline
    local = [event["event_id"] for _, event in timeline.events_after(room_id, 0)]

    first_batch = await fill_before(services, room_id, local[0], ["older 3", "older 4"])
    second_batch = await fill_before(
        services, room_id, first_batch[0]["event_id"], ["older 1", "older 2"]
    )

    whole = [*ids(second_batch), *ids(first_batch), *local]
    assert [event["event_id"] for _, event in timeline.events_after(room_id, 0)] == whole
    for page in (1, 2, 3, 100):
        assert paged_back(services, room_id, page) == whole[::-1]
    positions = [timeline.position(event_id) for event_id in whole]
    assert all(position < 0 for position in positions[:4])
    assert positions == sorted(positions)


async def test_history_filled_into_a_gap_sits_between_its_neighbours(services):
    room_id = await public_room(services)
    timeline = services.rooms.timeline
    local = [event["event_id"] for _, event in timeline.events_after(room_id, 0)]
    middle = len(local) // 2

    filled = await fill_before(services, room_id, local[middle], ["gap 1", "gap 2", "gap 3"])

    whole = [*local[:middle], *ids(filled), *local[middle:]]
    assert [event["event_id"] for _, event in timeline.events_after(room_id, 0)] == whole
    for page in (1, 2, 4):
        assert paged_back(services, room_id, page) == whole[::-1]
    positions = [timeline.position(event_id) for event_id in whole]
    assert positions == sorted(positions)  # in room order, as `/sync` and visibility compare
    before, after = positions[middle - 1], positions[middle + len(filled)]
    assert all(
        before < p < after and p <= after and not p <= before
        for p in positions[middle : middle + len(filled)]
    )
    for event in filled:
        position = timeline.position(event["event_id"])
        assert position is not None
        stored = timeline.event_at(room_id, position)
        assert stored is not None and stored["event_id"] == event["event_id"]


async def test_backfilled_history_is_never_new_and_changes_nothing_current(services):
    room_id = await public_room(services)
    timeline = services.rooms.timeline
    state = services.rooms.state
    last = timeline.last_position(room_id)
    extremities = timeline.forward_extremities(room_id)
    current = state.current_shortstatehash(room_id)
    first = next(iter(timeline.events_after(room_id, 0)))[1]["event_id"]

    await fill_before(services, room_id, first, ["long ago"])

    assert list(timeline.events_after(room_id, last)) == []
    assert timeline.last_position(room_id) == last
    assert timeline.forward_extremities(room_id) == extremities
    assert state.current_shortstatehash(room_id) == current
    assert services.rooms.state_cache.is_joined(ALICE, room_id)


async def test_a_position_or_event_already_in_the_timeline_is_refused(services):
    room_id = await public_room(services)
    timeline = services.rooms.timeline
    first = next(iter(timeline.events_after(room_id, 0)))[1]["event_id"]
    [placed] = await fill_before(services, room_id, first, ["once"])
    position = timeline.position(placed["event_id"])
    assert position is not None
    room_version = timeline.room_version(room_id)

    async with services.rooms.locks.hold(room_id) as guard:
        with pytest.raises(ValueError):
            timeline.persist_backfilled(guard, placed, room_version, position - 1, None, None)
        with pytest.raises(ValueError):
            other = old_message(room_id, "twice")
            timeline.persist_backfilled(guard, other, room_version, position, None, None)
        with pytest.raises(ValueError):
            timeline.persist_backfilled(guard, other, room_version, 5, None, None)
