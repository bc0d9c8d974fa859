"""The key cache: kept while valid, refetched after, rate-limited for unknown key ids.

Spec: `content/server-server-api.md` § Retrieving server keys (`valid_until_ts`:
"the duration for which the keys are valid"; servers cache keys and fetch
again once that has passed). The fetching side here is a `Federation` over
its own database with a clock the test moves; the peer is a real server.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from matrix_conduit.config import build_config
from matrix_conduit.core.server_keys import own_server_keys
from matrix_conduit.core.signing import generate_signing_key, key_id_of
from matrix_conduit.service.clock import now_ms
from matrix_conduit.service.federation import Federation
from matrix_conduit.service.federation.key_ring import FAILURE_MIN_MS, REFETCH_INTERVAL_MS
from matrix_conduit.service.globals import Globals
from matrix_conduit.service.outgoing_http import OutgoingHttp
from matrix_conduit.storage import open_database
from tests.support.federation import free_port_on, restart, start_federating
from tests.support.service_parts import FakeClock

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
async def fetcher(tmp_path) -> AsyncIterator[tuple[Federation, FakeClock]]:
    """A federation stack of a server that is never started: only its key ring is used."""
    config = build_config(
        {
            "server_name": "127.0.0.9:9",
            "database_backend": "leveldb",
            "database_path": str(tmp_path / "fetcher"),
            "trusted_servers": [],
            "federation_ip_range_allowlist": ["127.0.0.0/8"],
        }
    )
    clock = FakeClock(now_ms())
    with open_database("leveldb", config.database_path) as db:
        http = OutgoingHttp(config)
        yield Federation(config, db, Globals(db, config.server_name), http, clock=clock), clock
        await http.aclose()


async def test_cached_keys_serve_while_valid_and_expire_after(nursery, ca, tmp_path, fetcher):
    federation, clock = fetcher
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    key_id = b.server.services.globals.signing_key_id
    ring = federation.key_ring

    fetched = await ring.verify_keys_for(b.name, [key_id], clock())
    await b.stop()
    cached = await ring.verify_keys_for(b.name, [key_id], clock())
    clock.advance(2 * DAY_MS)
    expired = await ring.verify_keys_for(b.name, [key_id], clock())

    assert list(fetched) == list(cached) == [key_id]
    assert expired == {}, "past valid_until_ts the cached key is no good for new signatures"
    assert list(await ring.verify_keys_for(b.name, [key_id], clock() - 2 * DAY_MS)) == [key_id]


async def test_an_unknown_key_id_is_refetched_at_most_once_per_interval(
    nursery, ca, tmp_path, fetcher
):
    federation, clock = fetcher
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    ring = federation.key_ring
    await ring.verify_keys_for(b.name, [b.server.services.globals.signing_key_id], clock())
    b.server.services.globals.rotate_signing_key(now_ms())
    new_key_id = b.server.services.globals.signing_key_id

    too_soon = await ring.verify_keys_for(b.name, [new_key_id], clock())
    clock.advance(REFETCH_INTERVAL_MS)
    later = await ring.verify_keys_for(b.name, [new_key_id], clock())

    assert too_soon == {}
    assert list(later) == [new_key_id]


async def test_a_failed_fetch_is_not_repeated_until_its_backoff_has_passed(
    nursery, ca, tmp_path, fetcher
):
    federation, clock = fetcher
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    key_id = b.server.services.globals.signing_key_id
    await b.stop()
    ring = federation.key_ring

    while_down = await ring.verify_keys_for(b.name, [key_id], clock())
    b = await restart(nursery, b)
    backed_off = await ring.verify_keys_for(b.name, [key_id], clock())
    clock.advance(FAILURE_MIN_MS)
    after_backoff = await ring.verify_keys_for(b.name, [key_id], clock())

    assert while_down == backed_off == {}
    assert list(after_backoff) == [key_id]


async def test_concurrent_verifications_for_one_server_send_one_request(
    nursery, ca, tmp_path, fetcher
):
    federation, clock = fetcher
    address = "127.0.0.7"
    port = free_port_on(address)
    name, key = f"{address}:{port}", generate_signing_key()
    body = json.dumps(own_server_keys(name, key, {}, clock() + DAY_MS)).encode()
    requests, release = 0, trio.Event()

    async def slow_key_server(stream: trio.SSLStream) -> None:
        """A real HTTPS peer that holds its answer until the test releases it."""
        nonlocal requests
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await stream.receive_some()
            if not chunk:
                return
            received += chunk
        requests += 1
        await release.wait()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        await stream.send_all(head.encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await stream.aclose()

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*ca.certificate_for(address))
    serve = functools.partial(trio.serve_ssl_over_tcp, slow_key_server, port, tls, host=address)
    await nursery.start(serve)
    results = []

    async def verify() -> None:
        results.append(await federation.key_ring.verify_keys_for(name, [key_id_of(key)], clock()))

    async with trio.open_nursery() as burst:
        for _ in range(5):
            burst.start_soon(verify)
        await trio.testing.wait_all_tasks_blocked()
        release.set()

    assert requests == 1
    assert [list(found) for found in results] == [[key_id_of(key)]] * 5
