"""Client-side helpers for tests that use rooms: users, rooms, messages, errors.

Accounts are created through the registration service (the same code path
as `POST /register`, without its policy and user-interactive auth): the rooms
tests run on the default test server, where open registration is off, and
account creation is not what they are about. Everything else goes over real
HTTP with the user's access token, so a test reads like the client's
requests: `await alice.send(room_id, "hello")`. Works with the per-test
`server` fixture and with a module's shared server (`support/shared_server.py`).
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from matrix_conduit.service.devices import DeviceLogin
from tests.support.server import TestServer
from tests.support.shared_server import SharedServer

AnyServer = TestServer | SharedServer

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"

_names = itertools.count(1)
_txn_ids = itertools.count(1)


def path_part(value: str) -> str:
    """A room id, alias, event id or state key as one URL path segment."""
    return quote(value, safe="")


def assert_error(response: httpx.Response, status: int, errcode: str) -> dict[str, Any]:
    """The response is the spec's error body with this status and errcode; returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["errcode"] == errcode, body
    assert isinstance(body.get("error"), str) and body["error"], body
    return body


def ok(response: httpx.Response) -> Any:
    """The JSON body of a 200 response (fails the test with the body otherwise)."""
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


@dataclass
class User:
    """A logged-in local user and their device, talking to the server over HTTP."""

    user_id: str
    device_id: str
    access_token: str
    http: httpx.AsyncClient
    server_name: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]

    # ---- raw requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        prefix: str = CLIENT_V3,
    ) -> httpx.Response:
        """`method prefix+path` with this user's access token."""
        return await self.http.request(
            method,
            prefix + path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.access_token}"},
        )

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("GET", path, params=params or None)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PUT", path, body=body)

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.request("POST", path, body={} if body is None else body)

    # ---- rooms

    async def create_room(self, **body: Any) -> str:
        """`POST /createRoom` with `body`; returns the room id."""
        return ok(await self.post("/createRoom", body))["room_id"]

    async def join(self, room_id_or_alias: str) -> str:
        """`POST /join/{roomIdOrAlias}`; returns the room id."""
        return ok(await self.post(f"/join/{path_part(room_id_or_alias)}"))["room_id"]

    async def leave(self, room_id: str) -> None:
        ok(await self.post(f"/rooms/{path_part(room_id)}/leave"))

    async def invite(self, room_id: str, user: User | str) -> None:
        user_id = user if isinstance(user, str) else user.user_id
        ok(await self.post(f"/rooms/{path_part(room_id)}/invite", {"user_id": user_id}))

    async def membership_action(
        self, room_id: str, action: str, target: User | str, **extra: Any
    ) -> httpx.Response:
        """`POST /rooms/{roomId}/{kick,ban,unban,invite}` about `target` (response unchecked)."""
        user_id = target if isinstance(target, str) else target.user_id
        return await self.post(
            f"/rooms/{path_part(room_id)}/{action}", {"user_id": user_id, **extra}
        )

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any], txn_id: str | None = None
    ) -> httpx.Response:
        """`PUT /rooms/{roomId}/send/{type}/{txnId}` (a fresh txnId unless given)."""
        txn_id = txn_id or f"txn{next(_txn_ids)}"
        return await self.put(
            f"/rooms/{path_part(room_id)}/send/{path_part(event_type)}/{path_part(txn_id)}",
            content,
        )

    async def send(self, room_id: str, text: str = "hello", **extra: Any) -> str:
        """Send an `m.text` message; returns its event id."""
        content = {"msgtype": "m.text", "body": text, **extra}
        return ok(await self.send_event(room_id, "m.room.message", content))["event_id"]

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> httpx.Response:
        """`PUT /rooms/{roomId}/state/{type}/{stateKey}` (response unchecked)."""
        return await self.put(
            f"/rooms/{path_part(room_id)}/state/{path_part(event_type)}/{path_part(state_key)}",
            content,
        )

    async def set_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        """Set a state event; returns its event id."""
        return ok(await self.put_state(room_id, event_type, content, state_key))["event_id"]

    async def get_state(self, room_id: str, event_type: str, state_key: str = "") -> httpx.Response:
        return await self.get(
            f"/rooms/{path_part(room_id)}/state/{path_part(event_type)}/{path_part(state_key)}"
        )

    async def messages(self, room_id: str, **params: Any) -> httpx.Response:
        """`GET /rooms/{roomId}/messages`; a dict `filter` is sent as JSON."""
        if isinstance(params.get("filter"), dict):
            params["filter"] = json.dumps(params["filter"])
        params.setdefault("dir", "b")
        return await self.get(f"/rooms/{path_part(room_id)}/messages", **params)

    async def timeline(self, room_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The room's newest events as this user sees them, oldest first."""
        chunk = ok(await self.messages(room_id, limit=limit))["chunk"]
        return list(reversed(chunk))

    async def joined_rooms(self) -> list[str]:
        return ok(await self.get("/joined_rooms"))["joined_rooms"]


async def register(
    server: AnyServer,
    localpart: str | None = None,
    *,
    password: str | None = None,
    admin: bool = False,
) -> User:
    """A new local account, logged in on one device (a unique name unless given)."""
    name = localpart or f"user{next(_names)}"
    register_account = functools.partial(
        server.services.registration.register,
        username=name,
        password=password,
        login=DeviceLogin(),
        admin=admin,
    )
    if isinstance(server, SharedServer):
        registered = await server.call(register_account)
    else:
        registered = await register_account()
    tokens = registered.tokens
    assert tokens is not None
    return User(
        tokens.user_id,
        tokens.device_id,
        tokens.access_token,
        server.client,
        server.config.server_name,
    )


async def new_device(server: AnyServer, user: User) -> User:
    """The same account logged in on another device (its own access token)."""

    async def log_in() -> object:
        return server.services.devices.log_in(user.user_id, DeviceLogin())

    tokens = await server.call(log_in) if isinstance(server, SharedServer) else await log_in()
    return User(user.user_id, tokens.device_id, tokens.access_token, user.http, user.server_name)


async def register_many(server: AnyServer, count: int) -> list[User]:
    return [await register(server) for _ in range(count)]


async def room_with_members(
    server: AnyServer, member_count: int, **create_body: Any
) -> tuple[str, list[User]]:
    """A room created by the first of `member_count` new users, with all of them joined.

    Default: a public room (`preset: public_chat`), so joining needs no invite.
    """
    users = await register_many(server, member_count)
    create_body.setdefault("preset", "public_chat")
    room_id = await users[0].create_room(**create_body)
    for user in users[1:]:
        if create_body["preset"] != "public_chat":
            await users[0].invite(room_id, user)
        await user.join(room_id)
    return room_id, users


def state_of(events: list[dict[str, Any]], event_type: str, state_key: str = "") -> dict | None:
    """The event of that type and state key in a list of state events, if any."""
    for event in events:
        if event["type"] == event_type and event.get("state_key") == state_key:
            return event
    return None


def bodies(events: list[dict[str, Any]]) -> list[str]:
    """The `body` of each message among `events`, in order."""
    return [
        event["content"]["body"]
        for event in events
        if event["type"] == "m.room.message" and "body" in event.get("content", {})
    ]
