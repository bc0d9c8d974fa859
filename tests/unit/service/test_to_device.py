"""The to-device queue: acknowledged by position, and kept across a restart.

Spec: `content/client-server-api/modules/send_to_device.md`, "Server
behaviour" (store pending messages until delivered; delete them once a sync
from the `next_batch` that carried them comes in). DESIGN.md: a request
answered 200 is on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_conduit.service.devices import DeviceLogin, Devices
from matrix_conduit.service.to_device import ToDevice
from tests.support.service_parts import ServiceParts, open_service_parts

ALICE = "@alice:localhost"
BOB = "@bob:localhost"


def to_device_service(parts: ServiceParts) -> ToDevice:
    devices = Devices(parts.db, parts.globals)
    if devices.get(BOB, "PHONE") is None:
        devices.log_in(BOB, DeviceLogin(device_id="PHONE"))
    return ToDevice(parts.db, parts.globals, devices, parts.notifier)


@pytest.fixture
def parts(tmp_path: Path) -> ServiceParts:
    parts = open_service_parts(tmp_path / "db")
    yield parts
    parts.db.close()


def ping(to_device: ToDevice, number: int) -> None:
    to_device.send(
        ALICE, "LAPTOP", "org.example.ping", f"txn{number}", {BOB: {"PHONE": {"n": number}}}
    )


def test_messages_up_to_the_since_token_are_acknowledged_and_later_ones_delivered(parts):
    to_device = to_device_service(parts)
    ping(to_device, 1)
    first_batch = parts.globals.current_count()
    ping(to_device, 2)
    now = parts.globals.current_count()

    initial = to_device.deliver(BOB, "PHONE", None, first_batch)
    incremental = to_device.deliver(BOB, "PHONE", first_batch, now)
    from_scratch = to_device.deliver(BOB, "PHONE", None, now)

    assert [event["content"] for event in initial] == [{"n": 1}]
    assert [event["content"] for event in incremental] == [{"n": 2}]
    assert from_scratch == [{"type": "org.example.ping", "sender": ALICE, "content": {"n": 2}}]


def test_a_queued_message_survives_a_restart(tmp_path: Path):
    parts = open_service_parts(tmp_path / "db")
    ping(to_device_service(parts), 1)
    parts.db.close()

    reopened = open_service_parts(tmp_path / "db")
    try:
        delivered = to_device_service(reopened).deliver(
            BOB, "PHONE", None, reopened.globals.current_count()
        )
        assert [event["content"] for event in delivered] == [{"n": 1}]
    finally:
        reopened.db.close()


def test_a_retransmission_after_a_restart_is_still_recognised(tmp_path: Path):
    parts = open_service_parts(tmp_path / "db")
    ping(to_device_service(parts), 1)
    parts.db.close()

    reopened = open_service_parts(tmp_path / "db")
    try:
        to_device = to_device_service(reopened)
        ping(to_device, 1)
        delivered = to_device.deliver(BOB, "PHONE", None, reopened.globals.current_count())
        assert len(delivered) == 1
    finally:
        reopened.db.close()
