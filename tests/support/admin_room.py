"""Talking to the admin room `#admins` with matrix-nio, as an admin's client does.

Each helper runs on asyncio (inside `tests.support.nio.in_asyncio`): log in,
join the admin room once the server has invited the account, send a command
line (and a code block) and wait, through `/sync`, for `@conduit`'s answer
to it (an `m.notice` replying to the command's event). `nio_clients` keeps a
test's clients in one temporary store and closes them all, even when an
assertion fails; `in_admin_room` is the usual scenario around it: the first
account (the admin) and some others registered, the admin in `#admins`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import nio

from tests.support.nio import in_asyncio

T = TypeVar("T")

ADMIN_ALIAS = "#admins:localhost"
SERVER_USER = "@conduit:localhost"
PASSWORD = "correct horse battery staple"
WAIT_ATTEMPTS = 600
"""Join (or alias) attempts, 50 ms apart, before a helper gives up: a bound, not a timing
claim."""
ANSWER_SYNCS = 60
"""Long-polling syncs (2 s each at most) `answer_to` makes before it gives up."""
FIRST_ACCOUNT = "alice"
"""The account `in_admin_room` registers first: the server makes it the admin."""


def nio_client(base_url: str, store: str, user: str = "") -> nio.AsyncClient:
    config = nio.AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False)
    return nio.AsyncClient(base_url, user, store_path=store, config=config)


def expect(response: object, kind: type) -> Any:
    assert isinstance(response, kind), response
    return response


async def admin_room_id(client: nio.AsyncClient) -> str:
    """The admin room's id, once the server has created it (resolving its alias)."""
    for _ in range(WAIT_ATTEMPTS):
        resolved = await client.room_resolve_alias(ADMIN_ALIAS)
        if isinstance(resolved, nio.RoomResolveAliasResponse):
            return resolved.room_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"{ADMIN_ALIAS} never appeared")


async def join_admin_room(client: nio.AsyncClient) -> str:
    """Join `#admins` once invited (the server invites admins in the background)."""
    room_id = await admin_room_id(client)
    for _ in range(WAIT_ATTEMPTS):
        if isinstance(await client.join(room_id), nio.JoinResponse):
            expect(await client.sync(timeout=0), nio.SyncResponse)
            return room_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"{client.user_id} was never invited to {ADMIN_ALIAS}")


async def send_text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    sent = expect(
        await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body}),
        nio.RoomSendResponse,
    )
    return sent.event_id


async def answer_to(client: nio.AsyncClient, room_id: str, event_id: str) -> dict[str, Any]:
    """The content of `@conduit`'s reply to `event_id`, read from `/sync`."""
    for _ in range(ANSWER_SYNCS):
        synced = expect(await client.sync(timeout=2000), nio.SyncResponse)
        room = synced.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            source = event.source
            content = source.get("content") or {}
            in_reply_to = (content.get("m.relates_to") or {}).get("m.in_reply_to") or {}
            if source.get("sender") == SERVER_USER and in_reply_to.get("event_id") == event_id:
                return content
    raise AssertionError(f"no answer to {event_id}")


async def command(
    client: nio.AsyncClient, room_id: str, line: str, code_block: str | None = None
) -> str:
    """Send `!admin LINE` (with a code block below it) and return the answer's body.

    Every answer must be a formatted notice: plain `body` and HTML `formatted_body`.
    """
    body = line if code_block is None else f"{line}\n```\n{code_block}\n```"
    event_id = await send_text(client, room_id, body)
    content = await answer_to(client, room_id, event_id)
    assert content["msgtype"] == "m.notice"
    assert content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"].startswith("<p>")
    return content["body"]


class NioClients:
    """nio clients of one test sharing a temporary store; `nio_clients` closes them all."""

    def __init__(self, base_url: str, store: str, stack: AsyncExitStack) -> None:
        self.base_url = base_url
        self.store = store
        self._stack = stack

    def new(self, user: str = "") -> nio.AsyncClient:
        """A client not logged in yet (closed at the end like the others)."""
        client = nio_client(self.base_url, self.store, user)
        self._stack.push_async_callback(client.close)
        return client

    async def register(self, username: str) -> nio.AsyncClient:
        client = self.new()
        expect(await client.register(username, PASSWORD, "admin laptop"), nio.RegisterResponse)
        return client

    async def log_in(self, user_id: str, password: str) -> nio.AsyncClient:
        client = self.new(user_id)
        expect(await client.login(password, "recovery"), nio.LoginResponse)
        return client


@asynccontextmanager
async def nio_clients(base_url: str) -> AsyncIterator[NioClients]:
    """Clients in a temporary store removed afterwards, every one closed on the way out."""
    with tempfile.TemporaryDirectory() as store:
        async with AsyncExitStack() as stack:
            yield NioClients(base_url, store, stack)


@dataclass(frozen=True)
class AdminRoom:
    """What an `in_admin_room` scenario gets: the admin in `#admins`, and the other accounts."""

    clients: NioClients
    admin: nio.AsyncClient
    room_id: str
    others: dict[str, nio.AsyncClient]


async def in_admin_room(
    base_url: str,
    scenario: Callable[[AdminRoom], Awaitable[T]],
    others: tuple[str, ...] = (),
) -> T:
    """Run `scenario` on asyncio with `alice` (the first account, so the admin) registered,
    then `others`, and `alice` joined to the admin room; every client is closed afterwards."""

    async def run() -> T:
        async with nio_clients(base_url) as clients:
            admin = await clients.register(FIRST_ACCOUNT)
            registered = {name: await clients.register(name) for name in others}
            room_id = await join_admin_room(admin)
            return await scenario(AdminRoom(clients, admin, room_id, registered))

    return await in_asyncio(run)


async def _room_id(room: AdminRoom) -> str:
    return room.room_id


async def first_admin_joins(base_url: str) -> str:
    """Register the first account on a fresh server and join `#admins`; returns its id."""
    return await in_admin_room(base_url, _room_id)
