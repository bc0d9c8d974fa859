"""The federation outbox: written with the change that causes it, or not at all.

DESIGN.md, "Storage conventions" (outgoing work queued in the same atomic
batch as the event); `content/server-server-api.md`, "Transactions" (our
events go to the other servers of the room; other servers' events are sent
by their origin), "Device Management" (`stream_id`/`prev_id` chains).
"""

from __future__ import annotations

import itertools

import pytest

from matrix_conduit.service import Services
from matrix_conduit.service.devices import DeviceLogin
from tests.support.federated_rooms import add_remote_member
from tests.support.rooms import ALICE, REMOTE, ZARA, open_services, public_room, remote_server


@pytest.fixture
def services(tmp_path) -> Services:
    with open_services(tmp_path) as services:
        yield services


def queued(services: Services, destination: str) -> list[dict]:
    return [item for _, item in services.outbox.items(destination)]


async def test_our_event_is_queued_for_each_other_server_of_the_room(services):
    room_id = await public_room(services)
    await add_remote_member(services, room_id, ZARA, remote_server())

    event_id = await services.rooms.events.send(
        room_id, ALICE, None, "m.room.message", {"msgtype": "m.text", "body": "hi"}
    )

    assert queued(services, REMOTE) == [{"pdu": event_id}]
    assert services.outbox.destinations() == {REMOTE}
    assert queued(services, "localhost") == []


async def test_another_servers_event_is_not_passed_on(services):
    room_id = await public_room(services)

    await add_remote_member(services, room_id, ZARA, remote_server())

    assert services.outbox.destinations() == set()


async def test_nothing_is_queued_when_the_events_batch_fails(services):
    room_id = await public_room(services)
    await add_remote_member(services, room_id, ZARA, remote_server())

    def failing_hook(*_: object) -> None:
        raise RuntimeError("the disk is full")

    services.rooms.timeline.appending.append(failing_hook)
    with pytest.raises(RuntimeError):
        await services.rooms.events.send(
            room_id, ALICE, None, "m.room.message", {"msgtype": "m.text", "body": "lost"}
        )

    assert queued(services, REMOTE) == []


async def test_device_updates_in_one_batch_chain_their_stream_ids(services):
    room_id = await public_room(services)
    await add_remote_member(services, room_id, ZARA, remote_server())
    devices = services.devices
    phone, laptop = (devices.log_in(ALICE, DeviceLogin()).device_id for _ in range(2))

    devices.delete(ALICE, [phone, laptop])

    updates = [item["device_list"] for item in queued(services, REMOTE)]
    assert [u["device_id"] for u in updates] == [phone, laptop, phone, laptop]
    for previous, update in itertools.pairwise(updates):
        assert update["prev_id"] == [previous["stream_id"]]
    edus = [services.edu_contents.build(item) for item in queued(services, REMOTE)]
    assert [edu["content"].get("deleted", False) for edu in edus] == [True, True, True, True]


def test_destinations_are_found_when_one_name_starts_another(services):
    with services.db.batch() as batch:
        for destination in ("a.example", "a.example.b", "b.example"):
            services.outbox.queue(batch, [destination], {"pdu": "$x"})

    assert services.outbox.destinations() == {"a.example", "a.example.b", "b.example"}
