"""Fixtures shared by every test: a running server and its HTTP client."""

from __future__ import annotations

import os

import pytest
import trio

from tests.support.postgres import BACKEND_VARIABLE
from tests.support.server import TestServer, make_config, start_server


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["leveldb", "postgresql"],
        default="leveldb",
        help="database of the test servers make_config builds (postgresql: a cluster "
        "started by tests/support/postgres.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--backend") == "postgresql":
        os.environ[BACKEND_VARIABLE] = "postgresql"


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path) -> TestServer:
    """The real server on 127.0.0.1 with a fresh LevelDB database."""
    test_server = await start_server(nursery, make_config(tmp_path / "db"))
    yield test_server
    await test_server.client.aclose()
    await test_server.stop()
