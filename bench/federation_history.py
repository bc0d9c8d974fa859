"""`python -m bench federation_history`: backfilling a room's history over federation, measured.

For each pair (A holds the room's history, B fetches it): matrix-conduit ↔
matrix-conduit and Synapse ↔ Synapse by default, ours ↔ Synapse both ways on
request; each server is its own process on its own 127.0.0.x address over TLS
(the servers of `bench/federation.py`). A's user creates a public room and
sends `--messages` (1000) messages; then B's user joins it over federation, so
B holds nothing of that history. The measured window: B's user pages back with
`GET /messages?dir=b&limit=--page` (100) from the newest event, following `end`,
until the answer has no `end` (the start of the room). B has to fetch it all
from A (`/backfill`, and what checking it needs), so the window is what
backfilling costs:

- wall time of the window, and messages per second of it;
- B's CPU time over the window (user + system, from /proc): the fetching
  server's cost, the number to compare;
- whether every message arrived once, in the order sent, and `m.room.create`
  was reached.

Issue 12 asks for these numbers (backfilling 1,000 messages), with Synapse ↔
Synapse on this machine as the reference.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio

from bench.federation import (
    ADDRESSES,
    CLIENT,
    PAIRS,
    CannotRun,
    Homeserver,
    join_remotely,
    our_server,
    register,
    send_message,
    synapse_server,
)
from bench.versions import cpu_seconds
from tests.support.federation_ca import FederationCa, new_ca

DEFAULT_PAIRS = ["ours-ours", "synapse-synapse"]
SEND_CONCURRENCY = 1
"""Messages in flight while A's history is written: one, so the history is a line (with
more, same-depth forks may be ordered differently by each server, and "in order" would
compare tie-breaks rather than correctness)."""
MAX_PAGES = 1000
PAGE_TIMEOUT_SECONDS = 300.0


@dataclass
class HistoryResult:
    name: str
    kinds: tuple[str, str]
    messages: int
    write_seconds: float = 0.0
    join_seconds: float | None = None
    wall_seconds: float | None = None
    b_cpu_seconds: float | None = None
    pages: int = 0
    received: int = 0
    in_order: bool = False
    create_reached: bool = False
    skipped: list[str] = field(default_factory=list)


async def write_history(a: Homeserver, token: str, room_id: str, messages: int) -> list[str]:
    """`messages` messages in A's room, `SEND_CONCURRENCY` at a time; their bodies."""
    texts = [f"history {n}" for n in range(messages)]
    limiter = trio.CapacityLimiter(SEND_CONCURRENCY)
    async with a.client(token) as client:

        async def send(n: int) -> None:
            async with limiter:
                await send_message(client, room_id, f"h{n}-{time.time_ns()}", texts[n])

        async with trio.open_nursery() as nursery:
            for n in range(messages):
                nursery.start_soon(send, n)
    return texts


async def read_back(b: Homeserver, token: str, room_id: str, page: int) -> tuple[list[Any], int]:
    """Every event B's user gets paging back to the start; (events oldest first, pages)."""
    events: list[Any] = []
    path = f"{CLIENT}/rooms/{quote(room_id, safe='')}/messages"
    params: dict[str, Any] = {"dir": "b", "limit": page}
    pages = 0
    async with b.client(token) as client:
        while pages < MAX_PAGES:
            pages += 1
            answer = await client.get(path, params=params, timeout=PAGE_TIMEOUT_SECONDS)
            if answer.status_code != 200:
                raise CannotRun(f"/messages: {b.kind} answered {answer.status_code}")
            body = answer.json()
            events.extend(body.get("chunk", []))
            if "end" not in body:
                break
            params["from"] = body["end"]
    events.reverse()
    return events, pages


def message_bodies(events: list[Any]) -> list[str]:
    return [
        event["content"]["body"]
        for event in events
        if event.get("type") == "m.room.message" and "body" in event.get("content", {})
    ]


async def _run_pair(a: Homeserver, b: Homeserver, result: HistoryResult, page: int) -> None:
    async with a.client() as client_a, b.client() as client_b:
        alice = await register(a, client_a, "alice")
        bob = await register(b, client_b, "bob")
    async with a.client(alice) as client:
        answer = await client.post(f"{CLIENT}/createRoom", json={"preset": "public_chat"})
        answer.raise_for_status()
        room_id = answer.json()["room_id"]
    started = time.perf_counter()
    sent = await write_history(a, alice, room_id, result.messages)
    result.write_seconds = time.perf_counter() - started
    try:
        result.join_seconds = await join_remotely(b, bob, room_id, a)
    except CannotRun as missing:
        result.skipped.append(f"everything: needs {missing}")
        return
    cpu_before = cpu_seconds(b.pid)
    started = time.perf_counter()
    events, result.pages = await read_back(b, bob, room_id, page)
    result.wall_seconds = time.perf_counter() - started
    result.b_cpu_seconds = cpu_seconds(b.pid) - cpu_before
    bodies = message_bodies(events)
    result.received = len(set(bodies) & set(sent))
    in_a, _ = await read_back(a, alice, room_id, page)  # A's own order: nothing to fetch
    result.in_order = bodies == message_bodies(in_a) and len(bodies) == len(sent)
    result.create_reached = bool(events) and events[0].get("type") == "m.room.create"


def run_pair(
    name: str, directory: Path, ca: FederationCa, messages: int, page: int
) -> HistoryResult:
    kind_a, kind_b = PAIRS[name]
    starters = {"ours": our_server, "synapse": synapse_server}
    with ExitStack() as servers:
        a = servers.enter_context(starters[kind_a](ca, directory / "a", ADDRESSES[kind_a][0]))
        b = servers.enter_context(starters[kind_b](ca, directory / "b", ADDRESSES[kind_b][1]))
        result = HistoryResult(name, (a.kind, b.kind), messages)
        trio.run(_run_pair, a, b, result, page)
    return result


def report(result: HistoryResult) -> None:
    a_kind, b_kind = result.kinds
    print(f"federation_history {result.name}: {b_kind} (B) backfills from {a_kind} (A)")
    print(f"  load average (1 min)       {os.getloadavg()[0]:6.1f}   (above the cores: all slower)")
    print(f"  A wrote {result.messages} messages   {result.write_seconds:6.1f} s")
    if result.join_seconds is not None:
        print(f"  B joined                   {result.join_seconds * 1000:6.0f} ms")
    if result.wall_seconds is not None and result.b_cpu_seconds is not None:
        rate = result.received / result.wall_seconds if result.wall_seconds else 0.0
        print(
            f"  backfill wall time         {result.wall_seconds:6.2f} s"
            f"   ({rate:.0f} messages/s, {result.pages} pages)"
        )
        per_message = result.b_cpu_seconds * 1000 / max(result.received, 1)
        print(
            f"  B's CPU over it            {result.b_cpu_seconds:6.2f} s"
            f"   ({per_message:.2f} ms per message)"
        )
        print(
            f"  arrived                    {result.received:6d} of {result.messages}"
            f"   in order: {'yes' if result.in_order else 'NO'},"
            f" m.room.create reached: {'yes' if result.create_reached else 'NO'}"
        )
    for reason in result.skipped:
        print(f"  cannot run: {reason}")


def measure(pairs: list[str], messages: int, page: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-history-") as directory:
        ca = new_ca(Path(directory) / "ca")
        for name in pairs:
            report(run_pair(name, Path(directory) / name, ca, messages, page))


def run(*, connections: int, duration: float, warmup: float) -> None:
    del connections, duration, warmup  # fixed by the issue: 1,000 messages
    measure(DEFAULT_PAIRS, messages=1000, page=100)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.federation_history", description=__doc__)
    parser.add_argument("pairs", nargs="*", metavar="PAIR", help=", ".join(PAIRS))
    parser.add_argument("--messages", type=int, default=1000, help="A's history, in messages")
    parser.add_argument("--page", type=int, default=100, help="B's /messages limit")
    arguments = parser.parse_args()
    unknown = sorted(set(arguments.pairs) - set(PAIRS))
    if unknown:
        parser.error(f"unknown pair {', '.join(unknown)} (known: {', '.join(PAIRS)})")
    measure(arguments.pairs or DEFAULT_PAIRS, arguments.messages, arguments.page)


if __name__ == "__main__":
    main()
