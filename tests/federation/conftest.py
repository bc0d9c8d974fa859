"""Fixtures of the federation tests: a trusted CA, our servers on 127.0.0.x over TLS, Synapse."""

from __future__ import annotations

import pytest

from tests.support.federation import FederationCa, install_signed_echo, trusted_ca
from tests.support.synapse_fixtures import (  # noqa: F401  (fixtures and a hook for these tests)
    both,
    pytest_runtest_makereport,
    synapse,
    synapse_server,
)


@pytest.fixture
def ca(tmp_path, monkeypatch: pytest.MonkeyPatch) -> FederationCa:
    """The test's CA (trusted via SSL_CERT_FILE), and the signed echo route in every server."""
    install_signed_echo(monkeypatch)
    return trusted_ca(tmp_path / "ca", monkeypatch)
