"""History from before a user's join, between ours and a real Synapse, both ways: the
visitor's server backfills it from the room's home (`/backfill`) when its client pages back.

Each test runs in both directions (`DIRECTIONS`): with a Synapse room and our visitor
our server asks Synapse's `/backfill` (and `/state_ids`, `/event`); with our room and a
Synapse visitor Synapse asks ours. Spec: `content/server-server-api.md` § Backfilling
and retrieving missing events; `content/client-server-api/_index.md` § Pagination;
`content/client-server-api/modules/history_visibility.md`.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.backfill import bodies, history
from tests.support.matrix import ok
from tests.support.synapse_rooms import (
    DIRECTIONS,
    Account,
    Peers,
    has_bodies,
    joined,
    shared_room,
    sides,
)


async def room_with_history(
    both: Peers, direction: str, messages: int, **create: object
) -> tuple[str, Account, Account, list[str]]:
    """A public room of the home side with `messages` messages, then the visitor joined
    (by id, through the home server). Returns (room, home, visitor, texts)."""
    home_side, visitor_side = sides(direction)
    home, visitor = await both.account_on(home_side), await both.account_on(visitor_side)
    create.setdefault("preset", "public_chat")
    room_id = await home.create_room(**create)
    texts = [f"before the join {n}" for n in range(1, messages + 1)]
    for text in texts:
        await home.send(room_id, text)
    visitor_sync = visitor.sync()
    await visitor_sync.once()
    ok(await visitor.join(room_id, server_name=home.server_name))
    await visitor_sync.until(joined(visitor.user_id, room_id))
    return room_id, home, visitor, texts


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_a_user_who_joined_later_reads_every_earlier_message_in_order_back_to_the_create(
    both, direction
):
    room_id, _home, visitor, texts = await room_with_history(both, direction, 120)

    events = await history(visitor, room_id, page=20)

    assert events[0]["type"] == "m.room.create"
    assert bodies(events) == texts
    assert len({e["event_id"] for e in events}) == len(events)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_joined_visibility_gives_a_later_server_nothing_from_before_its_join(both, direction):
    room_id, home, visitor, _texts = await room_with_history(
        both,
        direction,
        5,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "joined"},
            }
        ],
    )
    visitor_sync = visitor.sync()
    await visitor_sync.once()
    await home.send(room_id, "after the join")
    await visitor_sync.until(has_bodies(room_id, "after the join"))

    events = await history(visitor, room_id, page=10)

    assert bodies(events) == ["after the join"]


async def test_messages_ours_missed_from_synapse_are_read_back_across_the_gap_in_order(
    both, monkeypatch
):
    """Our server loses 30 of Synapse's PDUs on the way in (dropped as they are taken off
    the inbound queue, as a lossy link would); the next one names the 30th as its prev
    event, so ours pulls the newest 5 (`max_fetch_prev_events = 5`) and learns the
    state below them; the other 25 are a gap in the middle of our timeline until
    `/messages` backfills them from Synapse."""
    carol = await both.synapse_account()
    alice = await both.our_account()
    room_id, _, alice_sync = await shared_room(carol, alice)
    await carol.send(room_id, "before the gap")
    await alice_sync.until(has_bodies(room_id, "before the gap"))
    services = both.ours.server.services
    monkeypatch.setattr(services.inbound.events, "_max_fetch_prev_events", 5)
    handle_pushed = services.inbound.events.handle_pushed
    lost: list[str] = []

    async def lossy(origin: str, event: dict, room_version: object, finish: Any = None) -> Any:
        if event["content"].get("body", "").startswith("missed"):
            lost.append(event["event_id"])
            with services.rooms.timeline.batch() as batch:
                if finish is not None:
                    finish(batch)
            return None
        if finish is None:
            return await handle_pushed(origin, event, room_version)
        return await handle_pushed(origin, event, room_version, finish)

    monkeypatch.setattr(services.inbound.events, "handle_pushed", lossy)
    missed = [f"missed {n}" for n in range(1, 31)]
    for text in missed:
        await carol.send(room_id, text)
    await carol.send(room_id, "after the gap")
    await alice_sync.until(has_bodies(room_id, "after the gap"))
    assert len(lost) == len(missed)
    assert len(set(alice_sync.bodies(room_id)) & set(missed)) == 5

    events = await history(alice, room_id, page=10)

    assert events[0]["type"] == "m.room.create"
    assert bodies(events) == ["before the gap", *missed, "after the gap"]


async def test_a_forked_history_from_synapse_comes_back_oldest_first_to_the_create(both):
    """Synapse's room gets 200 messages four at a time: its events fork (several at one
    depth). Backfilled, every event still comes after those it follows (depth never
    goes down along the history) and `m.room.create` is the first."""
    home, visitor = await both.synapse_account(), await both.our_account()
    room_id = await home.create_room(preset="public_chat")
    texts = [f"forked {n}" for n in range(200)]
    limiter = trio.CapacityLimiter(4)

    async def send(text: str) -> None:
        async with limiter:
            await home.send(room_id, text)

    async with trio.open_nursery() as nursery:
        for text in texts:
            nursery.start_soon(send, text)
    visitor_sync = visitor.sync()
    await visitor_sync.once()
    ok(await visitor.join(room_id, server_name=home.server_name))
    await visitor_sync.until(joined(visitor.user_id, room_id))
    timeline = both.ours.server.services.rooms.timeline

    events = await history(visitor, room_id, page=50)

    assert events[0]["type"] == "m.room.create"
    assert sorted(bodies(events)) == sorted(texts)
    depths = [timeline.get_event(event["event_id"])["depth"] for event in events]
    assert len(set(depths)) < len(depths)  # the history did fork
    assert depths == sorted(depths)
