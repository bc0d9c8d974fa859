"""`python -m bench.observability`: what the request log and the metrics cost on sends.

Issue #17's target: the request log (`log = "info"`, one line per request
to a file, as journald would take it) and Prometheus metrics (request hooks
on, `[global.metrics] path`) together cost under 5% of send throughput.
Each variant is `bench.rooms.measure` (eight senders in a closed loop on
one room, the real server as a child process) with only the config
changed; the variants run in turns, `--rounds` times, so a neighbour's load
on the machine falls on all of them alike. Reported: messages/s and server
CPU per message (the steadier figure on a shared machine), the median over
the rounds, and each variant against the baseline.

On a machine others load too, whole-server throughput swings by more than
the effect measured, so `--hooks` measures the hooks alone: the app in this
process (Quart's test client, no sockets), `GET /_matrix/client/versions`
in a loop, CPU time per request with each variant, the fastest of
`--rounds` rounds in turns (the least disturbed); the difference to the
baseline is what the log line and the metrics add to every request,
compared then with the CPU a message costs in `bench.rooms`.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from bench import rooms
from matrix_conduit.app import create_app
from matrix_conduit.config import build_config
from matrix_conduit.logs import OneLineFormatter
from matrix_conduit.service import Services
from matrix_conduit.storage import open_database
from tests.support import process

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"log": "warn"},
    "request log": {"log": "info"},
    "metrics": {"log": "warn", "metrics": {"path": "/_conduit/metrics", "token": "bench"}},
    "both": {"log": "info", "metrics": {"path": "/_conduit/metrics", "token": "bench"}},
}


def _measure(variant: dict[str, Any], senders: int, duration: float, warmup: float) -> Any:
    def write_config(directory: Path, **overrides: Any) -> Path:
        return process.write_config(directory, **{**overrides, **variant})

    original = rooms.write_config
    rooms.write_config = write_config
    try:
        return rooms.measure(senders, duration, warmup, total_messages=1, rooms=1)
    finally:
        rooms.write_config = original


def run(connections: int = 8, duration: float = 10.0, warmup: float = 2.0, rounds: int = 3) -> None:
    results: dict[str, list[Any]] = {name: [] for name in VARIANTS}
    for round_number in range(rounds):
        for name, variant in VARIANTS.items():
            result = _measure(variant, connections, duration, warmup)
            results[name].append(result)
            print(
                f"round {round_number + 1} {name:12} {result.messages_per_second:7.1f} msg/s "
                f"{result.cpu_ms_per_message:6.2f} ms CPU/msg errors={result.errors}",
                flush=True,
            )
    base_rate = statistics.median(r.messages_per_second for r in results["baseline"])
    base_cpu = statistics.median(r.cpu_ms_per_message for r in results["baseline"])
    print(f"\nmedians over {rounds} rounds, {connections} senders, {duration:g} s each")
    for name, measured in results.items():
        rate = statistics.median(r.messages_per_second for r in measured)
        cpu = statistics.median(r.cpu_ms_per_message for r in measured)
        print(
            f"{name:12} {rate:7.1f} msg/s ({(rate / base_rate - 1) * 100:+5.1f}%)  "
            f"{cpu:6.2f} ms CPU/msg ({(cpu / base_cpu - 1) * 100:+5.1f}%)"
        )


HOOK_REQUESTS = 500


async def _cpu_per_request(app: Any, count: int) -> float:
    client = app.test_client()
    started = time.process_time()
    for _ in range(count):
        response = await client.get("/_matrix/client/versions")
        assert response.status_code == 200
    return (time.process_time() - started) / count


def run_hooks(rounds: int) -> None:
    """CPU per request of the app with each variant (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as directory:
        log_file = Path(directory) / "requests.log"
        handler = logging.FileHandler(log_file)
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        request_log = logging.getLogger("matrix_conduit.request_log")
        request_log.addHandler(handler)
        request_log.propagate = False
        apps = {}
        databases = []
        for name, variant in VARIANTS.items():
            values = {
                "server_name": "localhost",
                "database_backend": "leveldb",
                "database_path": str(Path(directory) / name.replace(" ", "_")),
                "metrics": variant.get("metrics", {}),
            }
            config = build_config(values)
            db = open_database("leveldb", config.database_path)
            databases.append(db)
            apps[name] = (create_app(config, Services(config, db)), variant["log"])
        best = {name: float("inf") for name in apps}

        async def measure_all() -> None:
            for _ in range(rounds):
                for name, (app, level) in apps.items():
                    request_log.setLevel(logging.INFO if level == "info" else logging.WARNING)
                    best[name] = min(best[name], await _cpu_per_request(app, HOOK_REQUESTS))

        trio.run(measure_all)
        for db in databases:
            db.close()
        handler.close()
        lines = sum(1 for _ in log_file.open())
    base = best["baseline"]
    print(f"CPU per request, fastest of {rounds} rounds of {HOOK_REQUESTS} (log lines: {lines})")
    for name, seconds in best.items():
        print(f"{name:12} {seconds * 1e6:7.1f} µs  (+{(seconds - base) * 1e6:5.1f} µs)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hooks", action="store_true", help="the hooks alone, in process")
    arguments = parser.parse_args()
    if arguments.hooks:
        run_hooks(arguments.rounds)
    else:
        run(arguments.connections, arguments.duration, arguments.warmup, arguments.rounds)


if __name__ == "__main__":
    main()
