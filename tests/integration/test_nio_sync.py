"""matrix-nio's sync loop against the real server: messages, typing and receipts arrive.

Spec: `content/client-server-api/_index.md` ("Syncing") and the typing and
receipts modules. Bob runs nio's own `sync()` in a loop while Alice sends a
message, starts typing and marks the message read; Bob's callbacks must see
all three.
"""

from __future__ import annotations

import asyncio

from nio import AsyncClient, ReceiptEvent, RoomMessageText, TypingNoticeEvent

from tests.support.matrix import register
from tests.support.nio import in_asyncio
from tests.support.server import TestServer

PASSWORD = "correct horse battery staple"


async def test_nio_sync_loop_receives_messages_typing_and_receipts(server: TestServer):
    alice = await register(server, password=PASSWORD)
    bob = await register(server, password=PASSWORD)

    async def scenario() -> dict:
        alice_client = AsyncClient(server.base_url, alice.user_id)
        bob_client = AsyncClient(server.base_url, bob.user_id)
        seen: dict = {"messages": [], "typing": [], "receipts": []}
        try:
            await alice_client.login(PASSWORD)
            await bob_client.login(PASSWORD)
            room_id = (await alice_client.room_create(invite=[bob.user_id])).room_id
            await bob_client.sync(timeout=0)
            await bob_client.join(room_id)
            await bob_client.sync(timeout=0)

            bob_client.add_event_callback(
                lambda room, event: seen["messages"].append(event.body), RoomMessageText
            )
            bob_client.add_ephemeral_callback(
                lambda room, event: seen["typing"].append(list(event.users)), TypingNoticeEvent
            )
            bob_client.add_ephemeral_callback(
                lambda room, event: seen["receipts"].extend(event.receipts), ReceiptEvent
            )

            async def alice_acts() -> None:
                sent = await alice_client.room_send(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": "hello bob"}
                )
                await alice_client.room_typing(room_id, True, timeout=30000)
                await alice_client.room_read_markers(room_id, sent.event_id, sent.event_id)

            def complete() -> bool:
                return (
                    "hello bob" in seen["messages"]
                    and [alice.user_id] in seen["typing"]
                    and any(r.user_id == alice.user_id for r in seen["receipts"])
                )

            async def bob_listens() -> None:
                while not complete():
                    await bob_client.sync(timeout=5000)

            await asyncio.wait_for(asyncio.gather(bob_listens(), alice_acts()), 60)
        finally:
            await alice_client.close()
            await bob_client.close()
        return seen

    seen = await in_asyncio(scenario)
    assert "hello bob" in seen["messages"]
    assert [alice.user_id] in seen["typing"]
    assert any(receipt.user_id == alice.user_id for receipt in seen["receipts"])
