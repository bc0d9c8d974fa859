"""Pytest fixtures for Synapse as a federation peer (`tests/support/synapse.py` runs it).

Apart from the rest so that `tests/support/synapse.py` needs no pytest
(`bench/federation.py` runs Synapse too). `synapse_server` is module-scoped
(a cold start with schema creation takes seconds); `synapse` is the per-test
view of it that also points `SSL_CERT_FILE` at its CA. When a test that used
it fails, the report gets the part of Synapse's log written during that test.
Imported by `tests/federation/conftest.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.federation_ca import new_ca
from tests.support.synapse import Synapse, running_synapse
from tests.support.synapse_rooms import Peers, interop

_LOG_START = pytest.StashKey[tuple[Synapse, int]]()


@pytest.fixture(scope="module")
def synapse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """One Synapse (and the CA both sides trust) for every test of a module."""
    directory = tmp_path_factory.mktemp("synapse")
    ca = new_ca(directory / "ca")
    with running_synapse(ca, directory / "synapse") as synapse:
        yield synapse


@pytest.fixture
def synapse(
    synapse_server: Synapse, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Synapse:
    """The module's Synapse, with `SSL_CERT_FILE` naming its CA for this test.

    Start our servers with `synapse.ca` (not the `ca` fixture, whose CA
    Synapse does not trust): `start_federating(nursery, synapse.ca, ...)`.
    """
    synapse_server.check_running()
    monkeypatch.setenv("SSL_CERT_FILE", str(synapse_server.ca.certificate_path))
    request.node.stash[_LOG_START] = (synapse_server, synapse_server.log_size())
    return synapse_server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used `synapse` shows what Synapse logged meanwhile."""
    outcome = yield
    report = outcome.get_result()
    started = item.stash.get(_LOG_START, None)
    if started is not None and report.failed and report.when in ("call", "setup"):
        synapse, since = started
        report.sections.append((f"Synapse {synapse.server_name} log", synapse._tail(since)))


@pytest.fixture
async def both(nursery, synapse: Synapse, tmp_path, caplog) -> AsyncIterator[Peers]:
    """One server of ours and the module's Synapse, federating; our log checked after."""
    async with interop(nursery, synapse, tmp_path / "us", caplog) as pair:
        yield pair
