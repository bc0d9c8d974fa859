"""Several real server processes on one real PostgreSQL database (issue #18).

Each is `matrix-conduit` in a child process (`tests/support/process.py`) with
its own port and the same `database_url` and `database_path` (the media
directory and the shared lock), as `conduit@.service` runs them.

    from tests.support.postgres import postgres_server  # noqa: F401 (fixture)

    def test_x(tmp_path, postgres_server):
        with server_processes(tmp_path, postgres_server, 2) as (first, second):
            ...  # first.base_url, second.base_url
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
