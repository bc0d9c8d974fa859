"""Typing, presence and to-device messages with several server processes on one database.

Issue #18: every process serves every endpoint, so what one process keeps in
memory (who is typing, presence) must reach the `/sync` of a user served by
another, and a device's to-device messages must be delivered exactly once
however its syncs alternate between processes. Spec:
`content/client-server-api/modules/typing_notifications.md`, `presence.md`
and `send_to_device.md` ("delete them once the client syncs with the
`next_batch` of the response that carried them"). The processes are real
`matrix-conduit` children on a real PostgreSQL (tests/support/cluster.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import trio

from tests.support import postgres
from tests.support.cluster import register_user, through, two_processes, two_processes_with_a_room

postgres_server = postgres.postgres_server

LONG_POLL_MS = 30_000
WAIT_LIMIT_SECONDS = 60
"""Far longer than any change takes to arrive: a hang becomes a failure (nothing is timed)."""


async def sync_until(user, since: str, found: Callable[[dict[str, Any]], Any]) -> tuple[Any, str]:
    """Long-poll `user`'s syncs from `since` until `found(response)` is truthy."""
    with trio.fail_after(WAIT_LIMIT_SECONDS):
        while True:
            response = (await user.get("/sync", since=since, timeout=LONG_POLL_MS)).json()
            since = response["next_batch"]
            if result := found(response):
                return result, since


def typing_in(room_id: str) -> Callable[[dict[str, Any]], list[str] | None]:
    """The `m.typing` user ids a sync carries for the room (None: no `m.typing`)."""

    def found(response: dict[str, Any]) -> list[str] | None:
        room = response.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in room.get("ephemeral", {}).get("events", []):
            if event["type"] == "m.typing":
                return event["content"]["user_ids"] or ["nobody"]
        return None

    return found


async def set_typing(user, room_id: str, typing: bool, timeout: int = 30_000) -> None:
    path = f"/rooms/{quote(room_id)}/typing/{quote(user.user_id)}"
    response = await user.put(path, {"typing": typing, "timeout": timeout})
    assert response.status_code == 200


async def test_typing_through_one_process_reaches_a_sync_on_the_other_and_stops_there_too(
    tmp_path, postgres_server
):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        since = (await bob.get("/sync", timeout=0)).json()["next_batch"]
        found = typing_in(room_id)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(set_typing, alice, room_id, True)
            typing, since = await sync_until(bob, since, found)
        assert typing == [alice.user_id]
        # Stopped through the other process, seen by a sync on the first.
        await set_typing(through(alice, cluster.two), room_id, False)
        typing, _ = await sync_until(through(bob, cluster.one), since, found)
        assert typing == ["nobody"]


async def test_a_typing_notice_set_through_one_process_times_out_on_the_other(
    tmp_path, postgres_server
):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
        since = (await bob.get("/sync", timeout=0)).json()["next_batch"]
        await set_typing(alice, room_id, True, timeout=1000)
        found = typing_in(room_id)
        typing, since = await sync_until(bob, since, found)
        if typing != ["nobody"]:  # the notice arrived before it ran out
            assert typing == [alice.user_id]
            typing, since = await sync_until(bob, since, found)
        assert typing == ["nobody"]


async def test_presence_set_through_one_process_reaches_a_sync_on_the_other(
    tmp_path, postgres_server
):
    async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
        alice, bob = cluster.alice, cluster.bob
        since = (await bob.get("/sync", timeout=0)).json()["next_batch"]
        path = f"/presence/{quote(alice.user_id)}/status"
        body = {"presence": "unavailable", "status_msg": "lunch"}
        assert (await alice.put(path, body)).status_code == 200

        def alices_status(response: dict[str, Any]) -> str | None:
            for event in response.get("presence", {}).get("events", []):
                if event["sender"] == alice.user_id:
                    return event["content"].get("status_msg")
            return None

        status, _ = await sync_until(bob, since, alices_status)
        assert status == "lunch"
        answer = (await through(bob, cluster.two).get(path)).json()
        assert answer["presence"] == "unavailable"


async def test_to_device_messages_arrive_once_each_when_syncs_alternate_between_processes(
    tmp_path, postgres_server
):
    async with two_processes(tmp_path, postgres_server) as cluster:
        alice = await register_user(cluster.one, "alice")
        bob = await register_user(cluster.two, "bob")
        senders = [alice, through(alice, cluster.two)]
        syncers = [through(bob, cluster.one), bob]
        sent = [f"m-{number}" for number in range(40)]
        received: list[str] = []
        since = (await bob.get("/sync", timeout=0)).json()["next_batch"]

        async def send(number: int) -> None:
            path = f"/sendToDevice/m.test/txn-{number}"
            messages = {bob.user_id: {bob.device_id: {"body": sent[number]}}}
            response = await senders[number % 2].put(path, {"messages": messages})
            assert response.status_code == 200

        async def sync(number: int) -> None:
            nonlocal since
            response = await syncers[number % 2].get("/sync", since=since, timeout=0)
            sync = response.json()
            since = sync["next_batch"]
            received.extend(
                event["content"]["body"] for event in sync.get("to_device", {}).get("events", [])
            )

        for number in range(len(sent)):
            async with trio.open_nursery() as nursery:  # a sync and a send at once
                nursery.start_soon(send, number)
                nursery.start_soon(sync, number)
        with trio.fail_after(WAIT_LIMIT_SECONDS):
            number = 0
            while len(received) < len(sent):
                await sync(number)
                number += 1
        for number in range(4):  # nothing comes again, whichever process answers
            await sync(number)
        assert sorted(received) == sorted(sent)
        assert len(received) == len(set(received))
