"""Test-only routes served by the real server, for behaviour no product route shows yet.

The foundation has no endpoint that reads a body, raises or takes its time;
the app's error handling, body limit, CORS and graceful shutdown must still be
proven on such requests. `install_probe` adds these routes to the product's
blueprints (monkeypatched into `matrix_conduit.app`), so the server under test
is otherwise exactly the real one, started by `serve`: for one test (the
`probe` fixture of `tests/integration/conftest.py`) or, with `shared_probe`,
for every server a module starts, including its shared servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from quart import Blueprint

from matrix_conduit import app as app_module
from matrix_conduit.api import blueprints as product_blueprints
from matrix_conduit.api.request import json_object

CRASH_DETAIL = "probe-secret-4711"
"""Text of the exception the crash route raises: a client must never see it."""


@dataclass
class Probe:
    """What the probe routes did, and a gate that holds the slow route."""

    calls: list[str] = field(default_factory=list)
    slow_started: trio.Event = field(default_factory=trio.Event)
    release_slow: trio.Event = field(default_factory=trio.Event)

    def blueprint(self) -> Blueprint:
        blueprint = Blueprint("probe", __name__)

        @blueprint.post("/_probe/json")
        async def echo_json() -> dict:
            self.calls.append("json")
            return {"received": await json_object()}

        @blueprint.route("/_probe/crash", methods=["GET", "POST"])
        async def crash() -> dict:
            self.calls.append("crash")
            raise RuntimeError(CRASH_DETAIL)

        @blueprint.get("/_probe/slow")
        async def slow() -> dict:
            self.calls.append("slow")
            self.slow_started.set()
            await self.release_slow.wait()
            return {"finished": True}

        return blueprint


def install_probe(monkeypatch: pytest.MonkeyPatch) -> Probe:
    """Make every app created from now on (until `monkeypatch` undoes it) serve the probes."""
    probe = Probe()
    monkeypatch.setattr(
        app_module, "blueprints", lambda: [*product_blueprints(), probe.blueprint()]
    )
    return probe


def shared_probe() -> Any:
    """A module's `probe` fixture: installed for the whole module, before any server starts.

    Use it with `tests.support.shared_server.shared_server_fixtures`; the probe
    outlives single tests, so a test that checks `calls` clears it first.
    """

    @pytest.fixture(scope="module", autouse=True, name="probe")
    def probe_fixture() -> Iterator[Probe]:
        with pytest.MonkeyPatch.context() as monkeypatch:
            yield install_probe(monkeypatch)

    return probe_fixture
