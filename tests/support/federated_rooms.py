"""A room two of our servers share, and a `/send` that records what arrives.

Joins over federation are built elsewhere; until then a test makes the room
shared the way the persist path allows: on the room's server (A) it stores
the other server's user's join, signed with the other server's (B's) real
key and checked like any foreign event, then it copies A's events to B with
the contexts an incoming-event handler would compute. Both servers then
see both users joined, so A's outbox has B as a destination and B's
services accept EDUs about the room.

`install_recording_send` records each transaction the servers of the test
receive through the real `PUT /_matrix/federation/v1/send/{txnId}` (origin,
id, body, how many from one origin were in flight at once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from matrix_conduit.core.events import compute_event_id
from matrix_conduit.core.room_versions import get_room_version
from matrix_conduit.service import Services
from matrix_conduit.service.federation.sender import federation_pdu
from matrix_conduit.service.federation.transactions import Transactions
from matrix_conduit.service.rooms.event_context import EventContext, EventStatus
from tests.support.federation import FederatingServer
from tests.support.rooms import RemoteServer


@dataclass
class Received:
    origin: str
    txn_id: str
    body: dict[str, Any]
    receiver: Transactions


@dataclass
class SendLog:
    """What the recording `/send` routes of a test got, in arrival order."""

    transactions: list[Received] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: dict[str, int] = field(default_factory=dict)
    answer_delay_seconds: float = 0.0

    def received_by(self, server: FederatingServer) -> list[Received]:
        receiver = server.server.services.inbound.transactions
        return [t for t in self.transactions if t.receiver is receiver]

    def from_origin(self, server_name: str) -> list[Received]:
        return [t for t in self.transactions if t.origin == server_name]

    def pdu_ids(self, server_name: str, room_version: str = "10") -> list[str]:
        """Event ids of the PDUs `server_name` sent, in the order they arrived."""
        version = get_room_version(room_version)
        return [
            compute_event_id(pdu, version)
            for t in self.from_origin(server_name)
            for pdu in t.body["pdus"]
        ]

    def edus(self, server_name: str, edu_type: str) -> list[dict[str, Any]]:
        return [
            edu["content"]
            for t in self.from_origin(server_name)
            for edu in t.body["edus"]
            if edu["edu_type"] == edu_type
        ]


def install_recording_send(monkeypatch: pytest.MonkeyPatch) -> SendLog:
    """Record every transaction any server of the test receives, then handle it as usual.

    Wraps the real `/send` (`Transactions.receive`): what is recorded is
    what arrived over real TLS, and the PDUs and EDUs still reach the
    receiving server's rooms and clients.
    """
    log = SendLog()
    receive = Transactions.receive

    async def recording(
        self: Transactions, origin: str, txn_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        log.in_flight[origin] = log.in_flight.get(origin, 0) + 1
        log.most_in_flight[origin] = max(log.most_in_flight.get(origin, 0), log.in_flight[origin])
        try:
            await trio.sleep(log.answer_delay_seconds)
            log.transactions.append(Received(origin, txn_id, dict(body), self))
            return await receive(self, origin, txn_id, body)
        finally:
            log.in_flight[origin] -= 1

    monkeypatch.setattr(Transactions, "receive", recording)
    return log


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll `condition` until it holds (fails the test after `timeout` seconds)."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.05)


def _on_top_context(services: Services, event: dict[str, Any], batch: Any) -> EventContext:
    """What an incoming-event handler computes for an accepted event on top of the room."""
    rooms = services.rooms
    room_id = event["room_id"]
    before = rooms.state.current_shortstatehash(room_id)
    after = before
    if "state_key" in event:
        key = (event["type"], event["state_key"])
        after = rooms.state.save_with_event(before, key, event["event_id"], batch)
    extremities = [
        e for e in rooms.timeline.forward_extremities(room_id) if e not in event["prev_events"]
    ]
    return EventContext(
        EventStatus.TIMELINE,
        state_before=before,
        state_after=after,
        current_state=after,
        forward_extremities=(*extremities, event["event_id"]),
    )


async def persist_foreign(services: Services, event: dict[str, Any], room_version: str) -> None:
    """Store another server's (already checked) event on top of the room."""
    rooms = services.rooms
    batch = rooms.timeline.batch()
    context = _on_top_context(services, event, batch)
    async with rooms.locks.hold(event["room_id"]) as guard:
        rooms.timeline.persist(guard, event, get_room_version(room_version), context, batch)


async def add_remote_member(
    services: Services, room_id: str, user_id: str, remote: RemoteServer
) -> None:
    """Store `user_id`'s join to the room, signed by their server `remote`."""
    room_version = services.rooms.timeline.room_version(room_id)
    builder = services.rooms.builder
    template = builder.template(room_id, user_id, "m.room.member", {"membership": "join"}, user_id)
    signed = remote.sign(services, template)
    join = builder.check_foreign(signed, room_version, remote.verify_keys)
    await persist_foreign(services, join, room_version.identifier)


async def share_room(
    a: FederatingServer, b: FederatingServer, room_id: str, b_user_id: str
) -> None:
    """Make `b_user_id` (of B) a member of A's room `room_id`, on both servers."""
    services_a, services_b = a.server.services, b.server.services
    b_server = RemoteServer(b.name, services_b.globals.signing_key)
    await add_remote_member(services_a, room_id, b_user_id, b_server)
    timeline = services_a.rooms.timeline
    room_version = timeline.room_version(room_id)
    for _, event in list(timeline.events_after(room_id, 0)):
        copy = {**federation_pdu(event, room_version), "event_id": event["event_id"]}
        await persist_foreign(services_b, copy, room_version.identifier)
