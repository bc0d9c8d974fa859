"""A server process killed under load loses nothing it acknowledged (issue #18).

Two real processes on one PostgreSQL database (tests/support/cluster.py),
several senders through each; mid-load the first is killed with SIGKILL (no
shutdown, its writes and positions cut off wherever they were). A `200` with
an `event_id` is a promise (spec: `content/client-server-api/_index.md`,
"Sending events to a room"): every acknowledged message must afterwards be in
the room through the surviving process and through the first once it is
started again, and reach the survivor's incremental syncs, once each. The
survivor answers every send and sync with `200` throughout: only requests
that were on the killed process may fail, and then only as a broken
connection, never as an error status.
"""

from __future__ import annotations

import itertools

import httpx
import trio

from tests.support import postgres
from tests.support.cluster import start_another, through, two_processes_with_a_room
from tests.support.matrix import User, ok

postgres_server = postgres.postgres_server

ACKNOWLEDGED_BEFORE_THE_KILL = 24
SENDS_AFTER_THE_KILL = 10
"""Per sender on the surviving process."""
LONG_POLL_MS = 5_000
WAIT_LIMIT_SECONDS = 120
"""Far longer than the load takes: a hang becomes a failure (nothing is timed)."""


class Load:
    """What the senders were told: acknowledged messages by event id."""

    def __init__(self) -> None:
        self.acknowledged: dict[str, str] = {}
        self.enough = trio.Event()
        """Set once ACKNOWLEDGED_BEFORE_THE_KILL sends were acknowledged."""
        self.killed = trio.Event()
        self.senders_done = trio.Event()

    def record(self, response: httpx.Response, body: str) -> None:
        self.acknowledged[ok(response)["event_id"]] = body
        if len(self.acknowledged) >= ACKNOWLEDGED_BEFORE_THE_KILL:
            self.enough.set()


async def send(user: User, room_id: str, body: str) -> httpx.Response:
    return await user.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": body})


async def send_until_killed(load: Load, user: User, room_id: str, name: str) -> None:
    """Send through the process that will be killed until it is."""
    for number in itertools.count():
        try:
            response = await send(user, room_id, f"{name}-{number}")
        except httpx.TransportError:
            assert load.killed.is_set()  # it failed only because it was killed
            return
        load.record(response, f"{name}-{number}")


async def send_through_the_survivor(load: Load, user: User, room_id: str, name: str) -> None:
    """Send through the surviving process before, during and after the kill."""
    number = 0
    while not load.killed.is_set():
        load.record(await send(user, room_id, f"{name}-{number}"), f"{name}-{number}")
        number += 1
    for later in range(number, number + SENDS_AFTER_THE_KILL):
        load.record(await send(user, room_id, f"{name}-{later}"), f"{name}-{later}")


def bodies_in(sync: dict, room_id: str) -> list[str]:
    room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
    return [
        event["content"]["body"]
        for event in room.get("timeline", {}).get("events", [])
        if event["type"] == "m.room.message"
    ]


async def follow(load: Load, user: User, room_id: str, since: str, seen: list[str]) -> None:
    """Incremental syncs until every acknowledged message came and the senders are done."""
    while not (load.senders_done.is_set() and set(load.acknowledged.values()) <= set(seen)):
        sync = ok(await user.get("/sync", since=since, timeout=LONG_POLL_MS))
        seen.extend(bodies_in(sync, room_id))
        since = sync["next_batch"]


async def event_ids_in(user: User, room_id: str) -> set[str]:
    """Every event of the room, paged backwards through `/messages` to the start."""
    event_ids: set[str] = set()
    params: dict[str, object] = {"limit": 50}
    while True:
        page = ok(await user.messages(room_id, **params))
        event_ids.update(event["event_id"] for event in page["chunk"])
        if not page["chunk"] or "end" not in page:
            return event_ids
        params["from"] = page["end"]


async def test_nothing_acknowledged_is_lost_when_a_process_is_killed_under_load(
    tmp_path, postgres_server
):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        on_the_first = [alice, through(bob, cluster.one)]
        on_the_second = [bob, through(alice, cluster.two)]
        load = Load()
        seen: list[str] = []
        since = ok(await bob.get("/sync", timeout=0))["next_batch"]

        async def senders() -> None:
            async with trio.open_nursery() as nursery:
                for number, user in enumerate(on_the_first):
                    nursery.start_soon(send_until_killed, load, user, room_id, f"one-{number}")
                for number, user in enumerate(on_the_second):
                    nursery.start_soon(
                        send_through_the_survivor, load, user, room_id, f"two-{number}"
                    )
            load.senders_done.set()

        with trio.fail_after(WAIT_LIMIT_SECONDS):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow, load, bob, room_id, since, seen)
                nursery.start_soon(senders)
                await load.enough.wait()
                load.killed.set()
                cluster.first.process.kill()  # SIGKILL
                await trio.to_thread.run_sync(cluster.first.process.wait)

        acknowledged = load.acknowledged
        assert any(body.startswith("one-") for body in acknowledged.values())
        assert set(acknowledged.values()) <= set(seen)
        assert len(seen) == len(set(seen))  # no message came twice
        assert set(acknowledged) <= await event_ids_in(bob, room_id)

        with start_another(tmp_path, "restarted", cluster.first) as restarted:
            async with httpx.AsyncClient(base_url=restarted.base_url, timeout=60) as again:
                assert set(acknowledged) <= await event_ids_in(through(alice, again), room_id)
                after = ok(await send(through(alice, again), room_id, "after the restart"))
                assert after["event_id"] in await event_ids_in(bob, room_id)
