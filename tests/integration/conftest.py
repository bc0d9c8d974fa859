"""Fixtures of the integration tests: the probe routes for one test."""

from __future__ import annotations

import pytest

from tests.support.probe import Probe, install_probe


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Probe:
    """Test-only routes (`tests/support/probe.py`) in every server this test starts."""
    return install_probe(monkeypatch)
