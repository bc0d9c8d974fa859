"""Several of our servers federating over real TLS on loopback, for `tests/federation/`.

What `../shared/notes/federation-testing.md` found to work here:
- each server gets its own 127.0.0.x address and an IP-literal server name
  with an explicit port (`127.0.0.2:PORT`), so discovery is step 1 of the
  spec's "Resolving server names": no DNS, no `.well-known`;
- a throwaway CA (`tests/support/federation_ca.py`) issues each server a
  certificate with an IP SAN for its address, served through the ordinary
  `[global.tls]` config;
- `SSL_CERT_FILE` names the CA's certificate, so the servers' outgoing
  requests verify TLS exactly as in production (against "the system CAs");
- `federation_ip_range_allowlist = ["127.0.0.0/8"]`: loopback is denied by
  default, and tests allow it explicitly.

The servers run in the test's trio loop (`tests/support/server.py`), so a
test can stop one, restart it on the same database and address, and reach
its services. `install_signed_echo` adds one test-only route on a
`signed_blueprint`, the gate every federation endpoint uses, until the first
real authenticated endpoints exist.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from quart import request

from matrix_conduit import app as app_module
from matrix_conduit.api import blueprints as product_blueprints
from matrix_conduit.api.federation.auth import origin, signed_blueprint
from matrix_conduit.api.request import json_object
from matrix_conduit.config import Config, build_config
from matrix_conduit.server import Running, serve
from matrix_conduit.service.clock import Clock
from matrix_conduit.service.federation import Federation
from matrix_conduit.service.globals import Globals
from matrix_conduit.service.outgoing_http import OutgoingHttp
from matrix_conduit.storage import open_database
from tests.support.federation_ca import FederationCa, free_port_on, new_ca
from tests.support.server import TestServer, port_was_taken

ECHO_PATH = "/_matrix/federation/v1/_test/echo"
"""The test-only signed route: answers the authenticated origin and the body it got."""

PORT_ATTEMPTS = 5


def trusted_ca(directory: Path, monkeypatch: pytest.MonkeyPatch) -> FederationCa:
    """A new CA, trusted by every TLS context created from now on in this test."""
    ca = new_ca(directory)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.certificate_path))
    return ca


def federation_config(
    ca: FederationCa, directory: Path, address: str, port: int | None = None, **overrides: Any
) -> Config:
    """A config for a server named `address:port`, listening there with TLS, federating."""
    port = port or free_port_on(address)
    certs, key = ca.certificate_for(address)
    values: dict[str, Any] = {
        "server_name": f"{address}:{port}",
        "database_backend": "leveldb",
        "database_path": str(directory / "db"),
        "address": address,
        "port": port,
        "tls": {"certs": certs, "key": key},
        "allow_federation": True,
        "trusted_servers": [],
        "federation_ip_range_allowlist": ["127.0.0.0/8"],
        "rate_limits": {"enabled": False},  # limits only where a test asks for them
    }
    values.update(overrides)
    return build_config(values)


@dataclass
class FederatingServer:
    """One of our servers in a federation test."""

    server: TestServer
    directory: Path
    stopped: trio.Event

    @property
    def name(self) -> str:
        return self.server.config.server_name

    @property
    def config(self) -> Config:
        return self.server.config

    @property
    def federation(self) -> Any:
        return self.server.services.federation

    @property
    def client(self) -> httpx.AsyncClient:
        return self.server.client

    async def stop(self) -> None:
        """Stop serving and wait until the database is closed (so it can restart)."""
        await self.server.client.aclose()
        await self.server.stop()
        await self.stopped.wait()


async def _serve(nursery: trio.Nursery, config: Config, directory: Path) -> FederatingServer:
    stop, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[Running]) -> None:
        try:
            await serve(config, stop.wait, task_status=task_status)
        finally:
            stopped.set()

    running = await nursery.start(run)
    base_url = running.urls[0]
    client = httpx.AsyncClient(base_url=base_url, timeout=30, verify=False)
    return FederatingServer(
        TestServer(config, running.services, base_url, client, stop), directory, stopped
    )


async def start_federating(
    nursery: trio.Nursery, ca: FederationCa, directory: Path, address: str, **overrides: Any
) -> FederatingServer:
    """A new server at `address` on a free port (another one if the port gets taken)."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        attempt_directory = directory / f"attempt{attempt}"
        config = federation_config(ca, attempt_directory, address, **overrides)
        try:
            return await _serve(nursery, config, attempt_directory)
        except BaseException as error:
            if attempt == PORT_ATTEMPTS or not port_was_taken(error):
                raise
    raise AssertionError("unreachable")


async def restart(nursery: trio.Nursery, stopped: FederatingServer) -> FederatingServer:
    """`stopped` again: same config (name, address, port) and database."""
    return await _serve(nursery, stopped.config, stopped.directory)


def install_signed_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app created from now on in this test also serves `ECHO_PATH` (signed)."""
    blueprint = signed_blueprint("test_signed_echo", __name__)

    @blueprint.route(ECHO_PATH, methods=["GET", "PUT"])
    @blueprint.route(f"{ECHO_PATH}/<segment>", methods=["GET", "PUT"])
    async def echo(segment: str | None = None) -> dict:
        body = await json_object() if request.method == "PUT" else None
        answer = {"origin": origin(), "content": body}
        return answer if segment is None else {**answer, "segment": segment}

    monkeypatch.setattr(app_module, "blueprints", lambda: [*product_blueprints(), blueprint])


@asynccontextmanager
async def detached_federation(
    database_path: Path, clock: Clock, **overrides: Any
) -> AsyncIterator[Federation]:
    """The federation services of a server that is never started, with the test's clock.

    For the fetching side of a test (key ring, client) when time must move.
    """
    values: dict[str, Any] = {
        "server_name": "127.0.0.9:9",
        "database_backend": "leveldb",
        "database_path": str(database_path),
        "trusted_servers": [],
        "federation_ip_range_allowlist": ["127.0.0.0/8"],
        **overrides,
    }
    config = build_config(values)
    with open_database("leveldb", config.database_path) as db:
        http = OutgoingHttp(config)
        try:
            yield Federation(config, db, Globals(db, config.server_name), http, clock=clock)
        finally:
            await http.aclose()


Responder = Callable[[str, str, Any], Awaitable[tuple[int, Any]]]
"""(method, path, JSON body or None) → (status, JSON answer) for `serve_https`."""


async def serve_https(
    nursery: trio.Nursery, ca: FederationCa, address: str, respond: Responder
) -> str:
    """A minimal real HTTPS peer at `address` (not one of our servers); its server name.

    For behaviour our servers never show (a slow answer, a notary that signs
    wrongly). One request per connection, answered with `Connection: close`.
    """
    port = free_port_on(address)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*ca.certificate_for(address))

    async def handle(stream: trio.SSLStream) -> None:
        try:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in lines
                    if line.lower().startswith("content-length:")
                ),
                0,
            )
            while len(body) < length:
                body += await stream.receive_some()
            status, answer = await respond(method, target, json.loads(body) if body else None)
            payload = json.dumps(answer).encode()
            response_head = (
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            await stream.send_all(response_head.encode() + payload)
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away: nothing to answer

    await nursery.start(functools.partial(trio.serve_ssl_over_tcp, handle, port, tls, host=address))
    return f"{address}:{port}"


async def serve_connect_proxy(nursery: trio.Nursery, address: str) -> tuple[str, list[str]]:
    """A minimal HTTP CONNECT proxy at `address`: its URL, and the targets it was asked for."""
    port = free_port_on(address)
    targets: list[str] = []

    async def pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            while chunk := await source.receive_some():
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async def handle(client: trio.SocketStream) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await client.receive_some()
            if not chunk:
                return
            received += chunk
        method, target, _ = received.split(b"\r\n", 1)[0].decode().split(" ", 2)
        targets.append(f"{method} {target}")
        host, _, target_port = target.rpartition(":")
        upstream = await trio.open_tcp_stream(host.strip("[]"), int(target_port))
        await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        async with trio.open_nursery() as pipes:
            pipes.start_soon(pipe, client, upstream)
            pipes.start_soon(pipe, upstream, client)

    await nursery.start(functools.partial(trio.serve_tcp, handle, port, host=address))
    return f"http://{address}:{port}", targets
