"""The key cache: kept while valid, refetched after, rate-limited for unknown key ids.

Spec: `content/server-server-api.md` § Retrieving server keys (`valid_until_ts`:
"the duration for which the keys are valid"; servers cache keys and fetch
again once that has passed). The fetching side here is a `Federation` over
its own database with a clock the test moves; the peer is a real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from matrix_conduit.core.server_keys import own_server_keys
from matrix_conduit.core.signing import generate_signing_key, key_id_of
from matrix_conduit.service.clock import now_ms
from matrix_conduit.service.federation import Federation
from matrix_conduit.service.federation.key_ring import FAILURE_MIN_MS, REFETCH_INTERVAL_MS
from tests.support.federation import (
    detached_federation,
    restart,
    serve_https,
    start_federating,
)
from tests.support.service_parts import FakeClock

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
async def fetcher(tmp_path) -> AsyncIterator[tuple[Federation, FakeClock]]:
    clock = FakeClock(now_ms())
    async with detached_federation(tmp_path / "fetcher", clock) as federation:
        yield federation, clock


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
    key = generate_signing_key()
    requests, release = 0, trio.Event()
    name = ""

    async def slow_key_server(method: str, path: str, body: object) -> tuple[int, object]:
        nonlocal requests
        requests += 1
        await release.wait()
        return 200, own_server_keys(name, key, {}, clock() + DAY_MS)

    name = await serve_https(nursery, ca, "127.0.0.7", slow_key_server)
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
