"""Prometheus metrics (prometheus-client): what the server is doing, for an admin's dashboard.

Off unless `[global.metrics]` sets `port` (a listener of its own on
`address`, default 127.0.0.1, answering `/metrics`) or `path` (on the main
listener, which is public, so it needs `Authorization: Bearer <token>`).
`etc/grafana-dashboard.json` draws them.

Counted as requests are answered (app hooks):
  conduit_http_requests_total{method,endpoint,status}, endpoint being the
  route's rule (`/_matrix/client/v3/rooms/<room_id>/send/...`), never the raw
  path (ids would make a series per room); conduit_http_request_duration_seconds
  (histogram); conduit_long_polls_waiting (`/sync` and `/events` with a timeout,
  in progress); conduit_events_persisted_total (the timeline's appends).
Read when scraped (nothing kept up to date in between):
  federation queue depth and backoff per destination, rate-limit refusals,
  database size on disk, each cache's entries, bytes, hits, misses and
  evictions (`service/cache_stats.py`), and process CPU, RSS and open files
  (prometheus-client's process collector).

Each server has its own registry, so servers in one process (the tests)
never mix their figures.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import hypercorn
import hypercorn.trio
import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector
from quart import Quart, Response, g, request
from quart_trio import QuartTrio

if TYPE_CHECKING:
    from .config import MetricsConfig
    from .service import Services

log = logging.getLogger(__name__)

LONG_POLL_SUFFIXES = ("/sync", "/events")
QUEUE_COUNT_CAP = 10_000
"""Queued items counted per destination at most (a peer down for days holds many)."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerCollector:
    """Figures read from the services when Prometheus scrapes (a custom collector)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        yield from self._federation()
        yield from self._rate_limits()
        yield from self._database()
        yield from self._caches()

    def _federation(self) -> Iterator[Metric]:
        services = self._services
        depth = GaugeMetricFamily(
            "conduit_federation_queue_depth",
            f"Items queued for a destination (counted up to {QUEUE_COUNT_CAP}).",
            labels=["destination"],
        )
        failures = GaugeMetricFamily(
            "conduit_federation_backoff_failures",
            "Failures in a row of a destination with items queued (0: not backed off).",
            labels=["destination"],
        )
        retry = GaugeMetricFamily(
            "conduit_federation_backoff_retry_seconds",
            "Seconds until a backed-off destination is tried again.",
            labels=["destination"],
        )
        outbox = getattr(services, "outbox", None)
        if outbox is not None:
            now_ms = time.time() * 1000
            for destination in sorted(outbox.destinations()):
                count = 0
                for _ in outbox.items(destination):
                    count += 1
                    if count >= QUEUE_COUNT_CAP:
                        break
                depth.add_metric([destination], count)
                backoff = services.federation.destinations.backoff(destination)
                failures.add_metric([destination], backoff.failures if backoff else 0)
                wait = 0.0 if backoff is None else max(0.0, (backoff.retry_at_ms - now_ms) / 1000)
                retry.add_metric([destination], wait)
        yield from (depth, failures, retry)

    def _rate_limits(self) -> Iterator[Metric]:
        limiter = self._services.rate_limiter
        refused = CounterMetricFamily(
            "conduit_rate_limited", "Requests refused with 429 by a limit.", labels=["limit"]
        )
        for name, count in sorted(limiter.refused.items()):
            refused.add_metric([name], count)
        yield refused
        yield GaugeMetricFamily(
            "conduit_rate_limit_buckets", "Token buckets held in memory.", limiter.bucket_count()
        )

    def _database(self) -> Iterator[Metric]:
        config = self._services.config
        size = _directory_size(config.database_path)
        if config.storage_engine == "postgresql":  # database_path holds only media there
            size += self._services.db.size_on_disk()
        yield GaugeMetricFamily(
            "conduit_database_size_bytes",
            "Bytes on disk of the database and media (database_path; PostgreSQL: "
            "pg_database_size too).",
            size,
        )

    def _caches(self) -> Iterator[Metric]:
        stats = getattr(self._services, "cache_stats", None)
        if stats is None:
            return
        report = stats.report()
        families: dict[str, Any] = {
            "entries": GaugeMetricFamily(
                "conduit_cache_entries", "Entries in a cache.", labels=["cache"]
            ),
            "bytes": GaugeMetricFamily(
                "conduit_cache_bytes", "Estimated bytes a cache holds.", labels=["cache"]
            ),
            "hits": CounterMetricFamily(
                "conduit_cache_hits", "Cache lookups found.", labels=["cache"]
            ),
            "misses": CounterMetricFamily(
                "conduit_cache_misses", "Cache lookups not found.", labels=["cache"]
            ),
            "evictions": CounterMetricFamily(
                "conduit_cache_evictions", "Entries evicted to stay in budget.", labels=["cache"]
            ),
        }
        for cache in report["caches"]:
            for key, family in families.items():
                family.add_metric([cache["name"]], cache[key] or 0)
        yield from families.values()
        yield GaugeMetricFamily(
            "conduit_cache_budget_bytes", "The caches' memory budget.", report["budget_bytes"]
        )


def _directory_size(path: str) -> int:
    total = 0
    for directory, _subdirectories, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:  # removed while we walked (a compaction)
                continue
    return total


class Metrics:
    """One server's registry and the request metrics its app hooks update."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "conduit_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "conduit_http_request_duration_seconds",
            "Time to answer a request, by route.",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.long_polls = Gauge(
            "conduit_long_polls_waiting",
            "Long-polling /sync and /events requests in progress.",
            registry=self.registry,
        )
        self.events_persisted = Counter(
            "conduit_events_persisted",
            "Events appended to rooms' timelines (local and received).",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(ServerCollector(services))
        services.rooms.timeline.appending.append(self._event_persisted)

        self._request_counters: dict[tuple[str, str, str], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}

    def count_request(self, method: str, endpoint: str, status: str, seconds: float | None) -> None:
        """One answered request (the label children are kept: `labels()` is the cost)."""
        key = (method, endpoint, status)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.requests.labels(*key)
        counter.inc()
        if seconds is not None:
            latency = self._latencies.get(key[:2])
            if latency is None:
                latency = self._latencies[key[:2]] = self.latency.labels(method, endpoint)
            latency.observe(seconds)

    def _event_persisted(self, *_hook_arguments: object) -> None:
        self.events_persisted.inc()

    def exposition(self) -> Response:
        """The registry in Prometheus' text format."""
        return Response(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST)


def _endpoint() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def install_metrics(app: Quart, services: Services, settings: MetricsConfig) -> Metrics | None:
    """Hook request metrics into `app` and serve `path` if configured; None when off."""
    if not settings.enabled:
        return None
    metrics = Metrics(services)

    @app.before_request
    async def start_timer() -> None:
        g.metrics_started = time.perf_counter()
        rule = request.url_rule
        long_poll = rule is not None and rule.rule.endswith(LONG_POLL_SUFFIXES)
        if long_poll and request.args.get("timeout", "0") not in ("", "0"):
            g.metrics_long_poll = True
            metrics.long_polls.inc()

    @app.after_request
    async def count_request(response: Response) -> Response:
        started = g.get("metrics_started")
        seconds = None if started is None else time.perf_counter() - started
        metrics.count_request(request.method, _endpoint(), str(response.status_code), seconds)
        return response

    @app.teardown_request
    async def end_long_poll(_error: BaseException | None) -> None:
        if g.pop("metrics_long_poll", False):
            metrics.long_polls.dec()

    if settings.path is not None:
        token = (settings.token or "").encode()

        async def metrics_on_main_listener() -> Response:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token):
                return Response(
                    '{"errcode":"M_UNKNOWN_TOKEN","error":"The metrics need the bearer token '
                    'of [global.metrics] token."}',
                    status=401,
                    content_type="application/json",
                )
            return metrics.exposition()

        app.add_url_rule(settings.path, "metrics", metrics_on_main_listener, methods=["GET"])
    return metrics


def metrics_app(metrics: Metrics) -> QuartTrio:
    """The app of the separate metrics listener: `/metrics`, nothing else."""
    app = QuartTrio(__name__, static_folder=None)

    @app.route("/metrics", methods=["GET"])
    async def scrape() -> Response:
        return metrics.exposition()

    return app


async def serve_metrics_listener(
    metrics: Metrics,
    settings: MetricsConfig,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `/metrics` on `settings.address:settings.port` until cancelled."""
    hyper = hypercorn.Config()
    host = f"[{settings.address}]" if ":" in settings.address else settings.address
    hyper.bind = [f"{host}:{settings.port}"]
    hyper.errorlog = logging.getLogger("hypercorn.error")
    hyper.accesslog = None
    await hypercorn.trio.serve(metrics_app(metrics), hyper, task_status=task_status)
