"""Two matrix-nio clients chat in a room: what a real client library sees.

Spec: `content/client-server-api/_index.md` ("Account registration",
"Login", "Room creation", "Room membership", "Sending events to a room",
"Getting events for a room") as matrix-nio's `AsyncClient` calls it:
`register`, `login`, `room_create`, `room_invite`, `join`, `room_send`,
`room_messages`, `joined_members`, `room_get_state_event`, `room_leave`.

nio runs on asyncio, so each scenario runs under `asyncio.run` in a worker
thread while the server (on its own trio loop) answers. The clients are
built without end-to-end encryption: with it, nio insists on knowing the
room from `/sync` before `room_send`, and these tests are about the room
endpoints.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable

import nio
import trio

from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures(allow_registration=True)

PASSWORD = "correct horse battery staple"


def client(base_url: str, store: str, user: str = "") -> nio.AsyncClient:
    config = nio.AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False)
    return nio.AsyncClient(base_url, user, store_path=store, config=config)


async def in_asyncio(scenario: Callable[[str, str], Awaitable[None]], server: SharedServer):
    """Run `scenario(base_url, store_dir)` under asyncio in a worker thread."""
    with tempfile.TemporaryDirectory() as store:
        await trio.to_thread.run_sync(asyncio.run, scenario(server.base_url, store))


def expect(response: object, kind: type) -> object:
    assert isinstance(response, kind), response
    return response


async def test_two_nio_clients_create_invite_join_and_chat(server: SharedServer):
    async def scenario(base_url: str, store: str) -> None:
        alice = client(base_url, store)
        bob = client(base_url, store)
        try:
            expect(await alice.register("nioalice", PASSWORD, "alice laptop"), nio.RegisterResponse)
            expect(await bob.register("niobob", PASSWORD, "bob phone"), nio.RegisterResponse)
            assert alice.user_id == "@nioalice:localhost"

            created = expect(
                await alice.room_create(name="nio room", topic="testing"),
                nio.RoomCreateResponse,
            )
            room_id = created.room_id
            expect(await alice.room_invite(room_id, bob.user_id), nio.RoomInviteResponse)
            joined = expect(await bob.join(room_id), nio.JoinResponse)
            assert joined.room_id == room_id

            members = expect(await alice.joined_members(room_id), nio.JoinedMembersResponse)
            assert {member.user_id for member in members.members} == {
                alice.user_id,
                bob.user_id,
            }
            name = expect(
                await bob.room_get_state_event(room_id, "m.room.name"),
                nio.RoomGetStateEventResponse,
            )
            assert name.content == {"name": "nio room"}

            hello = expect(
                await alice.room_send(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": "hello bob"}
                ),
                nio.RoomSendResponse,
            )
            reply = expect(
                await bob.room_send(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": "hi alice"}
                ),
                nio.RoomSendResponse,
            )

            for reader in (alice, bob):
                page = expect(
                    await reader.room_messages(room_id, limit=20), nio.RoomMessagesResponse
                )
                texts = [e for e in page.chunk if isinstance(e, nio.RoomMessageText)]
                assert [(e.sender, e.body, e.event_id) for e in reversed(texts)] == [
                    (alice.user_id, "hello bob", hello.event_id),
                    (bob.user_id, "hi alice", reply.event_id),
                ]

            expect(await bob.room_leave(room_id), nio.RoomLeaveResponse)
            after = expect(await alice.joined_members(room_id), nio.JoinedMembersResponse)
            assert [member.user_id for member in after.members] == [alice.user_id]
        finally:
            await alice.close()
            await bob.close()

    await in_asyncio(scenario, server)


async def test_nio_login_and_resend_with_the_same_transaction_id(server: SharedServer):
    async def scenario(base_url: str, store: str) -> None:
        registering = client(base_url, store)
        carol = client(base_url, store, "@niocarol:localhost")
        try:
            expect(await registering.register("niocarol", PASSWORD), nio.RegisterResponse)
            logged_in = expect(await carol.login(PASSWORD, "second device"), nio.LoginResponse)
            assert logged_in.user_id == "@niocarol:localhost"
            assert logged_in.device_id != registering.device_id

            room_id = expect(await carol.room_create(), nio.RoomCreateResponse).room_id
            content = {"msgtype": "m.text", "body": "only once"}
            first = expect(
                await carol.room_send(room_id, "m.room.message", content, tx_id="retry-1"),
                nio.RoomSendResponse,
            )
            retried = expect(
                await carol.room_send(room_id, "m.room.message", content, tx_id="retry-1"),
                nio.RoomSendResponse,
            )
            assert retried.event_id == first.event_id
            page = expect(await carol.room_messages(room_id, limit=50), nio.RoomMessagesResponse)
            texts = [e.body for e in page.chunk if isinstance(e, nio.RoomMessageText)]
            assert texts == ["only once"]
        finally:
            await registering.close()
            await carol.close()

    await in_asyncio(scenario, server)
