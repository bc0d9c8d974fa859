"""Prometheus metrics, scraped over HTTP and read with prometheus-client's own parser.

Issue #17, "Observability": off by default; on a listener of their own
(`[global.metrics] port`) or at a path of the main listener behind a bearer
token; requests by route and status with latencies, long-polls waiting,
events persisted, federation queue and backoff per destination, database
size, caches, process CPU and RSS. The format is Prometheus' text
exposition format (parsed by `prometheus_client.parser`, not by hand).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.matrix import ok, register
from tests.support.server import TestServer, free_port, make_config, serving

METRICS_TOKEN = "metrics-token-for-the-test"
METRICS_PATH = "/_conduit/metrics"


def samples(text: str) -> dict[str, list[Any]]:
    """Every sample of the exposition by name (prometheus-client's parser)."""
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list[Any]], name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    (match,) = [
        sample
        for sample in found.get(name, [])
        if all(sample.labels.get(key) == wanted for key, wanted in labels.items())
    ]
    return match.value


async def scrape_path(server: TestServer) -> dict[str, list[Any]]:
    response = await server.client.get(
        METRICS_PATH, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.text)


def path_config(tmp_path, **overrides: Any):
    metrics = {"path": METRICS_PATH, "token": METRICS_TOKEN}
    return make_config(tmp_path / "db", metrics=metrics, **overrides)


async def test_metrics_are_off_by_default(server: TestServer) -> None:
    """Without `[global.metrics]` nothing is served: the path is an unknown endpoint."""
    assert server.services is not None
    response = await server.client.get(METRICS_PATH)
    assert response.status_code == 404


async def test_the_path_on_the_main_listener_needs_the_bearer_token(nursery, tmp_path) -> None:
    """The main listener is public: no token or a wrong one is 401, the token gets the text."""
    async with serving(nursery, path_config(tmp_path)) as server:
        assert (await server.client.get(METRICS_PATH)).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await server.client.get(METRICS_PATH, headers=wrong)).status_code == 401
        found = await scrape_path(server)
    assert value(found, "process_resident_memory_bytes") > 0
    assert "process_cpu_seconds_total" in found


async def test_requests_are_counted_by_route_and_status_with_latencies(nursery, tmp_path) -> None:
    """The route's rule labels the series (not the room id), with a latency histogram."""
    async with serving(nursery, path_config(tmp_path)) as server:
        alice = await register(server)
        room_id = await alice.create_room()
        for _ in range(3):
            await alice.send(room_id)
        missing = await alice.get("/rooms/!nope:localhost/state/m.room.name/")
        assert missing.status_code in (403, 404)
        found = await scrape_path(server)
    send_route = "/_matrix/client/v3/rooms/<room_id>/send/<event_type>/<txn_id>"
    assert (
        value(found, "conduit_http_requests_total", method="PUT", endpoint=send_route, status="200")
        == 3
    )
    assert (
        value(
            found,
            "conduit_http_request_duration_seconds_count",
            method="PUT",
            endpoint=send_route,
        )
        == 3
    )
    assert (
        value(
            found,
            "conduit_http_request_duration_seconds_bucket",
            method="PUT",
            endpoint=send_route,
            le="+Inf",
        )
        == 3
    )
    assert not [s for s in found["conduit_http_requests_total"] if room_id in s.labels["endpoint"]]
    # the room's create, members, power levels... and the three messages
    assert value(found, "conduit_events_persisted_total") >= 3 + 4
    assert value(found, "conduit_database_size_bytes") > 0


async def test_a_long_poll_is_counted_while_it_waits(nursery, tmp_path) -> None:
    """`conduit_long_polls_waiting` is 1 while a `/sync?timeout=` waits, 0 after."""
    async with serving(nursery, path_config(tmp_path)) as server:
        alice = await register(server)
        since = ok(await alice.get("/sync"))["next_batch"]
        done = trio.Event()

        async def wait_in_sync() -> None:
            await alice.get("/sync", since=since, timeout=20000)
            done.set()

        nursery.start_soon(wait_in_sync)
        waiting = 0.0
        while waiting < 1:  # the sync has to reach the server first
            await trio.sleep(0.05)
            waiting = value(await scrape_path(server), "conduit_long_polls_waiting")
        await alice.create_room()  # wakes the sync
        await done.wait()
        assert value(await scrape_path(server), "conduit_long_polls_waiting") == 0


async def test_a_separate_listener_serves_metrics_and_the_main_one_does_not(
    nursery, tmp_path
) -> None:
    """`port`: `/metrics` on its own address, no token; nothing on the main listener."""
    port = free_port()
    config = make_config(tmp_path / "db", metrics={"address": "127.0.0.1", "port": port})
    async with serving(nursery, config) as server:
        assert (await server.client.get("/_matrix/client/versions")).status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/metrics")
        assert (await server.client.get("/metrics")).status_code == 404
    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "process_resident_memory_bytes") > 0
    versions = {"method": "GET", "endpoint": "/_matrix/client/versions", "status": "200"}
    assert value(found, "conduit_http_requests_total", **versions) == 1


async def test_caches_and_rate_limits_are_reported(nursery, tmp_path) -> None:
    """Cache figures (`service/cache_stats.py`) and refusals per limit after a 429."""
    rate_limits = {"enabled": True, "message": {"per_second": 0.001, "burst_count": 1}}
    async with serving(nursery, path_config(tmp_path, rate_limits=rate_limits)) as server:
        alice = await register(server)
        server.services.users.set_admin(alice.user_id, False)
        room_id = await alice.create_room()
        await alice.send(room_id)
        refused = await alice.send_event(room_id, "m.room.message", {"body": "x"})
        assert refused.status_code == 429
        found = await scrape_path(server)
    assert value(found, "conduit_rate_limited_total", limit="message") == 1
    assert found["conduit_cache_entries"], "no cache reported"
    assert value(found, "conduit_cache_budget_bytes") > 0
    assert sum(sample.value for sample in found["conduit_cache_hits_total"]) > 0


async def test_federation_queue_and_backoff_are_reported_per_destination(nursery, tmp_path) -> None:
    """A destination that never answers: its queued items and its backoff are shown."""
    down = "127.0.0.1:1"  # nothing listens on port 1
    config = path_config(
        tmp_path,
        allow_federation=True,
        server_name=f"127.0.0.1:{free_port()}",
        federation_ip_range_allowlist=["127.0.0.0/8"],
    )
    async with serving(nursery, config) as server:
        alice = await register(server)
        event_id = await alice.send(await alice.create_room())
        services = server.services
        services.federation.destinations.record_failure(down)
        with services.db.batch() as batch:
            services.outbox.queue(batch, [down], {"pdu": event_id})
        found = await scrape_path(server)
    assert value(found, "conduit_federation_queue_depth", destination=down) >= 1
    assert value(found, "conduit_federation_backoff_failures", destination=down) >= 1
    assert value(found, "conduit_federation_backoff_retry_seconds", destination=down) > 0


DASHBOARD = Path(__file__).resolve().parents[2] / "etc" / "grafana-dashboard.json"


async def test_every_metric_the_grafana_dashboard_draws_is_exported(nursery, tmp_path) -> None:
    """etc/grafana-dashboard.json names only metrics a scrape has (no panel stays empty
    because a name drifted)."""
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    drawn = {
        name for expr in expressions for name in re.findall(r"\b(?:conduit|process)_\w+", expr)
    }
    async with serving(nursery, path_config(tmp_path)) as server:
        alice = await register(server)
        await alice.send(await alice.create_room())
        response = await server.client.get(
            METRICS_PATH, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    exported = set()
    for family in text_string_to_metric_families(response.text):
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
        if family.type in ("counter", "histogram"):
            exported.update(f"{family.name}{suffix}" for suffix in ("_total", "_bucket"))
    assert drawn and drawn <= exported, sorted(drawn - exported)
