"""End-to-end encryption between our server and a real Synapse, both ways, with matrix-nio clients.

Spec: `content/server-server-api.md` "End-to-End Encryption" (`/user/keys/query`,
`/user/keys/claim`), "Device Management" and "Send-to-device messaging";
`content/client-server-api/modules/end_to_end_encryption.md` (the client's
`/keys/query`, `/keys/claim`, `device_lists.changed`). The keys are real: each
user's device is a matrix-nio client with encryption on, which makes its own
Olm account and uploads its device and one-time keys. `DIRECTIONS` runs each
test with the room on Synapse and the visitor on ours, then the other way, so
each server both fans out to the other and serves the other's requests.
nio runs on asyncio in a worker thread (`tests/support/nio.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from nio import (
    AsyncClient,
    EncryptionError,
    KeysUploadResponse,
    MegolmEvent,
    RoomMessageText,
    RoomSendResponse,
)

from matrix_conduit.core.e2e_keys import verify_key_signature
from tests.support.e2ee import SIGNED_CURVE25519
from tests.support.matrix import ok, path_part
from tests.support.nio import in_asyncio
from tests.support.remote_keys import dead_server_name, nio_client, nio_sync
from tests.support.synapse_rooms import DIRECTIONS, Account, Sync, shared_room, sides

pytestmark = pytest.mark.parametrize("direction", DIRECTIONS)

MEGOLM = "m.megolm.v1.aes-sha2"
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
ROUNDS = 30
"""Syncs (of at most a second each) a nio client makes waiting for something to arrive."""


def _nio(account: Account, store: Path) -> AsyncClient:
    return nio_client(
        str(account.http.base_url).rstrip("/"),
        store,
        account.user_id,
        account.device_id,
        account.access_token,
    )


async def _accounts(both, direction: str) -> tuple[Account, Account]:
    home_side, visitor_side = sides(direction)
    return await both.account_on(home_side), await both.account_on(visitor_side)


async def test_keys_queried_and_claimed_across_servers_are_the_ones_the_nio_client_uploaded(
    both, direction, tmp_path
):
    owner, asker = await _accounts(both, direction)
    _, _, asker_sync = await shared_room(owner, asker)
    asker_sync.devices_changed.clear()

    async def upload() -> dict[str, str]:
        client = _nio(owner, tmp_path / "owner")
        try:
            assert isinstance(await client.keys_upload(), KeysUploadResponse)
            return dict(client.olm.account.identity_keys)
        finally:
            await client.close()

    identity_keys = await in_asyncio(upload)
    await _settled(asker_sync, owner)

    queried = ok(await asker.request("POST", "/keys/query", {"device_keys": {owner.user_id: []}}))
    assert queried["failures"] == {}
    device = queried["device_keys"][owner.user_id][owner.device_id]
    ed25519_id = f"ed25519:{owner.device_id}"
    assert device["keys"][ed25519_id] == identity_keys["ed25519"]
    assert device["keys"][f"curve25519:{owner.device_id}"] == identity_keys["curve25519"]
    verify_key_signature(device, owner.user_id, ed25519_id, identity_keys["ed25519"])

    claim = {"one_time_keys": {owner.user_id: {owner.device_id: SIGNED_CURVE25519}}}
    first = ok(await asker.request("POST", "/keys/claim", claim))
    second = ok(await asker.request("POST", "/keys/claim", claim))
    assert first["failures"] == second["failures"] == {}
    keys = [c["one_time_keys"][owner.user_id][owner.device_id] for c in (first, second)]
    assert keys[0] != keys[1], "a one-time key was handed out twice"
    for key in keys:
        ((name, key_object),) = key.items()
        assert name.startswith(f"{SIGNED_CURVE25519}:")
        verify_key_signature(key_object, owner.user_id, ed25519_id, identity_keys["ed25519"])


async def test_a_device_that_never_uploaded_keys_does_not_spoil_the_query_of_its_user(
    both, direction, tmp_path
):
    """user_devices.yaml: each device of `/user/devices` comes with its `keys`. Synapse reads
    them from every device listed; a keyless one listed made the query a failure."""
    owner, asker = await _accounts(both, direction)
    await both.new_device(owner)  # logged in, never uploads keys

    async def upload() -> None:
        client = _nio(owner, tmp_path / "owner")
        try:
            assert isinstance(await client.keys_upload(), KeysUploadResponse)
        finally:
            await client.close()

    await in_asyncio(upload)  # before the room: the asker's server has heard nothing of it
    await shared_room(owner, asker)

    answer = ok(await asker.request("POST", "/keys/query", {"device_keys": {owner.user_id: []}}))

    assert answer["failures"] == {}
    assert set(answer["device_keys"][owner.user_id]) == {owner.device_id}


async def test_a_server_that_is_down_is_named_in_failures_and_the_other_servers_keys_come(
    both, direction, tmp_path
):
    owner, asker = await _accounts(both, direction)
    _, _, asker_sync = await shared_room(owner, asker)
    asker_sync.devices_changed.clear()

    async def upload() -> None:
        client = _nio(owner, tmp_path / "owner")
        try:
            assert isinstance(await client.keys_upload(), KeysUploadResponse)
        finally:
            await client.close()

    await in_asyncio(upload)
    await _settled(asker_sync, owner)
    dead = dead_server_name("127.0.0.13")
    body = {"timeout": 2000, "device_keys": {owner.user_id: [], f"@gone:{dead}": []}}

    with trio.fail_after(60):  # bounded, not measured
        answer = ok(await asker.request("POST", "/keys/query", body))

    assert set(answer["failures"]) == {dead}, answer["failures"]
    assert owner.device_id in answer["device_keys"][owner.user_id]


async def test_a_new_device_with_keys_on_one_server_is_seen_changed_and_queried_on_the_other(
    both, direction, tmp_path
):
    watcher, actor = await _accounts(both, direction)
    room_id, watcher_sync, _ = await shared_room(watcher, actor)
    ok(await watcher.request("POST", "/keys/query", {"device_keys": {actor.user_id: []}}))
    await actor.send(room_id, "before the new device")
    await watcher_sync.until(lambda sync: "before the new device" in sync.bodies(room_id))
    watcher_sync.devices_changed.clear()
    laptop = await both.new_device(actor)

    async def upload() -> str:
        client = _nio(laptop, tmp_path / "laptop")
        try:
            assert isinstance(await client.keys_upload(), KeysUploadResponse)
            return client.olm.account.identity_keys["ed25519"]
        finally:
            await client.close()

    laptop_key = await in_asyncio(upload)

    await watcher_sync.until(lambda sync: actor.user_id in sync.devices_changed)

    async def laptop_known() -> bool:
        queried = ok(
            await watcher.request("POST", "/keys/query", {"device_keys": {actor.user_id: []}})
        )
        device = queried["device_keys"].get(actor.user_id, {}).get(laptop.device_id)
        return device is not None and device["keys"][f"ed25519:{laptop.device_id}"] == laptop_key

    for _ in range(ROUNDS):
        if await laptop_known():
            break
        await watcher_sync.once(timeout_ms=1000)
    else:
        raise AssertionError(f"{watcher.server_name} never returned {laptop.device_id}'s keys")


async def test_nio_clients_on_the_two_servers_talk_in_an_encrypted_room_and_both_decrypt(
    both, direction, tmp_path
):
    home, visitor = await _accounts(both, direction)
    room_id, _, _ = await shared_room(home, visitor, initial_state=[ENCRYPTION])

    async def scenario() -> dict[str, list[str]]:
        home_nio, visitor_nio = _nio(home, tmp_path / "home"), _nio(visitor, tmp_path / "visitor")
        try:
            for client in (home_nio, visitor_nio):
                assert isinstance(await client.keys_upload(), KeysUploadResponse)
                await nio_sync(client, timeout_ms=0)
            await _until_devices_known(home_nio, visitor)
            sent = await home_nio.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": "hello from home, secretly"},
                ignore_unverified_devices=True,
            )
            assert isinstance(sent, RoomSendResponse), sent
            visitor_read = await _until_decrypted(visitor_nio, room_id, "hello from home, secretly")

            await _until_devices_known(visitor_nio, home)
            reply = await visitor_nio.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": "hello from the visitor, secretly"},
                ignore_unverified_devices=True,
            )
            assert isinstance(reply, RoomSendResponse), reply
            home_read = await _until_decrypted(
                home_nio, room_id, "hello from the visitor, secretly"
            )
            return {"visitor_read": visitor_read, "home_read": home_read}
        finally:
            await home_nio.close()
            await visitor_nio.close()

    read = await in_asyncio(scenario)

    assert "hello from home, secretly" in read["visitor_read"]
    assert "hello from the visitor, secretly" in read["home_read"]
    home_timeline = await home.request(
        "GET", f"/rooms/{path_part(room_id)}/messages", dir="b", limit=50
    )
    events = ok(home_timeline)["chunk"]
    assert [e for e in events if e["type"] == "m.room.encrypted"], "no ciphertext in the room"
    assert not [e for e in events if e["type"] == "m.room.message"], "plaintext reached a server"


async def _settled(asker_sync: Sync, owner: Account) -> None:
    """Wait until the asker's server has taken in the owner's new keys (its `/sync` says the
    owner's devices changed) before asking for them.

    Synapse 1.163 answers a `/keys/query` made while the resync it started for
    the update finishes with a failure naming the owner's server ("'devices'",
    a KeyError of its own); clients ask once the change shows in their sync.
    """
    await asker_sync.until(lambda sync: owner.user_id in sync.devices_changed)


async def _until_devices_known(client: AsyncClient, other: Account) -> None:
    """Sync (and let nio query keys) until `client` knows `other`'s device."""
    for _ in range(ROUNDS):
        if other.device_id in client.device_store[other.user_id]:
            return
        await nio_sync(client)
    raise AssertionError(f"{client.user_id} never learnt {other.user_id}'s device keys")


async def _until_decrypted(client: AsyncClient, room_id: str, body: str) -> list[str]:
    """Sync until `body` arrives decrypted in the room; every text read on the way.

    A message that comes before its room key (the to-device message and the
    event travel separately) is decrypted again after each later sync."""
    read: list[str] = []
    waiting: list[MegolmEvent] = []
    for _ in range(ROUNDS):
        response = await nio_sync(client)
        room = response.rooms.join.get(room_id)
        events = list(room.timeline.events) if room is not None else []
        waiting += [e for e in events if isinstance(e, MegolmEvent)]
        for event in list(waiting):
            try:
                events.append(client.decrypt_event(event))
                waiting.remove(event)
            except EncryptionError:
                pass
        read += [e.body for e in events if isinstance(e, RoomMessageText)]
        if body in read:
            return read
    raise AssertionError(f"{client.user_id} never decrypted {body!r}; read {read}")
