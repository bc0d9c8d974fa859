"""Graceful shutdown and startup messages of `serve`, observed in-process.

Shutdown (SIGTERM/SIGINT in production, here the shutdown trigger): stop
accepting connections, let requests in flight finish, but not forever
(`GRACEFUL_SECONDS`), then close the database. The process-level view (exit
status, signals) is in `test_process.py`.
"""

from __future__ import annotations

import logging

import httpx
import pytest
import trio

from matrix_conduit import server as server_module
from matrix_conduit.server import serve
from matrix_conduit.storage import open_database
from tests.support.probe import Probe
from tests.support.server import make_config

HANG_GUARD_SECONDS = 30


async def refuses_connections(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def wait_until_refusing(port: int) -> None:
    while not await refuses_connections(port):
        await trio.sleep(0.01)


async def test_shutdown_stops_accepting_lets_in_flight_requests_finish_and_closes_the_database(
    probe: Probe, tmp_path
):
    config = make_config(tmp_path / "db")
    stop = trio.Event()
    responses: list[httpx.Response] = []

    with trio.fail_after(HANG_GUARD_SECONDS):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, config, stop.wait)
            async with httpx.AsyncClient(base_url=running.urls[0]) as client:

                async def slow_request() -> None:
                    responses.append(await client.get("/_probe/slow"))

                async with trio.open_nursery() as requests:
                    requests.start_soon(slow_request)
                    await probe.slow_started.wait()
                    stop.set()
                    await wait_until_refusing(config.port)
                    probe.release_slow.set()
        # `serve` has returned.

    assert [(r.status_code, r.json()) for r in responses] == [(200, {"finished": True})]
    open_database("leveldb", config.database_path).close()


async def test_shutdown_does_not_wait_for_a_stuck_request_beyond_the_grace_period(
    probe: Probe, tmp_path, monkeypatch
):
    monkeypatch.setattr(server_module, "GRACEFUL_SECONDS", 0.2)
    config = make_config(tmp_path / "db")
    stop = trio.Event()
    failures: list[Exception] = []

    with trio.fail_after(HANG_GUARD_SECONDS):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, config, stop.wait)

            async def stuck_request() -> None:
                async with httpx.AsyncClient(base_url=running.urls[0]) as client:
                    try:
                        await client.get("/_probe/slow")
                    except httpx.TransportError as error:
                        failures.append(error)

            nursery.start_soon(stuck_request)
            await probe.slow_started.wait()
            stop.set()

    assert not probe.release_slow.is_set()
    assert len(failures) == 1, "the stuck request's connection was closed, not answered"
    open_database("leveldb", config.database_path).close()


async def test_rocksdb_backend_runs_on_leveldb_and_says_so(tmp_path, caplog):
    config = make_config(tmp_path / "db", database_backend="rocksdb")
    stop = trio.Event()
    with caplog.at_level(logging.INFO, logger="matrix_conduit.server"):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, config, stop.wait)
            stop.set()

    assert 'database_backend "rocksdb": using the embedded LevelDB store' in caplog.text
    assert (tmp_path / "db" / "leveldb" / "CURRENT").exists()


@pytest.mark.parametrize(
    ("database_backend", "store"), [("leveldb", "leveldb/CURRENT"), ("sqlite", "conduit.db")]
)
async def test_server_serves_either_backend(tmp_path, database_backend, store):
    config = make_config(tmp_path / "db", database_backend=database_backend)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve, config, stop.wait)
        async with httpx.AsyncClient(base_url=running.urls[0]) as client:
            response = await client.get("/_matrix/client/versions")
        stop.set()
    assert response.status_code == 200
    assert (tmp_path / "db" / store).exists()
