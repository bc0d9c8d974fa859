"""One real server shared by the tests of a module, in a thread with its own trio loop.

Starting a server costs most of a second (building the app's URL map), and
pytest-trio gives each test its own event loop, so a server started in a test
dies with it. Tests that do not interfere with one another (each registers
its own users and creates its own rooms) share one server instead: it runs
`serve` under `trio.run` in a thread for the whole module, and each test
talks to it over HTTP from its own loop, with a fresh `httpx.AsyncClient`.

Use it in a module with

    running_server, server = shared_server_fixtures()

which defines the module-scoped `running_server` and a per-test `server`
(same attributes as `TestServer`: `config`, `services`, `base_url`,
`client`; plus `call`, which runs a coroutine function in the server's loop,
e.g. a service method that awaits).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio

from matrix_conduit.config import Config
from matrix_conduit.server import Running, serve
from matrix_conduit.service import Services
from tests.support.server import make_config


class RunningServer:
    """`serve` running in a thread until `stop`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._ready: queue.Queue[
            tuple[Running, trio.lowlevel.TrioToken, trio.Event] | BaseException
        ]
        self._ready = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="shared-server", daemon=True)
        self._thread.start()
        started = self._ready.get(timeout=60)
        if isinstance(started, BaseException):
            raise started
        running, self._token, self._stop = started
        self.services: Services = running.services
        self.base_url = running.urls[0]

    def _run(self) -> None:
        async def main() -> None:
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                running = await nursery.start(serve, self.config, stop.wait)
                self._ready.put((running, trio.lowlevel.current_trio_token(), stop))

        try:
            trio.run(main)
        except BaseException as error:  # reported to the starting test, if not started yet
            self._ready.put(error)

    def call_blocking(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run `async_fn(*args)` in the server's loop and wait for its result."""
        return trio.from_thread.run(async_fn, *args, trio_token=self._token)

    def stop(self) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(timeout=30)


@dataclass
class SharedServer:
    """What a test sees of the shared server: the `TestServer` attributes and `call`."""

    __test__ = False

    running: RunningServer
    client: httpx.AsyncClient

    @property
    def config(self) -> Config:
        return self.running.config

    @property
    def services(self) -> Services:
        return self.running.services

    @property
    def base_url(self) -> str:
        return self.running.base_url

    async def call(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """`await async_fn(*args)`, run in the server's loop (from a worker thread of ours)."""
        return await trio.to_thread.run_sync(self.running.call_blocking, async_fn, *args)


def shared_server_fixtures(name: str = "server", **config_overrides: Any) -> tuple[Any, Any]:
    """The fixtures `running_<name>` (module scope) and `<name>` (per test) of a module.

    `config_overrides` go to `make_config` (e.g. `allow_encryption=False`); a
    module with servers of several configurations calls this once per name.
    """
    running_name = f"running_{name}"

    @pytest.fixture(scope="module", name=running_name)
    def running_server_fixture(tmp_path_factory: pytest.TempPathFactory):
        database = tmp_path_factory.mktemp(running_name) / "db"
        running = RunningServer(make_config(database, **config_overrides))
        yield running
        running.stop()

    @pytest.fixture(name=name)
    async def server_fixture(request: pytest.FixtureRequest):
        running: RunningServer = request.getfixturevalue(running_name)
        client = httpx.AsyncClient(base_url=running.base_url, timeout=30, verify=False)
        yield SharedServer(running, client)
        await client.aclose()

    return running_server_fixture, server_fixture
