"""More of what one server process keeps in memory follows the others (issue #18).

Two real processes on one PostgreSQL database (tests/support/cluster.py): a
change made through the first shows through the second. Reads that may lag
wait for the news with `until_seen` (bounded, never timed).
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from tests.support import postgres
from tests.support.cluster import register_user, server_processes
from tests.support.matrix import User, path_part

postgres_server = postgres.postgres_server

SEEN_LIMIT_SECONDS = 30
"""Far longer than news takes between processes: only news that never comes fails."""


async def synced_until(user: User, since: str, found: Any) -> dict[str, Any]:
    """Incremental `/sync`s from `since` until `found(sync)` is true; that sync."""
    with trio.fail_after(SEEN_LIMIT_SECONDS):
        while True:
            sync = (await user.get("/sync", since=since, timeout=10_000)).json()
            if found(sync):
                return sync
            since = sync["next_batch"]


async def test_a_receipt_sent_through_one_process_is_in_sync_on_the_other(
    tmp_path, postgres_server
):
    with server_processes(tmp_path, postgres_server, 2) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=60) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=60) as two,
        ):
            alice = await register_user(one, "alice")
            bob = await register_user(two, "bob")
            room_id = await alice.create_room(invite=[bob.user_id])
            await bob.join(room_id)
            event_id = await bob.send(room_id, "read me")
            since = (await bob.get("/sync", timeout=0)).json()["next_batch"]

            receipt = f"/rooms/{path_part(room_id)}/receipt/m.read/{path_part(event_id)}"
            assert (await alice.post(receipt, {})).status_code == 200

            def has_receipt(sync: dict[str, Any]) -> bool:
                room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
                return any(
                    e["type"] == "m.receipt" for e in room.get("ephemeral", {}).get("events", [])
                )

            sync = await synced_until(bob, since, has_receipt)
            events = sync["rooms"]["join"][room_id]["ephemeral"]["events"]
            content = next(e["content"] for e in events if e["type"] == "m.receipt")
            assert alice.user_id in content[event_id]["m.read"]
