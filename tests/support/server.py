"""Start the real server for a test: hypercorn on a free 127.0.0.1 port, real LevelDB.

In-process (same trio loop as the test) so tests can also reach the services
directly; everything a client sees still goes over real HTTP. For behaviour
that needs a separate process (signals, kill -9) see `support/process.py`.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from matrix_conduit.config import Config, build_config
from matrix_conduit.server import StartupError, serve
from matrix_conduit.service import Services
from tests.support.postgres import backend_overrides


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the config refuses port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_config(database_path: Path, **overrides: Any) -> Config:
    """A test server's config: a free port, LevelDB in `database_path`."""
    values: dict[str, Any] = {
        "server_name": "localhost",
        "database_backend": "leveldb",
        "database_path": str(database_path),
        "port": free_port(),
        "allow_federation": False,
        "trusted_servers": [],
        # Tests register and log in far faster than any person: limits only where a test asks.
        "rate_limits": {"enabled": False},
        **backend_overrides(str(database_path)),  # pytest --backend=postgresql
    }
    values.update(overrides)
    return build_config(values)


@dataclass
class TestServer:
    """A running server and an HTTP client pointed at it."""

    __test__ = False  # a helper, not a test class, despite its name

    config: Config
    services: Services
    base_url: str
    client: httpx.AsyncClient
    _stop: trio.Event

    async def stop(self) -> None:
        self._stop.set()


PORT_ATTEMPTS = 5


def port_was_taken(error: BaseException) -> bool:
    """Did the server fail because its port is in use (also inside trio's exception groups)?"""
    if isinstance(error, BaseExceptionGroup):
        return any(port_was_taken(inner) for inner in error.exceptions)
    return isinstance(error, StartupError) and "Address already in use" in str(error)


async def start_server(nursery: trio.Nursery, config: Config) -> TestServer:
    """Start `serve` in `nursery`; the returned server's `config` has the port it got.

    `free_port` cannot reserve the port: until the server binds it, another
    process on the machine (a parallel test run, any outgoing connection's
    local port) may take it. Then the server starts again on another one.
    """
    stop = trio.Event()
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            running = await nursery.start(serve, config, stop.wait)
            break
        except (StartupError, BaseExceptionGroup) as error:
            if attempt == PORT_ATTEMPTS or not port_was_taken(error):
                raise
            config = dataclasses.replace(config, port=free_port())
    base_url = running.urls[0]
    client = httpx.AsyncClient(base_url=base_url, timeout=30, verify=False)
    return TestServer(config, running.services, base_url, client, stop)


@asynccontextmanager
async def serving(nursery: trio.Nursery, config: Config) -> AsyncIterator[TestServer]:
    """A server running for the duration of the block (for fixtures with their own config)."""
    test_server = await start_server(nursery, config)
    try:
        yield test_server
    finally:
        await test_server.client.aclose()
        await test_server.stop()
