"""A bridge of the test's own, written with mautrix (PyPI), for the appservice tests.

mautrix runs on asyncio and the server on the test's trio loop, so the
bridge gets an asyncio loop in a thread of its own: `call` runs one of its
coroutines there and waits for it from trio. It writes its registration YAML
(what `app_service_config_files` names), serves the application-service API
on 127.0.0.1 with mautrix's own HTTP handler (hs_token checked, transactions
deduplicated by txnId), records every event and ephemeral event it is
pushed (to-device messages and device list changes too: its registration
asks for them with `org.matrix.msc3202`), and, like a real bridge, answers
messages in its rooms through the ghost they mention ("!echo" → a reply
from that ghost).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from aiohttp import web
from mautrix.appservice import AppService
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import Event, EventType, MessageType, RoomCreatePreset, TextMessageEventContent

from tests.support.server import free_port

AS_ID = "testbridge"
AS_TOKEN = "as-token-of-the-test-bridge"
HS_TOKEN = "hs-token-of-the-test-bridge"
BOT = "testbridgebot"
GHOST_PREFIX = "_bridge_"
WAIT_SECONDS = 30
PROTOCOL = "testnet"
"""The third-party protocol it bridges: `/thirdparty/protocol` and `/location` lookups."""


class _StateStore(MemoryStateStore, ASStateStore):
    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


def registration_yaml(port: int, server_name: str = "localhost") -> str:
    escaped = server_name.replace(".", "\\\\.")
    return f"""\
id: {AS_ID}
url: http://127.0.0.1:{port}
as_token: {AS_TOKEN}
hs_token: {HS_TOKEN}
sender_localpart: {BOT}
rate_limited: false
protocols: [{PROTOCOL}]
receive_ephemeral: true
de.sorunome.msc2409.push_ephemeral: true
org.matrix.msc3202: true
namespaces:
  users:
    - exclusive: true
      regex: "@{GHOST_PREFIX}.*:{escaped}"
  aliases:
    - exclusive: true
      regex: "#{GHOST_PREFIX}.*:{escaped}"
  rooms: []
"""


class Bridge:
    """The mautrix appservice; `events` and `ephemeral` are what it was pushed, in order."""

    def __init__(self, directory: Path, server_name: str = "localhost") -> None:
        self.port = free_port()
        self.server_name = server_name
        self.registration_path = directory / "bridge-registration.yaml"
        self.registration_path.write_text(registration_yaml(self.port, server_name))
        self.events: list[Event] = []
        self.ephemeral: list[Event] = []
        self._lock = threading.RLock()  # `wait_for` predicates call `event_ids`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.appservice: AppService | None = None
        self.transactions: list[tuple[str, bytes]] = []
        """Every `PUT /transactions/{txnId}` as it came over HTTP: (txnId, body)."""
        self.fail_transactions = 0
        """Answer this many transactions 500 after handling them (an answer lost)."""
        self.to_device: list[Any] = []
        """To-device messages for its users (MSC4203), as mautrix parsed them."""
        self.device_list_changes: list[str] = []
        """Users whose device lists changed (MSC3202 `device_lists.changed`)."""
        self.queried: list[str] = []
        """User ids and aliases the server asked about (`GET /users`, `/rooms`)."""
        self.echo = True
        """Answer `!echo ...` messages from the ghost of the room (as a reply)."""

    def ghost(self, name: str) -> str:
        return f"@{GHOST_PREFIX}{name}:{self.server_name}"

    # ---- running

    async def start(self, homeserver_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        await self.call(self._start, homeserver_url)

    async def stop(self) -> None:
        if self._loop is None:
            return
        await self.call(self._stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        await trio.to_thread.run_sync(self._thread.join)
        self._loop.close()
        self._loop = None

    async def call(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run `function(*args)` on the bridge's asyncio loop; its result, from trio."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(function(*args), self._loop)
        return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)

    async def _start(self, homeserver_url: str) -> None:
        appservice = AppService(
            server=homeserver_url,
            domain=self.server_name,
            as_token=AS_TOKEN,
            hs_token=HS_TOKEN,
            bot_localpart=BOT,
            id=AS_ID,
            state_store=_StateStore(),
            ephemeral_events=True,
            encryption_events=True,
            query_user=self._query_user,
            query_alias=self._query_alias,
        )
        appservice.synchronous_handlers = True  # recorded before the transaction's 200
        appservice.matrix_event_handler(self._on_event)
        appservice.to_device_handler = self._on_to_device
        appservice.device_list_handler = self._on_device_lists
        appservice.app.middlewares.append(self._watch_transactions)
        thirdparty = "/_matrix/app/v1/thirdparty"
        appservice.app.router.add_get(f"{thirdparty}/protocol/{{protocol}}", self._protocol)
        appservice.app.router.add_get(f"{thirdparty}/location/{{protocol}}", self._locations)
        await appservice.start(host="127.0.0.1", port=self.port)
        self.appservice = appservice

    async def _stop(self) -> None:
        if self.appservice is not None:
            await self.appservice.stop()
            self.appservice = None

    @web.middleware
    async def _watch_transactions(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if "/transactions/" not in request.path:
            return await handler(request)
        body = await request.read()  # aiohttp keeps it for mautrix's handler
        txn_id = request.path.rsplit("/", 1)[1]
        try:
            response = await handler(request)
        except web.HTTPException:  # mautrix answers a repeated txnId with a raised 200
            with self._lock:
                self.transactions.append((txn_id, body))
            raise
        with self._lock:
            self.transactions.append((txn_id, body))
            lost = self.fail_transactions > 0 and response.status == 200
            if lost:
                self.fail_transactions -= 1
        if lost:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "answer lost"}, status=500)
        return response

    # ---- queries: the bridge makes ghosts and portal rooms when the server asks

    async def _query_user(self, user_id: str) -> dict[str, Any] | None:
        self.queried.append(user_id)
        await self.appservice.intent.user(user_id).ensure_registered()
        return {"created": user_id}  # mautrix answers 404 for an empty object

    async def _query_alias(self, alias: str) -> dict[str, Any] | None:
        self.queried.append(alias)
        localpart = alias[1:].split(":", 1)[0]
        await self.appservice.intent.create_room(
            alias_localpart=localpart, preset=RoomCreatePreset.PUBLIC, name=f"portal {localpart}"
        )
        return {"created": alias}

    # ---- third-party lookups (mautrix leaves them to the bridge)

    async def _protocol(self, request: web.Request) -> web.Response:
        if request.match_info["protocol"] != PROTOCOL:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        return web.json_response(
            {
                "user_fields": ["nick"],
                "location_fields": ["channel"],
                "icon": "mxc://localhost/icon",
                "field_types": {
                    "nick": {"regexp": ".*", "placeholder": "nick"},
                    "channel": {"regexp": "#.*", "placeholder": "#channel"},
                },
                "instances": [
                    {"network_id": "net1", "desc": "Test network", "fields": {}},
                ],
            }
        )

    async def _locations(self, request: web.Request) -> web.Response:
        channel = request.query.get("channel", "")
        alias = f"#{GHOST_PREFIX}{channel.lstrip('#')}:{self.server_name}"
        return web.json_response(
            [{"alias": alias, "protocol": PROTOCOL, "fields": {"channel": channel}}]
        )

    # ---- what it is pushed

    async def _on_event(self, event: Event) -> None:
        with self._lock:
            if event.type.is_ephemeral:
                self.ephemeral.append(event)
            else:
                self.events.append(event)
        if self.echo and event.type == EventType.ROOM_MESSAGE:
            body = getattr(event.content, "body", "") or ""
            if body.startswith("!echo ") and not str(event.sender).startswith(f"@{GHOST_PREFIX}"):
                ghost = self.appservice.intent.user(self.ghost(body.split()[1]))
                content = TextMessageEventContent(msgtype=MessageType.TEXT, body=f"echo: {body}")
                content.set_reply(event.event_id)
                await ghost.send_message(event.room_id, content)

    async def _on_to_device(self, event: Any) -> None:
        with self._lock:
            self.to_device.append(event)

    async def _on_device_lists(self, device_lists: Any) -> None:
        with self._lock:
            self.device_list_changes.extend(str(user_id) for user_id in device_lists.changed)

    async def wait_for(self, predicate: Callable[[Bridge], bool]) -> None:
        """Until `predicate(self)` holds (pushed data arrives in the bridge's thread)."""
        with trio.fail_after(WAIT_SECONDS):
            while True:
                with self._lock:
                    if predicate(self):
                        return
                await trio.sleep(0.05)

    def event_ids(self) -> list[str]:
        with self._lock:
            return [str(event.event_id) for event in self.events]
