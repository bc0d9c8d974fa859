"""Hostile input from another server: two of our servers federating, and signed raw requests.

For `tests/federation/test_hostile_federation_*.py` (issue 13, the server-server
half). The target (server A) and the peer (server B) run over real TLS on
127.0.0.x (`tests/support/federation.py`), both in one thread with its own
trio loop for a whole module (`Peering`), as `tests/support/shared_server.py`
does for one server: pytest-trio and hypothesis give every test and example
a loop of its own, and a federating pair costs seconds to start.

The setup (`_build_world`): alice on A creates a v10 public room; bob on B
joins it by a join event B signs and pushes to A's `/send`, and B stores its
copy of the room from A's `/state` at that join (what a join's `send_join`
answer goes through); alice gives bob power level 100, so that what bob's
server sends reaches every check up to the room's current state, and sends
a message. A second room of alice's has nobody of B in it.

`signed_request` sends any bytes as a body, signed as B with B's real key
(`core.signing.sign_request`), so that the X-Matrix gate passes and a hostile
body reaches the handler: the signature covers the body as the gate parses
it, and a body the gate cannot parse is refused before any signature is read.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import queue
import secrets
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import trio

from matrix_conduit.api.request import parse_json
from matrix_conduit.core.events import compute_event_id, sign_event_with_id
from matrix_conduit.core.room_versions import RoomVersion, get_room_version
from matrix_conduit.core.signing import sign_request
from matrix_conduit.errors import MatrixError
from matrix_conduit.service import Services
from matrix_conduit.service.rooms.event_context import EventStatus
from tests.support.federation import FederatingServer, start_federating
from tests.support.federation_ca import new_ca
from tests.support.matrix import User, ok, path_part, register

TARGET_ADDRESS = "127.0.0.41"
PEER_ADDRESS = "127.0.0.42"
NOBODY = "127.0.0.66:1"
"""A server name nothing answers for (loopback, a closed port): "another server" in ids."""
ROOM_VERSION = "10"
SEND = "/_matrix/federation/v1/send/{}"
_txn_ids = itertools.count()


def txn_id() -> str:
    return f"hostile{next(_txn_ids)}-{secrets.token_hex(4)}"


@dataclass
class World:
    """What the examples refer to (all ids as A stores them)."""

    target: str
    """A's server name."""
    peer: str
    """B's server name."""
    room_id: str
    """alice's v10 room, bob joined (power level 100)."""
    lonely_room_id: str
    """alice's room with nobody of B in it."""
    alice_id: str
    alice_device: str
    alice_token: str
    bob_id: str
    message_id: str
    """alice's message in `room_id`."""
    join_id: str
    """bob's join."""
    lonely_message_id: str
    target_key_id: str
    since: str
    """alice's `/sync` token after the setup."""
    alias: str
    """`room_id`'s alias on A."""
    carla_id: str
    """A local user of A outside the room (someone B's users may invite)."""
    carla_token: str
    bob_token: str
    """bob's access token on B (bob's own messages go through B's outbox)."""
    openid_token: str
    """alice's OpenID token (`/openid/userinfo`)."""
    v12_room_id: str
    """A room like `room_id` of room version 12 (its id is its create event's)."""
    v12_join_id: str
    v12_message_id: str
    room_version: str = ROOM_VERSION
    """`room_id`'s version."""


class Peering:
    """Servers A (the target) and B (the peer) running in a thread until `stop`."""

    def __init__(self, directory: Path) -> None:
        self._ready: queue.Queue[Any] = queue.Queue()
        ca = new_ca(directory / "ca")
        self._previous_cert_file = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(ca.certificate_path)
        self.tls = ssl.create_default_context(cafile=str(ca.certificate_path))
        self._ca = ca
        self._directory = directory
        self._thread = threading.Thread(target=self._run, name="peering", daemon=True)
        self._thread.start()
        started = self._ready.get(timeout=180)
        if isinstance(started, BaseException):
            self._restore_env()
            raise started
        self.target, self.peer, self.world, self._token, self._stop = started
        self.target_url = self.target.server.base_url
        self.v12 = copy.copy(self)
        """This peering seen through the v12 room."""
        self.v12.world = dataclasses.replace(
            self.world,
            room_id=self.world.v12_room_id,
            join_id=self.world.v12_join_id,
            message_id=self.world.v12_message_id,
            room_version="12",
        )

    def _restore_env(self) -> None:
        if self._previous_cert_file is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = self._previous_cert_file

    def _run(self) -> None:
        async def main() -> None:
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                a = await start_federating(nursery, self._ca, self._directory / "a", TARGET_ADDRESS)
                b = await start_federating(nursery, self._ca, self._directory / "b", PEER_ADDRESS)
                world = await _build_world(a, b)
                self._ready.put((a, b, world, trio.lowlevel.current_trio_token(), stop))
                await stop.wait()
                await a.stop()
                await b.stop()

        try:
            trio.run(main)
        except BaseException as error:  # reported to the starting fixture, if not started yet
            self._ready.put(error)

    @property
    def a(self) -> Services:
        return self.target.server.services

    @property
    def b(self) -> Services:
        return self.peer.server.services

    def call_blocking(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return trio.from_thread.run(async_fn, *args, trio_token=self._token)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` (awaited if it is a coroutine function's result) in the servers' loop."""

        async def run() -> Any:
            result = fn(*args)
            if isinstance(result, Awaitable):
                result = await result
            return result

        return await trio.to_thread.run_sync(self.call_blocking, run)

    def stop(self) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(timeout=60)
        self._restore_env()

    # ---- for the examples, from their own loop

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.target_url, timeout=60, verify=self.tls, trust_env=False
        )

    def alice(self, client: httpx.AsyncClient) -> User:
        world = self.world
        return User(world.alice_id, world.alice_device, world.alice_token, client, world.target)

    async def signed_request(
        self,
        client: httpx.AsyncClient,
        method: str,
        path_and_query: str,
        body: str | bytes | None = None,
    ) -> httpx.Response:
        """`method path_and_query` to A with `body` as is, signed by B's real key.

        `path_and_query` is percent-encoded already; it is signed exactly as
        httpx sends it. A body the gate refuses to parse is sent with a
        signature over no content (it is refused before the signature is read).
        """
        data = body.encode() if isinstance(body, str) else body
        content: Any = None
        if data is not None and data.strip():
            try:
                content = parse_json(data)
            except MatrixError:
                content = None
        uri = httpx.URL(path_and_query).raw_path.decode("ascii")
        authorization = sign_request(
            method, uri, self.world.peer, self.world.target, content, self.b.globals.signing_key
        )
        headers = {"Authorization": authorization}
        if data is not None:
            headers["Content-Type"] = "application/json"
        return await client.request(method, uri, content=data, headers=headers)

    async def template(
        self,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        sender: str | None = None,
    ) -> dict[str, Any]:
        """The unsigned PDU `sender` (bob) would add on top of the room on A now."""

        def build() -> dict[str, Any]:
            return self.a.rooms.builder.template(
                self.world.room_id, sender or self.world.bob_id, event_type, content, state_key
            )

        return await self.call(build)

    async def fresh_room(self) -> Peering:
        """This peering, seen through a new shared room (for examples that change what
        others would rely on: the server ACL, power levels)."""

        async def create() -> tuple[str, str, str]:
            world = self.world
            alice = User(
                world.alice_id,
                world.alice_device,
                world.alice_token,
                self.target.server.client,
                world.target,
            )
            return await _shared_room(
                self.target, self.peer, alice, world.bob_id, world.room_version
            )

        room_id, join_id, message_id = await trio.to_thread.run_sync(self.call_blocking, create)
        view = copy.copy(self)
        view.world = dataclasses.replace(
            self.world, room_id=room_id, join_id=join_id, message_id=message_id
        )
        return view

    async def inbound_drained(self) -> None:
        """Until A's background worker has handled every PDU it queued (a hang fails)."""
        with trio.fail_after(120):
            while await self.call(self.a.inbound.queue.rooms_with_work):
                await trio.sleep(0.05)

    async def status(self, event_id: str) -> EventStatus | None:
        return await self.call(self.a.rooms.timeline.status, event_id)


def loosely_signed(
    pdu: dict[str, Any], server_name: str, key: Any, room_version: str = ROOM_VERSION
) -> tuple[dict[str, Any], str]:
    """The PDU hashed and signed for its room version, even with what the version's
    Canonical JSON forbids (floats, big integers): a server that signs what it should not."""
    version = dataclasses.replace(get_room_version(room_version), strict_canonical_json=False)
    return sign_event_with_id(pdu, server_name, key, version)


def sign_as_peer(peering: Peering, pdu: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`pdu` signed by B for the room of `peering`'s world."""
    world = peering.world
    return loosely_signed(pdu, world.peer, peering.b.globals.signing_key, world.room_version)


def transaction(peer: str, pdus: list[Any], edus: list[Any] | None = None) -> str:
    return json.dumps({"origin": peer, "origin_server_ts": 1, "pdus": pdus, "edus": edus or []})


async def valid_message(peering: Peering, text: str = "still here") -> tuple[dict[str, Any], str]:
    """A well-formed message of bob's on top of the room, signed by B; and its id."""
    template = await peering.template("m.room.message", {"msgtype": "m.text", "body": text})
    return sign_as_peer(peering, template)


async def assert_peer_still_accepted(peering: Peering, client: httpx.AsyncClient, what: str):
    """B's valid signed message is taken into A's timeline and alice reads it; B may still
    read alice's message and the room's state."""
    pdu, event_id = await valid_message(peering)
    response = await peering.signed_request(
        client, "PUT", SEND.format(txn_id()), transaction(peering.world.peer, [pdu])
    )
    assert response.status_code == 200, (what, response.status_code, response.text[:500])
    assert response.json() == {"pdus": {event_id: {}}}, (what, response.text[:500])
    await peering.inbound_drained()
    assert await peering.status(event_id) is EventStatus.TIMELINE, (what, event_id)
    alice = peering.alice(client)
    timeline = ok(await alice.messages(peering.world.room_id, limit=5))["chunk"]
    assert event_id in [event["event_id"] for event in timeline], what
    world = peering.world
    for path in (
        f"/_matrix/federation/v1/event/{path_part(world.message_id)}",
        f"/_matrix/federation/v1/state_ids/{path_part(world.room_id)}"
        f"?event_id={path_part(event_id)}",
    ):
        answer = await peering.signed_request(client, "GET", path)
        assert answer.status_code == 200, (what, path, answer.status_code, answer.text[:500])


async def assert_peer_users_still_heard(peering: Peering, what: str) -> None:
    """A message bob sends on B (through B's own outbox, on B's copy of the room) reaches
    alice on A: A takes B's real transactions too, after whatever was sent in B's name."""
    world = peering.world
    text = f"bob is still heard ({txn_id()})"
    async with (
        httpx.AsyncClient(
            base_url=peering.peer.server.base_url, timeout=60, verify=peering.tls, trust_env=False
        ) as on_b,
        peering.client() as on_a,
    ):
        bob = User(world.bob_id, "", world.bob_token, on_b, world.peer)
        await bob.send(world.room_id, text)
        alice = peering.alice(on_a)
        with trio.fail_after(120):  # a hang guard: it arrives in well under a second
            while True:
                chunk = ok(await alice.messages(world.room_id, limit=20))["chunk"]
                if any(event.get("content", {}).get("body") == text for event in chunk):
                    return
                await trio.sleep(0.2)


async def assert_target_still_serves(peering: Peering, client: httpx.AsyncClient, what: str):
    """alice's `/sync` (since the setup and from scratch), `/messages` of each room, every
    read of the shared room's state (the room directory, members, the user directory,
    the hierarchy, an event's context) and of bob's keys answer 200 on A, and she can
    still write in both shared rooms."""
    alice = peering.alice(client)
    world = peering.world
    room = path_part(world.room_id)
    for response in (
        await alice.get("/sync", timeout=0, since=world.since),
        await alice.get("/sync", timeout=0),
        await alice.messages(world.room_id, limit=50),
        await alice.messages(world.lonely_room_id, limit=10),
        await alice.messages(world.v12_room_id, limit=50),
        await alice.post("/keys/query", {"device_keys": {world.bob_id: []}, "timeout": 2000}),
        await alice.get("/publicRooms"),
        await alice.get(f"/rooms/{room}/state"),
        await alice.get(f"/rooms/{room}/members"),
        await alice.get(f"/rooms/{room}/joined_members"),
        await alice.get(f"/rooms/{room}/context/{path_part(world.message_id)}"),
        await alice.post("/user_directory/search", {"search_term": "bob"}),
        await alice.request("GET", f"/rooms/{room}/hierarchy", prefix="/_matrix/client/v1"),
        await alice.send_event(world.room_id, "m.room.message", {"msgtype": "m.text", "body": "."}),
        await alice.send_event(
            world.v12_room_id, "m.room.message", {"msgtype": "m.text", "body": "."}
        ),
    ):
        assert response.status_code == 200, (
            f"after {what}",
            str(response.request.url)[:200],
            response.status_code,
            response.text[:500],
        )


# ---- the setup, in the servers' loop


def _services(server: FederatingServer) -> Services:
    return server.server.services


def _sign(server: FederatingServer, template: dict[str, Any], version: RoomVersion) -> dict:
    signed, _ = sign_event_with_id(
        template, server.name, _services(server).globals.signing_key, version
    )
    return signed


async def _wait_for(condition: Callable[[], bool]) -> None:
    with trio.fail_after(120):
        while not condition():
            await trio.sleep(0.05)


async def _shared_room(
    a: FederatingServer,
    b: FederatingServer,
    alice: User,
    bob_id: str,
    room_version: str = ROOM_VERSION,
    **create: Any,
) -> tuple[str, str, str]:
    """A public room of alice's on A that bob of B joins (power level 100) and alice
    writes a message in; its id, bob's join and the message."""
    version = get_room_version(room_version)
    room_id = await alice.create_room(preset="public_chat", room_version=room_version, **create)
    template = _services(a).rooms.builder.template(
        room_id, bob_id, "m.room.member", {"membership": "join"}, bob_id
    )
    join = _sign(b, template, version)
    join_id = compute_event_id(join, version)
    answer = await b.federation.client.request(
        a.name,
        "PUT",
        SEND.format(txn_id()),
        body={"origin": b.name, "origin_server_ts": 1, "pdus": [join], "edus": []},
    )
    assert answer == {"pdus": {join_id: {}}}, answer
    timeline = _services(a).rooms.timeline
    await _wait_for(lambda: timeline.status(join_id) is EventStatus.TIMELINE)
    state = await b.federation.client.request(
        a.name,
        "GET",
        f"/_matrix/federation/v1/state/{quote(room_id, safe='')}",
        query={"event_id": join_id},
    )
    _, joined = await _services(b).inbound.events.persist_with_state(
        a.name, version, join, state["pdus"], state["auth_chain"]
    )
    assert joined is EventStatus.TIMELINE, joined
    power_levels = ok(await alice.get_state(room_id, "m.room.power_levels"))
    power_levels["users"][bob_id] = 100
    await alice.set_state(room_id, "m.room.power_levels", power_levels)
    message_id = await alice.send(room_id, "the room's message")
    ok(await alice.put(f"/directory/list/room/{path_part(room_id)}", {"visibility": "public"}))
    return room_id, join_id, message_id


async def _build_world(a: FederatingServer, b: FederatingServer) -> World:
    alice = await register(a.server, "alice")
    bob = await register(b.server, "bob")
    carla = await register(a.server, "carla")
    room_id, join_id, message_id = await _shared_room(
        a, b, alice, bob.user_id, room_alias_name="hostile"
    )
    v12_room_id, v12_join_id, v12_message_id = await _shared_room(a, b, alice, bob.user_id, "12")
    lonely_room_id = await alice.create_room(preset="private_chat", room_version=ROOM_VERSION)
    lonely_message_id = await alice.send(lonely_room_id, "nobody of B reads this")
    since = ok(await alice.get("/sync", timeout=0))["next_batch"]
    key_id = next(iter(_services(a).federation.key_ring.own_key_document()["verify_keys"]))
    openid = ok(await alice.post(f"/user/{path_part(alice.user_id)}/openid/request_token", {}))
    return World(
        target=a.name,
        peer=b.name,
        room_id=room_id,
        lonely_room_id=lonely_room_id,
        alice_id=alice.user_id,
        alice_device=alice.device_id,
        alice_token=alice.access_token,
        bob_id=bob.user_id,
        message_id=message_id,
        join_id=join_id,
        lonely_message_id=lonely_message_id,
        target_key_id=key_id,
        since=since,
        alias=f"#hostile:{a.name}",
        carla_id=carla.user_id,
        carla_token=carla.access_token,
        bob_token=bob.access_token,
        openid_token=openid["access_token"],
        v12_room_id=v12_room_id,
        v12_join_id=v12_join_id,
        v12_message_id=v12_message_id,
    )


def peering_fixture() -> Any:
    """A module's `peering` fixture: A and B and the world, for all of the module's tests."""
    import pytest

    @pytest.fixture(scope="module", name="peering")
    def fixture(tmp_path_factory: pytest.TempPathFactory):
        peering = Peering(tmp_path_factory.mktemp("peering"))
        yield peering
        peering.stop()

    return fixture


# ---- hostile values, PDUs and EDUs (shared by the property and the examples)


@dataclass(frozen=True)
class Raw:
    """JSON text no Python value serialises to (`1e400`, 5000 digits, deep nesting)."""

    text: str


def dumps_with_raw(value: Any) -> str:
    """`json.dumps(value)` with each `Raw` leaf written as its text (lone surrogates become
    `\\ud800` escapes: valid JSON syntax, no UTF-8 string)."""
    raws: list[str] = []

    def replace(node: Any) -> Any:
        if isinstance(node, Raw):
            raws.append(node.text)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(node, dict):
            return {key: replace(child) for key, child in node.items()}
        if isinstance(node, list):
            return [replace(child) for child in node]
        return node

    text = json.dumps(replace(value))
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{index}@@"', raw)
    return text


DELETE = object()
"""A change that removes the field."""


def try_sign(peering: Peering, pdu: Any) -> Any:
    """`pdu` signed by B (loosely), or as it is when nothing can sign it."""
    if not isinstance(pdu, dict):
        return pdu
    try:
        return sign_as_peer(peering, pdu)[0]
    except Exception:  # lone surrogates, Raw leaves, a v1 `event_id` missing: unsignable
        return pdu


def pdu_id(pdu: Any, room_version: str = ROOM_VERSION) -> str | None:
    """The id A computes for a PDU of a room of that version (None when it has none)."""
    try:
        return compute_event_id(pdu, get_room_version(room_version))
    except Exception:
        return None


def edu_templates(world: World) -> dict[str, dict[str, Any]]:
    """A valid content of each EDU type A handles, from bob in the shared room."""
    bob, room_id = world.bob_id, world.room_id
    key = {"keys": {"ed25519:K": "a2V5"}, "usage": ["master"], "user_id": bob}
    return {
        "m.typing": {"room_id": room_id, "user_id": bob, "typing": True},
        "m.receipt": {
            room_id: {"m.read": {bob: {"event_ids": [world.message_id], "data": {"ts": 1}}}}
        },
        "m.presence": {
            "push": [
                {
                    "user_id": bob,
                    "presence": "online",
                    "last_active_ago": 5,
                    "currently_active": True,
                    "status_msg": "here",
                }
            ]
        },
        "m.direct_to_device": {
            "sender": bob,
            "type": "org.example.hostile",
            "message_id": secrets.token_hex(8),
            "messages": {world.alice_id: {"*": {"body": "hi"}}},
        },
        "m.device_list_update": {
            "user_id": bob,
            "device_id": "HOSTILE",
            "stream_id": 7,
            "prev_id": [6],
            "deleted": False,
            "device_display_name": "a device",
            "keys": {
                "user_id": bob,
                "device_id": "HOSTILE",
                "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
                "keys": {"ed25519:HOSTILE": "a2V5"},
                "signatures": {bob: {"ed25519:HOSTILE": "c2ln"}},
            },
        },
        "m.signing_key_update": {"user_id": bob, "master_key": key, "self_signing_key": key},
        "org.example.unknown": {"anything": [1, 2]},
    }


EDU_PATHS: dict[str, list[tuple[str, ...]]] = {
    "m.typing": [("room_id",), ("user_id",), ("typing",)],
    "m.receipt": [
        ("{room}",),
        ("{room}", "m.read"),
        ("{room}", "m.read", "{bob}"),
        ("{room}", "m.read", "{bob}", "event_ids"),
        ("{room}", "m.read", "{bob}", "data"),
        ("{room}", "m.read", "{bob}", "data", "ts"),
        ("{room}", "m.read", "{bob}", "data", "thread_id"),
        ("{room}", "m.read.private"),
        ("{lonely}", "m.read"),
    ],
    "m.presence": [
        ("push",),
        ("push", "0"),
        ("push", "0", "user_id"),
        ("push", "0", "presence"),
        ("push", "0", "last_active_ago"),
        ("push", "0", "currently_active"),
        ("push", "0", "status_msg"),
    ],
    "m.direct_to_device": [
        ("sender",),
        ("type",),
        ("message_id",),
        ("messages",),
        ("messages", "{alice}"),
        ("messages", "{alice}", "*"),
        ("messages", "{alice}", "{alice_device}"),
        ("messages", "@nobody:{target}"),
    ],
    "m.device_list_update": [
        ("user_id",),
        ("device_id",),
        ("stream_id",),
        ("prev_id",),
        ("deleted",),
        ("device_display_name",),
        ("keys",),
        ("keys", "keys"),
        ("keys", "algorithms"),
        ("keys", "signatures"),
        ("keys", "user_id"),
    ],
    "m.signing_key_update": [
        ("user_id",),
        ("master_key",),
        ("master_key", "keys"),
        ("master_key", "usage"),
        ("master_key", "user_id"),
        ("self_signing_key",),
        ("self_signing_key", "keys"),
    ],
    "org.example.unknown": [("anything",)],
}


def edu_path(world: World, path: tuple[str, ...]) -> tuple[str, ...]:
    names = {
        "{room}": world.room_id,
        "{lonely}": world.lonely_room_id,
        "{bob}": world.bob_id,
        "{alice}": world.alice_id,
        "{alice_device}": world.alice_device,
    }
    return tuple(names.get(part, part.replace("{target}", world.target)) for part in path)


def changed(content: Any, path: tuple[str, ...], new: Any) -> Any:
    """A copy of `content` with the field at `path` set to `new` (or removed: `DELETE`).

    A path through something that is not an object replaces it by one; a `"0"` step
    into a list means its first item.
    """
    if path and path[0] == "0" and isinstance(content, list):
        if len(path) == 1:
            return content[1:] if new is DELETE else [new, *content[1:]]
        return [changed(content[0] if content else {}, path[1:], new), *content[1:]]
    if not path:
        return new
    node = dict(content) if isinstance(content, dict) else {}
    head, rest = path[0], path[1:]
    if not rest and new is DELETE:
        node.pop(head, None)
    else:
        node[head] = changed(node.get(head), rest, new)
    return node
