"""Fixtures shared by every test: a running server and its HTTP client."""

from __future__ import annotations

import pytest
import trio

from tests.support.server import TestServer, make_config, start_server


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path) -> TestServer:
    """The real server on 127.0.0.1 with a fresh LevelDB database."""
    test_server = await start_server(nursery, make_config(tmp_path / "db"))
    yield test_server
    await test_server.client.aclose()
    await test_server.stop()
