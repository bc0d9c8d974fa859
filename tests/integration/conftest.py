"""Fixtures of the integration tests: the real server, plus test-only probe routes."""

from __future__ import annotations

import pytest

from tests.support.probe import Probe, install_probe
from tests.support.server import TestServer


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Probe:
    return install_probe(monkeypatch)


@pytest.fixture
def probe_server(probe: Probe, server: TestServer) -> TestServer:
    """The real server, also serving the probe routes (`tests/support/probe.py`).

    `probe` comes first in the arguments, so the routes are installed before
    `server` creates the app.
    """
    return server
