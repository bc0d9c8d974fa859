"""Background queues with several server processes on one database (issue #18).

Spec: `content/application-service-api.md`, "Pushing events" (one queue per
appservice, a retried transaction keeps its txnId, the appservice drops a
repeat) and `content/push-gateway-api.md`. Whichever process an event is sent
through, each queue item is sent once, by one process; when the process
sending a queue is killed mid-send, another one takes the queue over and
sends the rest, the unanswered transaction again under its own id
(`matrix_conduit/service/queue_leases.py`).
"""

from __future__ import annotations

import httpx
import trio

from tests.support import postgres
from tests.support.appservice_receiver import AppServiceReceiver
from tests.support.cluster import (
    register_user,
    server_processes,
    start_another,
    through,
    two_processes_with_a_room,
)

postgres_server = postgres.postgres_server

MESSAGES_EACH = 15


async def send_through_both(alice, bob, room_id: str, prefix: str) -> set[str]:
    """MESSAGES_EACH messages by each, at the same time; their bodies."""

    async def send_all(user, name: str) -> None:
        for number in range(MESSAGES_EACH):
            await user.send(room_id, f"{prefix}-{name}-{number}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_all, alice, "alice")
        nursery.start_soon(send_all, bob, "bob")
    return {f"{prefix}-{n}-{i}" for n in ("alice", "bob") for i in range(MESSAGES_EACH)}


async def test_an_appservice_gets_each_event_once_whichever_process_it_was_sent_through(
    tmp_path, postgres_server
):
    receiver = AppServiceReceiver()
    registration = receiver.registration(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        async with two_processes_with_a_room(
            tmp_path, postgres_server, app_service_config_files=[str(registration)]
        ) as cluster:
            alice, bob, room_id = cluster.alice, cluster.bob, cluster.room_id
            sent = await send_through_both(alice, bob, room_id, "m")
            # Queues are sent in order: once the last one is in, a repeat of any
            # earlier one would be too.
            await through(alice, cluster.two).send(room_id, "last")
            await receiver.wait_for_bodies(sent | {"last"})
        nursery.cancel_scope.cancel()
    txn_ids = [txn_id for txn_id, _ in receiver.transactions]
    assert len(txn_ids) == len(set(txn_ids))
    assert sorted(receiver.bodies()) == sorted(sent | {"last"})


async def test_when_the_process_sending_to_an_appservice_is_killed_the_other_sends_the_rest(
    tmp_path, postgres_server
):
    receiver = AppServiceReceiver()
    registration = receiver.registration(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        with server_processes(
            tmp_path, postgres_server, 1, app_service_config_files=[str(registration)]
        ) as (first,):
            async with httpx.AsyncClient(base_url=first.base_url, timeout=60) as one:
                alice = await register_user(one, "alice")
                room_id = await alice.create_room()
                await alice.send(room_id, "before")
                await receiver.wait_for_bodies({"before"})  # the first process sends
                with start_another(tmp_path, "second", first) as second:
                    async with httpx.AsyncClient(base_url=second.base_url, timeout=60) as two:
                        bob = await register_user(two, "bob")
                        await alice.invite(room_id, bob.user_id)
                        await bob.join(room_id)
                        receiver.hold_next = True
                        sent = await send_through_both(alice, bob, room_id, "m")
                        with trio.fail_after(60):
                            await receiver.held.wait()
                        first.process.kill()  # mid-send: the transaction is unanswered
                        first.process.wait()
                        after = {f"after-{number}" for number in range(MESSAGES_EACH)}
                        for body in sorted(after):
                            await bob.send(room_id, body)
                        await receiver.wait_for_bodies(sent | after)
        nursery.cancel_scope.cancel()
    by_txn_id = receiver.by_txn_id()
    assert receiver.held_txn_id is not None and receiver.count(receiver.held_txn_id) >= 2
    assert all(body == by_txn_id[txn_id] for txn_id, body in receiver.transactions)
    assert sorted(receiver.bodies()) == sorted({"before"} | sent | after)
