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
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from bench import rooms
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    run(arguments.connections, arguments.duration, arguments.warmup, arguments.rounds)


if __name__ == "__main__":
    main()
