"""Several real server processes on one real PostgreSQL database (issue #18).

Each is `matrix-conduit` in a child process (`tests/support/process.py`) with
its own port and the same `database_url` and `database_path` (the media
directory and the shared lock), as `conduit@.service` runs them.

    from tests.support.postgres import postgres_server  # noqa: F401 (fixture)

    def test_x(tmp_path, postgres_server):
        with server_processes(tmp_path, postgres_server, 2) as (first, second):
            ...  # first.base_url, second.base_url

    async def test_y(tmp_path, postgres_server):
        async with two_processes_with_a_room(tmp_path, postgres_server) as cluster:
            ...  # cluster.alice (first process), cluster.bob (second), cluster.room_id
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomlkit

from tests.support.accounts import register
from tests.support.matrix import User
from tests.support.postgres import PostgresServer
from tests.support.process import ServerProcess, server_process, write_config


def cluster_config(
    directory: Path, database_url: str, postgres: PostgresServer, **overrides: Any
) -> dict[str, Any]:
    """The config keys every process of one cluster shares."""
    return {
        "database_backend": "postgresql",
        "database_url": database_url,
        "database_password_file": postgres.password_file,
        "database_path": str(directory / "shared"),
        "allow_registration": True,
        **overrides,
    }


@contextmanager
def server_processes(
    directory: Path, postgres: PostgresServer, count: int, **overrides: Any
) -> Iterator[list[ServerProcess]]:
    """`count` server processes on one fresh database, all answering HTTP."""
    url = postgres.fresh_database()
    shared = cluster_config(directory, url, postgres, **overrides)
    with ExitStack() as stack:
        processes = []
        for number in range(count):
            own = directory / f"process-{number}"
            own.mkdir()
            config = write_config(own, **shared)
            processes.append(stack.enter_context(server_process(config)))
        yield processes


CLIENT_TIMEOUT_SECONDS = 60
"""Longer than the long polls the tests make, so that only a hang times out."""


@dataclass(frozen=True)
class TwoProcesses:
    """Two processes on one database and an HTTP client for each."""

    first: ServerProcess
    second: ServerProcess
    one: httpx.AsyncClient
    """Talks to `first`."""
    two: httpx.AsyncClient
    """Talks to `second`."""


@dataclass(frozen=True)
class TwoProcessesWithARoom(TwoProcesses):
    """alice (registered through the first process) made a room that bob
    (registered through the second) joined."""

    alice: User
    bob: User
    room_id: str


@asynccontextmanager
async def two_processes(
    directory: Path, postgres: PostgresServer, **overrides: Any
) -> AsyncIterator[TwoProcesses]:
    """Two `server_processes` with a client each, for the length of the block."""
    with server_processes(directory, postgres, 2, **overrides) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as two,
        ):
            yield TwoProcesses(first, second, one, two)


@asynccontextmanager
async def two_processes_with_a_room(
    directory: Path, postgres: PostgresServer, **overrides: Any
) -> AsyncIterator[TwoProcessesWithARoom]:
    """`two_processes` where alice and bob, one on each, share a room."""
    async with two_processes(directory, postgres, **overrides) as pair:
        alice = await register_user(pair.one, "alice")
        bob = await register_user(pair.two, "bob")
        room_id = await alice.create_room(invite=[bob.user_id])
        await bob.join(room_id)
        yield TwoProcessesWithARoom(
            pair.first, pair.second, pair.one, pair.two, alice, bob, room_id
        )


def start_another(directory: Path, name: str, like: ServerProcess) -> Any:
    """A context manager for one more process with `like`'s config (a new port)."""
    source = like.stderr_path.with_name("conduit.toml").read_text()
    own = directory / name
    own.mkdir()
    values = dict(tomlkit.parse(source)["global"])
    values.pop("port")
    return server_process(write_config(own, **values))


async def register_user(http: httpx.AsyncClient, name: str) -> User:
    """A new account registered (open registration) through the process `http` talks to."""
    account = await register(http, name)
    return User(
        account["user_id"], account["device_id"], account["access_token"], http, "localhost"
    )


def through(user: User, http: httpx.AsyncClient) -> User:
    """`user` with the same access token, talking to another process."""
    return User(user.user_id, user.device_id, user.access_token, http, user.server_name)
