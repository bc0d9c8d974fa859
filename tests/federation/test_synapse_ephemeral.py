"""Ephemeral traffic between ours and a real Synapse, both ways: typing, read receipts,
presence, device list updates and to-device messages.

In each test a user of one server acts and a user of the other sees it
through its own server's long-poll `/sync`; `DIRECTIONS` runs it with the
actor on ours and then on Synapse (the actor is the visitor of a room the
other one holds). Beyond arriving: typing also stops, a to-device message
comes once, and a device list change is not one left over from the join.
Spec: `content/server-server-api.md` "Typing Notifications", "Receipts",
"Presence", "Device Management", "Send-to-device messaging".
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.synapse_rooms import (
    DIRECTIONS,
    Sync,
    has_bodies,
    visited_room,
)

pytestmark = pytest.mark.parametrize("direction", DIRECTIONS)


def _typing(sync: Sync, room_id: str) -> list[list[str]]:
    return [e["content"]["user_ids"] for e in sync.ephemeral_of(room_id, "m.typing")]


async def test_a_user_typing_on_one_server_is_seen_typing_and_then_stopping_on_the_other(
    both, direction
):
    room_id, _, actor, watcher_sync, _ = await visited_room(both, direction)

    await actor.typing(room_id, True)

    await watcher_sync.until(
        lambda sync: any(actor.user_id in user_ids for user_ids in _typing(sync, room_id))
    )
    await actor.typing(room_id, False)
    await watcher_sync.until(
        lambda sync: _typing(sync, room_id) and actor.user_id not in _typing(sync, room_id)[-1]
    )


def _read_by(sync: Sync, room_id: str, event_id: str, user_id: str) -> dict | None:
    for receipt in sync.ephemeral_of(room_id, "m.receipt"):
        read = receipt["content"].get(event_id, {}).get("m.read", {})
        if user_id in read:
            return read[user_id]
    return None


async def test_a_read_receipt_on_one_server_reaches_the_other(both, direction):
    room_id, watcher, actor, watcher_sync, actor_sync = await visited_room(both, direction)
    message_id = await watcher.send(room_id, "read me")
    await actor_sync.until(has_bodies(room_id, "read me"))

    await actor.read_receipt(room_id, message_id)

    receipt = await watcher_sync.until(
        lambda sync: _read_by(sync, room_id, message_id, actor.user_id)
    )
    assert isinstance(receipt.get("ts"), int)


def _presence_of(sync: Sync, user_id: str, status_msg: str) -> dict | None:
    for event in sync.presence:
        if event["sender"] == user_id and event["content"].get("status_msg") == status_msg:
            return event
    return None


async def test_presence_set_on_one_server_is_seen_on_the_other(both, direction):
    _, _, actor, watcher_sync, _ = await visited_room(both, direction)
    status = f"interop {secrets.token_hex(3)}"

    await actor.set_presence("unavailable", status)

    event = await watcher_sync.until(lambda sync: _presence_of(sync, actor.user_id, status))
    assert event["content"]["presence"] == "unavailable"


async def test_a_new_device_of_a_user_on_one_server_shows_in_the_others_device_lists(
    both, direction
):
    room_id, _, actor, watcher_sync, _ = await visited_room(both, direction)
    await actor.send(room_id, "before the new device")
    await watcher_sync.until(has_bodies(room_id, "before the new device"))
    watcher_sync.devices_changed.clear()

    await both.new_device(actor)

    await watcher_sync.until(lambda sync: actor.user_id in sync.devices_changed)


def _to_device(sync: Sync, nonce: str) -> list[dict]:
    return [e for e in sync.to_device if e.get("content", {}).get("nonce") == nonce]


async def test_a_to_device_message_from_one_server_reaches_a_device_on_the_other_once(
    both, direction
):
    room_id, watcher, actor, watcher_sync, _ = await visited_room(both, direction)
    nonce = secrets.token_hex(8)

    await actor.send_to_device(
        "org.example.interop", watcher.user_id, watcher.device_id, {"nonce": nonce}
    )

    message = await watcher_sync.until(lambda sync: _to_device(sync, nonce))
    assert message[0]["sender"] == actor.user_id
    assert message[0]["type"] == "org.example.interop"
    await actor.send(room_id, "after the to-device message")
    await watcher_sync.until(has_bodies(room_id, "after the to-device message"))
    assert len(_to_device(watcher_sync, nonce)) == 1
