"""A federating server builds its federation HTTP client at startup, not on the first request.

Spec: none (a cost, not a behaviour): the TLS context with the CA store and
httpx's transport take tens of milliseconds of CPU; the first federation
request after a start (often a user's remote join) paid them. Issue 12's
join benchmark (`bench/federation_join.py`) measures that request.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from matrix_conduit.service import Services
from matrix_conduit.service.outgoing_http import OutgoingHttp
from matrix_conduit.storage import open_database
from tests.support.server import make_config


async def test_warm_up_builds_the_client_federation_requests_then_use(tmp_path: Path) -> None:
    http = OutgoingHttp(make_config(tmp_path / "db"))
    await http.warm_up()
    try:
        client = http._verified_clients.get(None)
        assert client is not None
        assert http._verified_client(None) is client
    finally:
        await http.aclose()


@pytest.mark.parametrize("allow_federation", [True, False])
def test_only_a_federating_server_warms_the_federation_client_up(
    tmp_path: Path, allow_federation: bool
) -> None:
    config = make_config(tmp_path / "db", allow_federation=allow_federation)
    db = open_database("leveldb", str(tmp_path / "db"))
    try:
        services = Services(config, db)
        warmed = [
            task
            for task in services.background_tasks
            if getattr(task, "__func__", None) is OutgoingHttp.warm_up
        ]
        assert len(warmed) == (1 if allow_federation else 0)
        trio.run(services.outgoing_http.aclose)
    finally:
        db.close()
