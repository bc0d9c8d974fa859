"""Accounts on either server and their `/sync` streams, for the Synapse interop tests.

Both servers speak the same client-server API, so one `Account` (an access
token and an HTTP client of its server's client API) acts for a user of ours
or of Synapse alike, and a test written once runs in both directions:
`Peers` names the two servers of a test, and `pair(direction)` says which of
them is the room's home and which one the visitor's.

`Sync` is one client's long-poll `/sync` stream: it keeps `since`, and
gathers what each response carried (timeline events per room, invites,
leaves, ephemeral events, presence, to-device, `device_lists.changed`).
`Sync.until(check)` polls until `check(sync)` is truthy, a bounded number of
long polls (each with a bounded `timeout`), and fails with what it saw:
waiting never asserts a duration, and a hang becomes a failure.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.accounts import PASSWORD
from tests.support.federation import FederatingServer, start_federating
from tests.support.matrix import User, new_device, ok, path_part, register
from tests.support.synapse import Synapse, SynapseUser

CLIENT = "/_matrix/client/v3"
SYNC_TIMEOUT_MS = 3000
"""How long one long poll may wait on the server for something new."""
MAX_POLLS = 40
"""Long polls `Sync.until` makes before it gives up (at least one minute of waiting:
Synapse retries a failed transaction after 10–20 s)."""
SYNC_FILTER = json.dumps({"room": {"timeline": {"limit": 100}}})
"""A timeline limit high enough that no incremental sync of these tests is `limited`
(`Sync.once` fails if one is: the stream would have a gap). Synapse gives at most 100
events however high it is."""

_txn_ids = itertools.count(1)


@dataclass
class Account:
    """A user on one of the two servers, talking to its own server's client API."""

    user_id: str
    device_id: str
    access_token: str
    http: httpx.AsyncClient
    server_name: str
    password: str | None = None

    async def request(
        self, method: str, path: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        return await self.http.request(
            method,
            CLIENT + path,
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.access_token}"},
        )

    # ---- rooms

    async def create_room(self, **body: Any) -> str:
        return ok(await self.request("POST", "/createRoom", body))["room_id"]

    async def join(self, room: str, **params: Any) -> httpx.Response:
        """`POST /join/{roomIdOrAlias}` (`server_name`/`via` as query parameters)."""
        return await self.request("POST", f"/join/{path_part(room)}", {}, **params)

    async def room_action(self, room_id: str, action: str, body: Any = None) -> httpx.Response:
        """`POST /rooms/{roomId}/{action}` (join, leave, invite, kick, ban, unban)."""
        return await self.request("POST", f"/rooms/{path_part(room_id)}/{action}", body or {})

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> httpx.Response:
        txn = f"interop{next(_txn_ids)}"
        return await self.request(
            "PUT", f"/rooms/{path_part(room_id)}/send/{path_part(event_type)}/{txn}", content
        )

    async def send(self, room_id: str, text: str) -> str:
        content = {"msgtype": "m.text", "body": text}
        return ok(await self.send_event(room_id, "m.room.message", content))["event_id"]

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> httpx.Response:
        return await self.request(
            "PUT",
            f"/rooms/{path_part(room_id)}/state/{path_part(event_type)}/{path_part(state_key)}",
            content,
        )

    async def state(self, room_id: str, event_type: str, state_key: str = "") -> httpx.Response:
        return await self.request(
            "GET",
            f"/rooms/{path_part(room_id)}/state/{path_part(event_type)}/{path_part(state_key)}",
        )

    async def redact(self, room_id: str, event_id: str, reason: str) -> str:
        txn = f"redact{next(_txn_ids)}"
        answer = await self.request(
            "PUT",
            f"/rooms/{path_part(room_id)}/redact/{path_part(event_id)}/{txn}",
            {"reason": reason},
        )
        return ok(answer)["event_id"]

    async def event(self, room_id: str, event_id: str) -> httpx.Response:
        return await self.request("GET", f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}")

    async def set_alias(self, alias: str, room_id: str) -> None:
        ok(await self.request("PUT", f"/directory/room/{path_part(alias)}", {"room_id": room_id}))

    # ---- ephemeral

    async def typing(self, room_id: str, typing: bool) -> None:
        body: dict[str, Any] = {"typing": typing}
        if typing:
            body["timeout"] = 60000
        path = f"/rooms/{path_part(room_id)}/typing/{path_part(self.user_id)}"
        ok(await self.request("PUT", path, body))

    async def read_receipt(self, room_id: str, event_id: str) -> None:
        path = f"/rooms/{path_part(room_id)}/receipt/m.read/{path_part(event_id)}"
        ok(await self.request("POST", path, {}))

    async def set_presence(self, presence: str, status_msg: str) -> None:
        path = f"/presence/{path_part(self.user_id)}/status"
        ok(await self.request("PUT", path, {"presence": presence, "status_msg": status_msg}))

    async def send_to_device(
        self, event_type: str, user_id: str, device_id: str, content: dict[str, Any]
    ) -> None:
        txn = f"todevice{next(_txn_ids)}"
        body = {"messages": {user_id: {device_id: content}}}
        ok(await self.request("PUT", f"/sendToDevice/{path_part(event_type)}/{txn}", body))

    def sync(self) -> Sync:
        return Sync(self)


@dataclass
class Sync:
    """What one account's `/sync` responses carried so far, in arrival order."""

    account: Account
    since: str | None = None
    polls: int = 0
    timeline: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    state: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    invites: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    left: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """What came in the `leave` section, per room."""
    unread: dict[str, dict[str, int]] = field(default_factory=dict)
    """The latest `unread_notifications` of each room."""
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """State then timeline events of each response, per room: in the room's order."""
    ephemeral: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    presence: list[dict[str, Any]] = field(default_factory=list)
    to_device: list[dict[str, Any]] = field(default_factory=list)
    devices_changed: set[str] = field(default_factory=set)
    last: dict[str, Any] = field(default_factory=dict)

    async def once(self, timeout_ms: int = SYNC_TIMEOUT_MS) -> dict[str, Any]:
        params: dict[str, Any] = {"filter": SYNC_FILTER}
        if self.since is not None:
            params["since"] = self.since
            params["timeout"] = timeout_ms
        body = ok(await self.account.request("GET", "/sync", **params))
        self.polls += 1
        self.since = body["next_batch"]
        self.last = body
        rooms = body.get("rooms", {})
        for section in ("join", "leave"):
            for room_id, room in rooms.get(section, {}).items():
                if self._gap(room_id, section, room):
                    raise AssertionError(
                        f"{self.account.user_id}'s sync has a gap in {room_id}'s timeline "
                        f"({len(room['timeline'].get('events', []))} events, then limited)"
                    )
                state = room.get("state", {}).get("events", [])
                timeline = room.get("timeline", {}).get("events", [])
                self.state.setdefault(room_id, []).extend(state)
                self.timeline.setdefault(room_id, []).extend(timeline)
                self.seen.setdefault(room_id, []).extend(state + timeline)
                if "unread_notifications" in room:
                    self.unread[room_id] = room["unread_notifications"]
                if section == "leave":
                    self.left.setdefault(room_id, []).extend(state + timeline)
                self.ephemeral.setdefault(room_id, []).extend(
                    room.get("ephemeral", {}).get("events", [])
                )
        for room_id, invited in rooms.get("invite", {}).items():
            self.invites[room_id] = invited.get("invite_state", {}).get("events", [])
        self.presence.extend(body.get("presence", {}).get("events", []))
        self.to_device.extend(body.get("to_device", {}).get("events", []))
        self.devices_changed.update(body.get("device_lists", {}).get("changed", []))
        return body

    def _gap(self, room_id: str, section: str, room: dict[str, Any]) -> bool:
        """A limited timeline of a room the user stayed joined to: events the stream missed.

        (A limited timeline that also changes the user's own membership, a
        rejoin, is how servers hide what happened while the user was away.)"""
        if section != "join" or not room.get("timeline", {}).get("limited"):
            return False
        if self.membership(room_id, self.account.user_id) != "join":
            return False
        events = room.get("state", {}).get("events", []) + room["timeline"].get("events", [])
        return not any(
            e["type"] == "m.room.member" and e.get("state_key") == self.account.user_id
            for e in events
        )

    async def until(self, check: Callable[[Sync], Any], polls: int = MAX_POLLS) -> Any:
        """`check(self)`'s first truthy answer, syncing before each ask.

        Gives up after `polls` syncs that brought no room event (a long poll
        that waited in vain, or one woken by something else), or after ten
        times as many syncs in all (a stream busy with what the test waits for
        is progress, not a hang).
        """
        idle = 0
        for _ in range(polls * 10):
            body = await self.once()
            if answer := check(self):
                return answer
            idle += not _room_events(body)
            if idle >= polls:
                break
        raise AssertionError(
            f"{self.account.user_id} never saw it in {self.polls} syncs; the last answered "
            f"{json.dumps(self.last)[:3000]}"
        )

    # ---- what was seen

    def events(self, room_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """Timeline events of the room (joined or left), oldest first."""
        events = self.timeline.get(room_id, [])
        return [e for e in events if event_type is None or e["type"] == event_type]

    def bodies(self, room_id: str) -> list[str]:
        return [
            e["content"]["body"]
            for e in self.events(room_id, "m.room.message")
            if "body" in e.get("content", {})
        ]

    def event(self, room_id: str, event_id: str) -> dict[str, Any] | None:
        return next((e for e in self.events(room_id) if e.get("event_id") == event_id), None)

    def membership(self, room_id: str, user_id: str) -> str | None:
        """The latest membership of `user_id` this stream showed (timeline or state)."""
        found = None
        for event in self.seen.get(room_id, []):
            if event["type"] == "m.room.member" and event.get("state_key") == user_id:
                found = event["content"].get("membership")
        return found

    def member_event(self, room_id: str, user_id: str, membership: str) -> dict[str, Any] | None:
        for event in reversed(self.events(room_id, "m.room.member")):
            if event.get("state_key") == user_id and event["content"]["membership"] == membership:
                return event
        return None

    def ephemeral_of(self, room_id: str, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.ephemeral.get(room_id, []) if e["type"] == event_type]


def _room_events(body: dict[str, Any]) -> int:
    rooms = body.get("rooms", {})
    return sum(
        len(room.get("timeline", {}).get("events", []))
        for section in ("join", "leave")
        for room in rooms.get(section, {}).values()
    )


@dataclass
class Peers:
    """The two servers of a test and a way to get an account on each.

    `ours` is one of our servers (a `FederatingServer`), `synapse` the real Synapse.
    """

    ours: FederatingServer
    synapse: Synapse
    _clients: AsyncExitStack

    async def our_account(self) -> Account:
        user = await register(self.ours.server)
        return Account(user.user_id, user.device_id, user.access_token, user.http, self.ours.name)

    async def synapse_account(self) -> Account:
        user = await self.synapse.register_async()
        return self._synapse(user)

    def _synapse(self, user: SynapseUser) -> Account:
        return Account(
            user.user_id,
            user.device_id,
            user.access_token,
            self._synapse_client(),
            self.synapse.server_name,
            PASSWORD,
        )

    def _synapse_client(self) -> httpx.AsyncClient:
        client = self.synapse.client()
        self._clients.push_async_callback(client.aclose)
        return client

    def reconnected(self, account: Account) -> Account:
        """`account` with a new HTTP client: for a Synapse account after Synapse restarted
        (the old client's kept-alive connections went with the old process)."""
        return dataclasses.replace(account, http=self._synapse_client())

    async def account_on(self, side: str) -> Account:
        """A new account on `side`: "ours" or "synapse"."""
        return await (self.our_account() if side == "ours" else self.synapse_account())

    async def new_device(self, account: Account) -> Account:
        """The same user logged in on another device (a device list update for its peers)."""
        if account.server_name == self.ours.name:
            user = User(
                account.user_id,
                account.device_id,
                account.access_token,
                account.http,
                account.server_name,
            )
            other = await new_device(self.ours.server, user)
            return Account(
                other.user_id,
                other.device_id,
                other.access_token,
                account.http,
                account.server_name,
            )
        login = await account.http.post(
            CLIENT + "/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": account.user_id},
                "password": account.password,
                "initial_device_display_name": "second",
            },
        )
        answer = ok(login)
        return Account(
            answer["user_id"],
            answer["device_id"],
            answer["access_token"],
            account.http,
            account.server_name,
            account.password,
        )


@asynccontextmanager
async def peers(ours: FederatingServer, synapse: Synapse) -> AsyncIterator[Peers]:
    async with AsyncExitStack() as clients:
        yield Peers(ours, synapse, clients)


DIRECTIONS = ["synapse_room_our_visitor", "our_room_synapse_visitor"]
"""The two directions of a test about a room: whose server holds it, whose user visits."""


def sides(direction: str) -> tuple[str, str]:
    """(home side, visiting side) of a direction of `DIRECTIONS`."""
    return ("synapse", "ours") if direction == DIRECTIONS[0] else ("ours", "synapse")


async def start_ours(nursery: Any, synapse: Synapse, directory: Any) -> FederatingServer:
    """One of our servers at 127.0.0.2 trusting (and trusted by) Synapse's CA."""
    return await start_federating(nursery, synapse.ca, directory, "127.0.0.2")


def joined(user_id: str, room_id: str) -> Callable[[Sync], bool]:
    """A check for `Sync.until`: `user_id` is joined in `room_id` as this stream shows it."""
    return lambda sync: sync.membership(room_id, user_id) == "join"


def has_membership(user_id: str, room_id: str, membership: str) -> Callable[[Sync], bool]:
    return lambda sync: sync.membership(room_id, user_id) == membership


def has_bodies(room_id: str, *texts: str) -> Callable[[Sync], bool]:
    """A check: every one of `texts` arrived as a message in the room."""
    return lambda sync: set(texts) <= set(sync.bodies(room_id))


async def shared_room(home: Account, visitor: Account, **create: Any) -> tuple[str, Sync, Sync]:
    """A public room of `home` that `visitor` joined by id (with `server_name`).

    Returns the room id and both accounts' syncs, started before the join and
    advanced until each side sees the visitor joined.
    """
    create.setdefault("preset", "public_chat")
    room_id = await home.create_room(**create)
    home_sync, visitor_sync = home.sync(), visitor.sync()
    await home_sync.once()
    await visitor_sync.once()
    ok(await visitor.join(room_id, server_name=home.server_name))
    await home_sync.until(joined(visitor.user_id, room_id))
    await visitor_sync.until(joined(visitor.user_id, room_id))
    return room_id, home_sync, visitor_sync


SYNAPSE_COMPLAINTS = re.compile(
    r"Rejecting |failed sanity check|failed history check|InvalidEventSignature"
    r"|(?i:(invalid|bad|failed to verify|unable to verify|no) [\w ]{0,20}signature)"
    r"|(?i:content hash)|Failed to get prev_events|Failed to get auth chain|Ignoring PDU"
    r"|(?i:soft.fail)|Traceback| - ERROR - | - CRITICAL - "
)
"""What in Synapse's log would mean it found fault with our events or requests."""


def synapse_complaints(synapse: Synapse, since: int) -> list[str]:
    """The lines of Synapse's log from byte `since` on that match `SYNAPSE_COMPLAINTS`."""
    with synapse.log_path.open("rb") as log:
        log.seek(since)
        lines = log.read().decode("utf-8", "replace").splitlines()
    return [line for line in lines if SYNAPSE_COMPLAINTS.search(line)]


def our_errors(records: list[logging.LogRecord]) -> list[str]:
    """Errors our server logged (a test's `caplog.records`)."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.levelno >= logging.ERROR and r.name.startswith("matrix_conduit")
    ]


@asynccontextmanager
async def interop(
    nursery: Any, synapse: Synapse, directory: Any, caplog: Any
) -> AsyncIterator[Peers]:
    """`Peers` of a new server of ours and `synapse`; afterwards, neither side complained:
    no error in our log, nothing in Synapse's that says it found fault with us."""
    since = synapse.log_size()
    ours = await start_ours(nursery, synapse, directory)
    async with peers(ours, synapse) as pair:
        yield pair
    assert not our_errors(caplog.records), our_errors(caplog.records)
    assert not synapse_complaints(synapse, since), "\n".join(synapse_complaints(synapse, since))


async def visited_room(both: Peers, direction: str) -> tuple[str, Account, Account, Sync, Sync]:
    """(room, home, visitor, home's sync, visitor's sync): the visitor joins home's room.

    `direction` says which server is home (`sides`).
    """
    home_side, visitor_side = sides(direction)
    home, visitor = await both.account_on(home_side), await both.account_on(visitor_side)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)
    return room_id, home, visitor, home_sync, visitor_sync
