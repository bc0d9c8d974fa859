"""`python -m bench [NAME...]`: run the named benchmarks, or all of them."""

from __future__ import annotations

import argparse

from . import (
    federation,
    federation_history,
    federation_join,
    memory,
    rooms,
    sliding_sync,
    sync,
    versions,
)

BENCHMARKS = {
    "versions": versions,
    "rooms": rooms,
    "sync": sync,
    "sliding_sync": sliding_sync,
    "federation": federation,
    "federation_join": federation_join,
    "federation_history": federation_history,
    "memory": memory,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per app")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before that")
    arguments = parser.parse_args()
    unknown = sorted(set(arguments.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    for name in arguments.names or BENCHMARKS:
        BENCHMARKS[name].run(
            connections=arguments.connections,
            duration=arguments.duration,
            warmup=arguments.warmup,
        )


main()
