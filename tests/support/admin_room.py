"""Talking to the admin room `#admins` with matrix-nio, as an admin's client does.

Each helper runs on asyncio (inside `tests.support.nio.in_asyncio`): log in,
join the admin room once the server has invited the account, send a command
line (and a code block) and wait, through `/sync`, for `@conduit`'s answer
to it (an `m.notice` replying to the command's event).
"""

from __future__ import annotations

import asyncio
from typing import Any

import nio

ADMIN_ALIAS = "#admins:localhost"
SERVER_USER = "@conduit:localhost"
PASSWORD = "correct horse battery staple"
WAIT_ATTEMPTS = 600
"""Join (or alias) attempts, 50 ms apart, before a helper gives up: a bound, not a timing
claim."""
ANSWER_SYNCS = 60
"""Long-polling syncs (2 s each at most) `answer_to` makes before it gives up."""


def nio_client(base_url: str, store: str, user: str = "") -> nio.AsyncClient:
    config = nio.AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False)
    return nio.AsyncClient(base_url, user, store_path=store, config=config)


def expect(response: object, kind: type) -> Any:
    assert isinstance(response, kind), response
    return response


async def register(base_url: str, store: str, username: str) -> nio.AsyncClient:
    client = nio_client(base_url, store)
    expect(await client.register(username, PASSWORD, "admin laptop"), nio.RegisterResponse)
    return client


async def log_in(base_url: str, store: str, user_id: str, password: str) -> nio.AsyncClient:
    client = nio_client(base_url, store, user_id)
    expect(await client.login(password, "recovery"), nio.LoginResponse)
    return client


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
