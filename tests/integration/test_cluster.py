"""Several server processes on one PostgreSQL database serve as one server (issue #18).

Each process serves every endpoint; what one process writes, the others read,
and news written through one wakes the long-polling `/sync` of another
(spec: `content/client-server-api/_index.md`, "Syncing": a request with
`timeout` waits until there is something new). The processes are real
`matrix-conduit` children on a real PostgreSQL (tests/support/cluster.py).
"""

from __future__ import annotations

import trio

from tests.support import postgres
from tests.support.cluster import (
    register_user,
    server_processes,
    through,
    two_processes,
    two_processes_with_a_room,
)

postgres_server = postgres.postgres_server

LONG_POLL_MS = 60_000
WAKE_LIMIT_SECONDS = 30
"""Far longer than any wake-up takes, far shorter than a long poll: only a sync
that was woken answers in time (a hang becomes a failure, nothing is timed)."""


def bodies_in(sync: dict, room_id: str) -> list[str]:
    room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
    return [
        event["content"].get("body")
        for event in room.get("timeline", {}).get("events", [])
        if event["type"] == "m.room.message"
    ]


async def test_a_message_sent_through_one_process_wakes_a_sync_waiting_on_another(
    tmp_path, postgres_server
):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        since = (await bob.get("/sync", timeout=0)).json()["next_batch"]
        received: list[str] = []

        async def long_poll() -> None:
            nonlocal since
            # Without the wake-up each poll would wait the whole LONG_POLL_MS.
            with trio.fail_after(WAKE_LIMIT_SECONDS):
                while not received:
                    response = await bob.get("/sync", since=since, timeout=LONG_POLL_MS)
                    since = response.json()["next_batch"]
                    received.extend(bodies_in(response.json(), room_id))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_poll)
            await trio.sleep(0.5)  # bob's request is waiting on the second process
            await alice.send(room_id, "across processes")
        assert received == ["across processes"]


async def test_an_account_registered_through_one_process_works_through_the_other(
    tmp_path, postgres_server
):
    async with two_processes(tmp_path, postgres_server) as cluster:
        alice = await register_user(cluster.one, "alice")
        response = await through(alice, cluster.two).get("/account/whoami")
        assert response.status_code == 200
        assert response.json()["user_id"] == alice.user_id


async def test_messages_sent_through_both_processes_reach_incremental_syncs_once_each(
    tmp_path, postgres_server
):
    """Positions taken by two processes at once land out of order; a sync token
    never passes one that has not landed yet, so no message is skipped."""
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        since = (await bob.get("/sync", timeout=0)).json()["next_batch"]
        sent = [f"{sender}-{number}" for sender in ("a", "b") for number in range(40)]
        seen: list[str] = []
        done = trio.Event()

        async def send_all(user, prefix: str) -> None:
            for number in range(40):
                await user.send(room_id, f"{prefix}-{number}")

        async def follow(user) -> None:
            nonlocal since
            while len(seen) < len(sent):
                response = await user.get("/sync", since=since, timeout=LONG_POLL_MS)
                sync = response.json()
                seen.extend(bodies_in(sync, room_id))
                since = sync["next_batch"]
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, through(bob, cluster.one))
            nursery.start_soon(send_all, alice, "a")
            nursery.start_soon(send_all, bob, "b")
        assert sorted(seen) == sorted(sent)


async def test_an_offline_tool_refuses_the_database_while_a_server_process_runs(
    tmp_path, postgres_server
):
    from tests.support.process import run_command

    with server_processes(tmp_path, postgres_server, 1) as (first,):
        config = first.stderr_path.with_name("conduit.toml")
        result = run_command("create-user", "carol", env={"CONDUIT_CONFIG": str(config)})
        assert result.returncode != 0
        assert "in use" in result.stderr
