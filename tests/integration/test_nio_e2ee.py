"""Two matrix-nio clients with encryption on talk in an encrypted room, and read each other.

What a real E2EE client needs from the server, end to end: `/keys/upload`
(device and one-time keys), `/keys/query` (the other's devices), `/keys/claim`
(a one-time key to start an Olm session), `/sendToDevice` (the Megolm room
key, Olm-encrypted) delivered by `/sync`, and the encrypted room messages.
Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
`send_to_device.md`. No verification: both send with
`ignore_unverified_devices`.

nio runs on asyncio (aiohttp), so the scenario runs in a worker thread with
its own asyncio loop while the server serves on this test's trio loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysQueryResponse,
    KeysUploadResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from tests.support.nio import in_asyncio
from tests.support.server import TestServer, make_config, serving

MEGOLM = "m.megolm.v1.aes-sha2"


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


async def encrypting_client(base_url: str, store: Path, name: str) -> AsyncClient:
    """A registered nio client with encryption enabled and its keys uploaded."""
    store.mkdir()
    client = AsyncClient(
        base_url,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
    )
    registered = await client.register(name, f"{name} password", device_name=f"{name} nio")
    assert isinstance(registered, RegisterResponse), registered
    assert client.olm is not None, "nio's encryption did not load"
    uploaded = await client.keys_upload()
    assert isinstance(uploaded, KeysUploadResponse), uploaded
    return client


async def sync(client: AsyncClient) -> SyncResponse:
    """One sync from the client's last token, then the key requests nio's sync loop makes."""
    response = await client.sync(timeout=0, full_state=client.next_batch is None)
    assert isinstance(response, SyncResponse), response
    if client.should_upload_keys:
        assert isinstance(await client.keys_upload(), KeysUploadResponse)
    if client.should_query_keys:
        assert isinstance(await client.keys_query(), KeysQueryResponse)
    return response


def texts(response: SyncResponse, room_id: str) -> list[Any]:
    room = response.rooms.join.get(room_id)
    return list(room.timeline.events) if room is not None else []


async def test_two_nio_clients_exchange_and_decrypt_messages_in_an_encrypted_room(
    open_server: TestServer, tmp_path: Path
):
    async def scenario() -> dict[str, Any]:
        alice = await encrypting_client(open_server.base_url, tmp_path / "alice", "alice")
        bob = await encrypting_client(open_server.base_url, tmp_path / "bob", "bob")
        try:
            created = await alice.room_create(
                invite=[bob.user_id],
                initial_state=[
                    {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
                ],
            )
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id
            await sync(bob)
            assert isinstance(await bob.join(room_id), JoinResponse)
            await sync(bob)
            await sync(alice)

            sent = await alice.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": "hello bob, secretly"},
                ignore_unverified_devices=True,
            )
            assert isinstance(sent, RoomSendResponse), sent
            bob_sees = texts(await sync(bob), room_id)
            alice_sees = texts(await sync(alice), room_id)

            reply = await bob.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": "hello alice, secretly"},
                ignore_unverified_devices=True,
            )
            assert isinstance(reply, RoomSendResponse), reply
            alice_sees_reply = texts(await sync(alice), room_id)
            return {
                "room_id": room_id,
                "bob_sees": bob_sees,
                "alice_sees": alice_sees,
                "alice_sees_reply": alice_sees_reply,
            }
        finally:
            await alice.close()
            await bob.close()

    seen = await in_asyncio(scenario)

    def decrypted(events: list[Any]) -> list[str]:
        return [event.body for event in events if isinstance(event, RoomMessageText)]

    assert decrypted(seen["bob_sees"]) == ["hello bob, secretly"]
    assert decrypted(seen["alice_sees"]) == ["hello bob, secretly"]
    assert decrypted(seen["alice_sees_reply"]) == ["hello alice, secretly"]
    timeline = open_server.services.rooms.timeline
    stored_types = [
        event["type"]
        for _, event in timeline.events_before(
            seen["room_id"], timeline.last_position(seen["room_id"])
        )
    ]
    assert stored_types.count("m.room.encrypted") == 2
    assert "m.room.message" not in stored_types, "the server only ever saw ciphertext"
