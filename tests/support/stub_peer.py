"""A federation peer of the test's own over real TLS, that says whatever the test wants.

For `tests/federation/test_hostile_peers.py`: a peer that lies (bad
signatures, auth chains that do not check, `send_join` state of another
room, `/get_missing_events` answers of another room or longer than asked),
floods, or never answers. It is not one of our servers: it runs on
`tests/support/federation.py`'s `serve_https` (a real HTTPS listener on its
own 127.0.0.x address with a certificate from the test's CA), has a signing
key of its own and serves its `/_matrix/key/v2/server` document, so our
servers verify its requests and events exactly as they verify anyone's.

- `StubPeer.on(method, path_prefix, handler)` answers a route (its key
  document too, if the test wants); everything else is 404 `M_UNRECOGNIZED`
  (and `PUT /send` is 200, so our outbox is content). `requests` records
  what it was asked, in order.
- `sign` hashes and signs a PDU as the peer; `request`/`push` send signed
  requests to one of our servers.
- `member_event` builds, on one of our servers' view of its room, the event
  a user of the peer would send (the server's own template, so
  `prev_events`/`auth_events` are right), which the test may change before
  signing; `join` makes a user of the peer a member of one of our rooms.
- `StubRoom` is a room that lives on the peer (created, joined and
  power-levelled by its own user), for answering `make_join`/`send_join`.
"""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx
import trio

from matrix_conduit.core.events import (
    compute_event_id,
    room_id_for_create_event,
    sign_event_with_id,
)
from matrix_conduit.core.room_versions import RoomVersion, get_room_version
from matrix_conduit.core.server_keys import own_server_keys
from matrix_conduit.core.signing import SigningKey, generate_signing_key, sign_request
from matrix_conduit.service.federation.received import wire_pdu
from matrix_conduit.service.rooms.event_context import EventStatus
from tests.support.federation import FederatingServer, serve_https
from tests.support.federation_ca import FederationCa

Handler = Callable[[str, str, Any], Awaitable[tuple[int, Any]]]
"""(method, path with query, JSON body or None) → (status, JSON answer)."""

KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
_txn_ids = itertools.count()


@dataclass
class StubPeer:
    """A peer server at `name` (`127.0.0.x:port`) with its own signing key."""

    ca: FederationCa
    key: SigningKey = field(default_factory=generate_signing_key)
    name: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    _routes: list[tuple[str, str, Handler]] = field(default_factory=list)

    def on(self, method: str, path_prefix: str, handler: Handler) -> None:
        """Answer requests whose path starts with `path_prefix` (the latest route first)."""
        self._routes.insert(0, (method, path_prefix, handler))

    def asked(self, method: str, path_prefix: str) -> list[str]:
        """The paths of the requests received so far that match."""
        return [p for m, p in self.requests if m == method and p.startswith(path_prefix)]

    async def respond(self, method: str, target: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, target))
        for route_method, prefix, handler in self._routes:
            if route_method == method and target.startswith(prefix):
                return await handler(method, target, body)
        if method == "GET" and target.startswith("/_matrix/key/v2/server"):
            now = _now_ms()
            return 200, own_server_keys(self.name, self.key, {}, now + KEY_VALIDITY_MS)
        if method == "PUT" and target.startswith("/_matrix/federation/v1/send/"):
            return 200, {"pdus": {}}
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "Not served by this stub peer"}

    # ---- speaking to our servers

    def sign(self, pdu: dict[str, Any], room_version: RoomVersion) -> tuple[dict[str, Any], str]:
        """`pdu` as this peer sends it: hashed and signed by its key; and its event id."""
        return sign_event_with_id(pdu, self.name, self.key, room_version)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca.certificate_path))

    async def request(
        self, server: FederatingServer, method: str, path: str, body: Any = None
    ) -> httpx.Response:
        """A request to `server` signed by this peer (`path` already percent-encoded)."""
        authorization = sign_request(method, path, self.name, server.name, body, self.key)
        async with httpx.AsyncClient(verify=self.tls(), trust_env=False, timeout=60) as client:
            return await client.request(
                method,
                f"https://{server.name}{path}",
                json=body,
                headers={"Authorization": authorization},
            )

    async def push(
        self, server: FederatingServer, pdus: list[Any], edus: list[Any] | None = None
    ) -> httpx.Response:
        """`PUT /send` of one transaction to `server`."""
        body = {"origin": self.name, "origin_server_ts": 0, "pdus": pdus, "edus": edus or []}
        txn_id = f"stub{next(_txn_ids)}"
        return await self.request(server, "PUT", f"/_matrix/federation/v1/send/{txn_id}", body)

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.name}"

    def member_event(
        self,
        server: FederatingServer,
        room_id: str,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
    ) -> dict[str, Any]:
        """The unsigned PDU `sender` (a user of this peer) adds on top of `server`'s room."""
        builder = server.server.services.rooms.builder
        template = builder.template(room_id, sender, event_type, content, state_key)
        if "origin" in template:
            template["origin"] = self.name
        return template

    async def join(self, server: FederatingServer, room_id: str, localpart: str) -> str:
        """A user of this peer joins `server`'s public room (a join pushed to `/send`)."""
        user_id = self.user(localpart)
        room_version = server.server.services.rooms.timeline.room_version(room_id)
        template = self.member_event(
            server, room_id, user_id, "m.room.member", {"membership": "join"}, user_id
        )
        join, join_id = self.sign(template, room_version)
        answer = await self.push(server, [join])
        assert answer.status_code == 200 and answer.json() == {"pdus": {join_id: {}}}, answer.text
        timeline = server.server.services.rooms.timeline
        with trio.fail_after(30):
            while timeline.status(join_id) is not EventStatus.TIMELINE:
                await trio.sleep(0.02)
        return user_id


def _now_ms() -> int:
    return int(time.time() * 1000)


async def start_stub_peer(nursery: trio.Nursery, ca: FederationCa, address: str) -> StubPeer:
    """A stub peer listening on `address` (a free port), trusted through `ca`."""
    peer = StubPeer(ca)
    peer.name = await serve_https(nursery, ca, address, peer.respond)
    return peer


# ---- a room that lives on the peer


@dataclass
class StubRoom:
    """A public room created on the peer by its user `creator`, with its events in order."""

    peer: StubPeer
    room_version: RoomVersion
    creator: str
    room_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event, as stored (with `event_id`), oldest first."""
    state: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def create(cls, peer: StubPeer, room_version: str = "10", localpart: str = "owner") -> StubRoom:
        room = cls(peer, get_room_version(room_version), peer.user(localpart))
        create: dict[str, Any] = {"creator": room.creator, "room_version": room_version}
        if room.room_version.implicit_room_creator:
            create.pop("creator")
        room.add("m.room.create", create, "")
        room.add("m.room.member", {"membership": "join"}, room.creator)
        levels: dict[str, Any] = {"users": {room.creator: 100}, "users_default": 0}
        if room.room_version.room_id_is_create_event_id:  # v12: creators are not listed
            levels["users"] = {}
        room.add("m.room.power_levels", levels, "")
        room.add("m.room.join_rules", {"join_rule": "public"}, "")
        room.add("m.room.history_visibility", {"history_visibility": "shared"}, "")
        return room

    def event(self, event_id: str) -> dict[str, Any]:
        return next(e for e in self.events if e["event_id"] == event_id)

    def auth_event_ids(self, event_type: str, sender: str, state_key: str | None) -> list[str]:
        """The auth events the spec's "Auth events selection" picks, in the current state."""
        keys = [("m.room.power_levels", ""), ("m.room.member", sender)]
        if not self.room_version.room_id_is_create_event_id:
            keys.insert(0, ("m.room.create", ""))
        if event_type == "m.room.member" and state_key is not None:
            keys += [("m.room.member", state_key), ("m.room.join_rules", "")]
        return [self.state[key] for key in dict.fromkeys(keys) if key in self.state]

    def template(
        self,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        sender: str | None = None,
    ) -> dict[str, Any]:
        """The unsigned PDU `sender` (default: the creator) adds on top of the room."""
        sender = sender or self.creator
        pdu: dict[str, Any] = {
            "type": event_type,
            "sender": sender,
            "content": content,
            "origin_server_ts": _now_ms(),
            "depth": len(self.events) + 1,
            "prev_events": [self.events[-1]["event_id"]] if self.events else [],
            "auth_events": self.auth_event_ids(event_type, sender, state_key),
        }
        if not self.room_version.implicit_room_creator:
            pdu["origin"] = self.peer.name
        if state_key is not None:
            pdu["state_key"] = state_key
        if self.room_id:
            pdu["room_id"] = self.room_id
        elif not self.room_version.room_id_is_create_event_id:
            pdu["room_id"] = f"!stub{next(_txn_ids)}:{self.peer.name}"
        return pdu

    def add(
        self,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        sender: str | None = None,
    ) -> dict[str, Any]:
        """A new event of the room, signed by the peer, stored; returns it (with its id)."""
        signed, _ = self.peer.sign(
            self.template(event_type, content, state_key, sender), self.room_version
        )
        return self.store(signed)

    def store(self, pdu: dict[str, Any]) -> dict[str, Any]:
        """Take a signed PDU into the room (its place in the state, if it has one)."""
        event_id = compute_event_id(pdu, self.room_version)
        event = {**pdu, "event_id": event_id}
        if pdu["type"] == "m.room.create" and self.room_version.room_id_is_create_event_id:
            self.room_id = room_id_for_create_event(pdu, self.room_version)
        elif not self.room_id:
            self.room_id = pdu["room_id"]
        self.events.append(event)
        if "state_key" in pdu:
            self.state[(pdu["type"], pdu["state_key"])] = event_id
        return event

    def pdu(self, event_id: str) -> dict[str, Any]:
        return wire_pdu(self.event(event_id), self.room_version)

    def state_pdus(self) -> list[dict[str, Any]]:
        return [self.pdu(event_id) for event_id in self.state.values()]

    def auth_chain_pdus(self, event_ids: list[str]) -> list[dict[str, Any]]:
        """Every event in the auth chains of `event_ids`."""
        chain: dict[str, None] = {}
        to_visit = list(event_ids)
        while to_visit:
            for auth_id in self.event(to_visit.pop())["auth_events"]:
                if auth_id not in chain:
                    chain[auth_id] = None
                    to_visit.append(auth_id)
        if self.room_version.room_id_is_create_event_id:
            chain.setdefault(self.state[("m.room.create", "")], None)
        return [self.pdu(event_id) for event_id in chain]

    def serve_joins(
        self, change_answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    ) -> None:
        """The peer answers `make_join` and `send_join` (v2) for this room as its resident
        (the join is then the room's newest event); `change_answer` turns the honest
        `send_join` answer into the lie of the test."""
        room_path = quote(self.room_id, safe="")

        async def make_join(_method: str, target: str, _body: Any) -> tuple[int, Any]:
            user_id = unquote(target.split("?")[0].rsplit("/", 1)[1])
            template = self.template("m.room.member", {"membership": "join"}, user_id, user_id)
            template.pop("origin", None)
            return 200, {"room_version": self.room_version.identifier, "event": template}

        async def send_join(_method: str, _target: str, body: Any) -> tuple[int, Any]:
            state_ids = list(self.state.values())
            self.store(body)  # the join is the room's newest event from now on
            answer = {
                "origin": self.peer.name,
                "state": [self.pdu(event_id) for event_id in state_ids],
                "auth_chain": self.auth_chain_pdus(state_ids),
                "event": body,
            }
            return 200, change_answer(answer) if change_answer else answer

        self.peer.on("GET", f"/_matrix/federation/v1/make_join/{room_path}/", make_join)
        self.peer.on("PUT", f"/_matrix/federation/v2/send_join/{room_path}/", send_join)
