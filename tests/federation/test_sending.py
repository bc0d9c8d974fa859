"""Our events reach the other servers of the room: durable queues, transactions, catch-up.

Spec: `content/server-server-api.md`, "Transactions" and
`data/api/server-server/transactions.yaml` (at most 50 PDUs per
transaction); DESIGN.md, "Storage conventions" (the outbox is written with
the event, so a restart loses nothing); `../shared/notes/federation-lessons.md`,
"Sending" (one transaction in flight per destination, persisted backoff
lifted when the destination contacts us).
"""

from __future__ import annotations

from typing import Any

import trio

from matrix_conduit.core.signing import generate_signing_key
from matrix_conduit.service.federation.outbox import server_of
from tests.support.federated_rooms import (
    add_remote_member,
    install_recording_send,
    share_room,
    wait_until,
)
from tests.support.federation import (
    ECHO_PATH,
    FederatingServer,
    restart,
    serve_https,
    start_federating,
)
from tests.support.matrix import User, ok, register
from tests.support.rooms import RemoteServer


async def test_a_message_reaches_the_other_server_in_the_room(nursery, ca, tmp_path, monkeypatch):
    sent = install_recording_send(monkeypatch)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await share_room(a, b, room_id, bob.user_id)

    event_id = await alice.send(room_id, "hello bob")

    await wait_until(lambda: event_id in sent.pdu_ids(a.name))
    transaction = sent.from_origin(a.name)[-1]
    assert transaction.body["origin"] == a.name
    pdu = transaction.body["pdus"][-1]
    assert pdu["content"]["body"] == "hello bob"
    assert "unsigned" not in pdu and "event_id" not in pdu
    await wait_until(lambda: not a.server.services.outbox.has_items(b.name))


async def test_a_message_reaches_the_other_servers_clients_sync(nursery, ca, tmp_path, monkeypatch):
    install_recording_send(monkeypatch)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await share_room(a, b, room_id, bob.user_id)
    since = ok(await bob.get("/sync"))["next_batch"]

    event_id = await alice.send(room_id, "hello bob")

    def has_message(response: dict[str, Any]) -> bool:
        room = response.get("rooms", {}).get("join", {}).get(room_id, {})
        return any(e["event_id"] == event_id for e in room.get("timeline", {}).get("events", []))

    with trio.fail_after(20):
        while not has_message(response := ok(await bob.get("/sync", since=since, timeout=1000))):
            since = response["next_batch"]


async def test_events_other_servers_sent_are_not_passed_on(nursery, ca, tmp_path, monkeypatch):
    sent = install_recording_send(monkeypatch)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat")

    await share_room(a, b, room_id, bob.user_id)  # bob's join is B's event, stored on A
    marker = await alice.send(room_id, "after the join")

    await wait_until(lambda: marker in sent.pdu_ids(a.name))
    senders = {pdu["sender"] for t in sent.from_origin(a.name) for pdu in t.body["pdus"]}
    assert {server_of(sender) for sender in senders} == {a.name}


async def test_messages_queued_while_the_peer_is_down_all_arrive_after_restarts(
    nursery, ca, tmp_path, monkeypatch
):
    sent = install_recording_send(monkeypatch)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await share_room(a, b, room_id, bob.user_id)
    await b.stop()

    first = await alice.send(room_id, "while B is down")
    await wait_until(lambda: a.federation.destinations.backoff(b.name) is not None)
    queued = [first] + [await alice.send(room_id, f"message {n}") for n in range(119)]
    await a.stop()
    a = await restart(nursery, a)
    assert a.federation.destinations.backoff(b.name).failures >= 1  # the backoff was stored
    assert a.server.services.outbox.has_items(b.name)
    b = await restart(nursery, b)
    assert sent.from_origin(a.name) == []  # A is backed off: B being up is not enough

    await b.federation.client.request(a.name, "GET", ECHO_PATH)  # B contacts A

    await wait_until(lambda: set(queued) <= set(sent.pdu_ids(a.name)))
    transactions = sent.from_origin(a.name)
    assert all(len(t.body["pdus"]) <= 50 for t in transactions)
    assert len(transactions) >= 3
    arrived = [i for i in sent.pdu_ids(a.name) if i in set(queued)]
    assert arrived == queued  # in order, each once
    await wait_until(lambda: not a.server.services.outbox.has_items(b.name))


async def test_one_transaction_is_in_flight_per_destination(nursery, ca, tmp_path, monkeypatch):
    sent = install_recording_send(monkeypatch)
    sent.answer_delay_seconds = 0.2
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await share_room(a, b, room_id, bob.user_id)

    async def send_many(offset: int) -> list[str]:
        return [await alice.send(room_id, f"burst {offset + n}") for n in range(10)]

    queued = await send_many(0) + await send_many(10)

    await wait_until(lambda: set(queued) <= set(sent.pdu_ids(a.name)))
    assert sent.most_in_flight[a.name] == 1
    assert len(sent.from_origin(a.name)) < len(queued)  # later messages waited and went together


async def test_nothing_is_queued_or_sent_when_federation_is_disabled(
    nursery, ca, tmp_path, monkeypatch
):
    sent = install_recording_send(monkeypatch)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2", allow_federation=False)
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await share_room(a, b, room_id, bob.user_id)

    await alice.send(room_id, "stays here")

    assert not a.server.services.outbox.has_items(b.name)
    assert a.server.services.outbox.destinations() == set()
    assert sent.from_origin(a.name) == []


async def answering_peer(nursery, ca, answers: list[int]) -> tuple[str, list[tuple[str, Any]]]:
    """A stub peer over real TLS whose `/send` answers the given statuses in turn (then 200)."""
    requests: list[tuple[str, Any]] = []

    async def respond(method: str, path: str, body: Any) -> tuple[int, Any]:
        requests.append((path, body))
        status = answers.pop(0) if answers else 200
        if status == 200:
            return 200, {"pdus": {}}
        return status, {"errcode": "M_UNKNOWN", "error": f"status {status}"}

    return await serve_https(nursery, ca, "127.0.0.13", respond), requests


async def room_with_peer_member(a: FederatingServer, alice: User, peer: str) -> str:
    room_id = await alice.create_room(preset="public_chat")
    remote = RemoteServer(peer, generate_signing_key())
    await add_remote_member(a.server.services, room_id, f"@zed:{peer}", remote)
    return room_id


async def test_a_transaction_answered_429_is_retried_later_with_the_same_id(nursery, ca, tmp_path):
    peer, requests = await answering_peer(nursery, ca, [429])
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    a.server.services.federation_sender.rate_limited_retry_seconds = 0.1
    alice = await register(a.server, "alice")
    room_id = await room_with_peer_member(a, alice, peer)

    await alice.send(room_id, "try twice")

    await wait_until(lambda: len(requests) == 2)
    (first, body), (second, again) = requests
    assert first == second and first.startswith("/_matrix/federation/v1/send/")
    assert body["pdus"] == again["pdus"]
    await wait_until(lambda: not a.server.services.outbox.has_items(peer))
    assert a.federation.destinations.backoff(peer) is None  # 429 is no failure of the server


async def test_a_transaction_the_peer_refuses_outright_is_dropped(nursery, ca, tmp_path):
    peer, requests = await answering_peer(nursery, ca, [400])
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    alice = await register(a.server, "alice")
    room_id = await room_with_peer_member(a, alice, peer)

    await alice.send(room_id, "refused")
    await wait_until(lambda: not a.server.services.outbox.has_items(peer))
    await alice.send(room_id, "accepted")

    await wait_until(lambda: len(requests) == 2)
    assert [pdu["content"]["body"] for pdu in requests[1][1]["pdus"]] == ["accepted"]


async def test_a_server_error_backs_the_peer_off_and_keeps_the_queue(nursery, ca, tmp_path):
    peer, requests = await answering_peer(nursery, ca, [503])
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    alice = await register(a.server, "alice")
    room_id = await room_with_peer_member(a, alice, peer)

    await alice.send(room_id, "kept")

    await wait_until(lambda: a.federation.destinations.backoff(peer) is not None)
    assert len(requests) == 1
    assert a.server.services.outbox.has_items(peer)
    a.federation.destinations.record_success(peer)  # what the peer contacting us does

    await wait_until(lambda: not a.server.services.outbox.has_items(peer))
    assert requests[0][0] == requests[1][0]  # the same transaction id
    assert requests[0][1]["pdus"] == requests[1][1]["pdus"]
