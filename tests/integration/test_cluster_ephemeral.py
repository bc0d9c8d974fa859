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

import httpx
import trio

from tests.support import postgres
from tests.support.cluster import register_user, server_processes, through

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


async def two_members(one: httpx.AsyncClient, two: httpx.AsyncClient):
    """alice (through the first process), bob (through the second) in one room."""
    alice = await register_user(one, "alice")
    bob = await register_user(two, "bob")
    room_id = await alice.create_room(invite=[bob.user_id])
    await bob.join(room_id)
    return alice, bob, room_id


async def set_typing(user, room_id: str, typing: bool, timeout: int = 30_000) -> None:
    path = f"/rooms/{quote(room_id)}/typing/{quote(user.user_id)}"
    response = await user.put(path, {"typing": typing, "timeout": timeout})
    assert response.status_code == 200


async def test_typing_through_one_process_reaches_a_sync_on_the_other_and_stops_there_too(
    tmp_path, postgres_server
):
    with server_processes(tmp_path, postgres_server, 2) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=60) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=60) as two,
        ):
            alice, bob, room_id = await two_members(one, two)
            since = (await bob.get("/sync", timeout=0)).json()["next_batch"]
            found = typing_in(room_id)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(set_typing, alice, room_id, True)
                typing, since = await sync_until(bob, since, found)
            assert typing == [alice.user_id]
            # Stopped through the other process, seen by a sync on the first.
            await set_typing(through(alice, two), room_id, False)
            typing, _ = await sync_until(through(bob, one), since, found)
            assert typing == ["nobody"]


async def test_a_typing_notice_set_through_one_process_times_out_on_the_other(
    tmp_path, postgres_server
):
    with server_processes(tmp_path, postgres_server, 2) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=60) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=60) as two,
        ):
            alice, bob, room_id = await two_members(one, two)
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
    with server_processes(tmp_path, postgres_server, 2) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=60) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=60) as two,
        ):
            alice, bob, _ = await two_members(one, two)
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
            answer = (await through(bob, two).get(path)).json()
            assert answer["presence"] == "unavailable"


async def test_to_device_messages_arrive_once_each_when_syncs_alternate_between_processes(
    tmp_path, postgres_server
):
    with server_processes(tmp_path, postgres_server, 2) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=60) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=60) as two,
        ):
            alice = await register_user(one, "alice")
            bob = await register_user(two, "bob")
            senders = [alice, through(alice, two)]
            syncers = [through(bob, one), bob]
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
                    event["content"]["body"]
                    for event in sync.get("to_device", {}).get("events", [])
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
