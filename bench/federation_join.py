"""`python -m bench federation_join`: joining a big room that lives on another server.

Issue 12's benchmark: a room with `--members` (1,000) members and `--events`
(5,000) events lives on server A; a user of server B joins it over
federation. Measured on B, its own process (so the figures are its own):

- the time from the client's `POST /join` to the `/sync` answer that shows
  the room under `join` (a client long-polling with lazy-loaded members, as
  Element does), and the `/join` answer's own time;
- the time until B lists every member (`GET /members?membership=join` has all
  of them): Synapse joins with partial state (MSC3706, "faster joins") and
  fetches the rest of the room's state in the background, and its
  `/members` waits for that; ours has the whole state when `/join` answers;
- B's CPU time (/proc/PID/stat) over both windows, A's over the first;
- B's peak RSS (VmHWM of /proc/PID/status, the process's high-water mark
  since it started) and its RSS just before the join.

Cases, `A-B`: `ours-ours`, `synapse-synapse`, `synapse-ours` (ours joining a
room on Synapse). The room on A is built once per kind of A and joined by
each B in turn, each B a fresh server: A gets one creator and `--members` - 1
other users (registered over HTTP, several at a time, no password on ours so
no argon2 per account, bcrypt at 4 rounds on Synapse), who all join; then
8 of them join and send messages until joins plus messages make `--events`,
then the others join (messages first: Synapse's push rules per message cost
per member). The servers
are started as `bench/federation.py` starts them (their own 127.0.0.x, TLS
from one throwaway CA, LevelDB for ours, SQLite for Synapse).

Target (issue 12): ours at least as fast as Synapse joining the same room
on this machine, with less memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import trio

from bench.federation import (
    CLIENT,
    PASSWORD,
    Homeserver,
    our_server,
    send_message,
    synapse_server,
)
from bench.versions import cpu_seconds
from tests.support.federation_ca import FederationCa, new_ca

A_ADDRESSES = {"ours": "127.0.0.23", "synapse": "127.0.0.53"}
B_FIRST_HOST = {"ours": 30, "synapse": 60}
"""127.0.0.N of the first B of each kind, N + 1 for the next: each B has a server name
of its own (a later B on an earlier one's port would be another server of that name)."""
MAX_REPEAT = 30
CASES = {
    "ours-ours": ("ours", "ours"),
    "synapse-synapse": ("synapse", "synapse"),
    "synapse-ours": ("synapse", "ours"),
}
"""(A, B): A holds the room, B's user joins it."""
SETUP_CONCURRENCY = 8
MESSAGE_SENDERS = 8
"""Members who send the messages (they join first); at most `--members`."""
JOIN_LIMIT_SECONDS = 600.0
"""How long the join (and then the full member list) may take before the case gives up."""
LEAVE_LIMIT_SECONDS = 30.0
SYNC_FILTER = (
    '{"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]},'
    '"room":{"timeline":{"limit":10},"state":{"lazy_load_members":true},'
    '"ephemeral":{"not_types":["*"]},"account_data":{"not_types":["*"]}}}'
)

Starter = Callable[[FederationCa, Path, str], AbstractContextManager[Homeserver]]
STARTERS: dict[str, Starter] = {"ours": our_server, "synapse": synapse_server}


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, KiB, from /proc/PID/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


# ---- building the room on A


async def _register(server: Homeserver, client: httpx.AsyncClient, localpart: str) -> str:
    body: dict[str, Any] = {"username": localpart, "auth": {"type": "m.login.dummy"}}
    if server.kind == "Synapse":
        body["password"] = PASSWORD  # Synapse wants one; ours hashes it with argon2
    answer = await client.post(f"{CLIENT}/register", json=body)
    if answer.status_code != 200:
        raise RuntimeError(f"{server.kind} refused to register {localpart}: {answer.text}")
    return answer.json()["access_token"]


async def _each(count: int, job: Callable[[int], Any]) -> list[Any]:
    """`job(0..count-1)`, `SETUP_CONCURRENCY` at a time; their results in order."""
    results: list[Any] = [None] * count
    limiter = trio.CapacityLimiter(SETUP_CONCURRENCY)

    async def one(index: int) -> None:
        async with limiter:
            results[index] = await job(index)

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return results


@dataclass
class BuiltRoom:
    room_id: str
    creator_token: str
    members: int
    events: int
    register_seconds: float
    join_seconds: float
    message_seconds: float


async def build_room(a: Homeserver, members: int, events: int) -> BuiltRoom:
    """A public room on A with `members` joined users and `events` joins + messages.

    The messages come first: Synapse evaluates every member's push rules for
    each message, so sending them into the full room takes it an hour.
    """
    started = time.perf_counter()
    async with a.client() as client:
        tokens = await _each(members, lambda n: _register(a, client, f"member{n}"))
    registered = time.perf_counter()
    async with a.client(tokens[0]) as client:
        answer = await client.post(
            f"{CLIENT}/createRoom", json={"preset": "public_chat", "name": "big room"}
        )
        answer.raise_for_status()
        room_id = answer.json()["room_id"]

    async def join(index: int) -> None:
        async with a.client(tokens[index]) as client:
            answer = await client.post(f"{CLIENT}/join/{quote(room_id, safe='')}", json={})
            answer.raise_for_status()

    senders = min(MESSAGE_SENDERS, members)
    await _each(senders - 1, lambda n: join(n + 1))
    messages = max(0, events - members)
    per_sender = -(-messages // senders)

    async def send(index: int) -> None:
        first = index * per_sender
        async with a.client(tokens[index]) as client:
            for number in range(first, min(first + per_sender, messages)):
                await send_message(client, room_id, f"fill-{number}", f"message {number}")

    async with trio.open_nursery() as nursery:
        for index in range(senders):
            nursery.start_soon(send, index)
    sent = time.perf_counter()
    await _each(members - senders, lambda n: join(n + senders))
    return BuiltRoom(
        room_id,
        tokens[0],
        members,
        members + messages,
        registered - started,
        time.perf_counter() - sent,
        sent - registered,
    )


# ---- the join on B


@dataclass
class JoinResult:
    b_kind: str
    join_answer_seconds: float = 0.0
    sync_seconds: float = 0.0
    members_seconds: float = 0.0
    members_seen: int = 0
    b_cpu_to_sync: float = 0.0
    b_cpu_to_members: float = 0.0
    a_cpu_to_sync: float = 0.0
    rss_before_kib: int = 0
    peak_rss_kib: int = 0
    failure: str | None = None


async def _sync_until_joined(b: Homeserver, token: str, room_id: str, since: str) -> None:
    async with b.client(token) as client:
        while True:
            answer = await client.get(
                f"{CLIENT}/sync",
                params={"filter": SYNC_FILTER, "timeout": "30000", "since": since},
                timeout=60,
            )
            answer.raise_for_status()
            body = answer.json()
            if room_id in body.get("rooms", {}).get("join", {}):
                return
            since = body["next_batch"]


async def _joined_members(b: Homeserver, token: str, room_id: str) -> int:
    async with b.client(token) as client:
        answer = await client.get(
            f"{CLIENT}/rooms/{quote(room_id, safe='')}/members",
            params={"membership": "join"},
            timeout=JOIN_LIMIT_SECONDS,
        )
        answer.raise_for_status()
        return len(answer.json()["chunk"])


async def join_on(a: Homeserver, b: Homeserver, room: BuiltRoom) -> JoinResult:
    result = JoinResult(b.kind)
    async with b.client() as client:
        token = await _register(b, client, "joiner")
    async with b.client(token) as client:
        answer = await client.get(f"{CLIENT}/sync", params={"filter": SYNC_FILTER, "timeout": "0"})
        answer.raise_for_status()
        since = answer.json()["next_batch"]
    await trio.sleep(2.0)  # let a fresh Synapse's background updates settle
    result.rss_before_kib = memory_kib(b.pid)["VmRSS"]
    b_cpu, a_cpu = cpu_seconds(b.pid), cpu_seconds(a.pid)
    started = time.perf_counter()
    join_failure: list[str] = []

    async def post_join() -> None:
        async with b.client(token) as client:
            answer = await client.post(
                f"{CLIENT}/join/{quote(room.room_id, safe='')}",
                params={"server_name": a.server_name, "via": a.server_name},
                json={},
                timeout=JOIN_LIMIT_SECONDS,
            )
        result.join_answer_seconds = time.perf_counter() - started
        if answer.status_code != 200:
            join_failure.append(f"/join answered {answer.status_code} {answer.text[:300]}")
            nursery.cancel_scope.cancel()

    with trio.move_on_after(JOIN_LIMIT_SECONDS) as limit:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_join)
            await _sync_until_joined(b, token, room.room_id, since)
            result.sync_seconds = time.perf_counter() - started
            result.b_cpu_to_sync = cpu_seconds(b.pid) - b_cpu
            result.a_cpu_to_sync = cpu_seconds(a.pid) - a_cpu
    if join_failure or limit.cancelled_caught:
        result.failure = join_failure[0] if join_failure else "no join within the limit"
        return result
    result.members_seen = await _joined_members(b, token, room.room_id)
    result.members_seconds = time.perf_counter() - started
    result.b_cpu_to_members = cpu_seconds(b.pid) - b_cpu
    result.peak_rss_kib = memory_kib(b.pid)["VmHWM"]
    await _leave(a, b, token, room)
    return result


async def _leave(a: Homeserver, b: Homeserver, token: str, room: BuiltRoom) -> None:
    """B's user leaves, and A has seen it (or `LEAVE_LIMIT_SECONDS` passed), before B stops:
    a later B joining with partial state (Synapse) fetches the rest of the state from the
    room's other servers, and a stopped one never answers."""
    room_path = f"{CLIENT}/rooms/{quote(room.room_id, safe='')}"
    async with b.client(token) as client:
        user_id = (await client.get(f"{CLIENT}/account/whoami")).json()["user_id"]
        await client.post(f"{room_path}/leave", json={})
    async with a.client(room.creator_token) as client:
        with trio.move_on_after(LEAVE_LIMIT_SECONDS):
            while True:
                answer = await client.get(
                    f"{room_path}/state/m.room.member/{quote(user_id, safe='')}"
                )
                if answer.status_code == 200 and answer.json().get("membership") == "leave":
                    return
                await trio.sleep(0.2)


# ---- running the cases


@dataclass
class RoomRun:
    a_kind: str
    room: BuiltRoom | None = None
    joins: list[JoinResult] = field(default_factory=list)


def _servers_for(cases: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Each kind of A with the kinds of B that join its room, in the order given."""
    by_a: dict[str, list[str]] = {}
    for name in cases:
        a_kind, b_kind = CASES[name]
        by_a.setdefault(a_kind, []).append(b_kind)
    yield from by_a.items()


def run_cases(
    cases: list[str], members: int, events: int, repeat: int, directory: Path
) -> list[RoomRun]:
    """Each case's joins, `repeat` times each (a fresh B every time)."""
    ca = new_ca(directory / "ca")
    runs = []
    for a_kind, b_kinds in _servers_for(cases):
        run = RoomRun(a_kind)
        runs.append(run)
        with STARTERS[a_kind](ca, directory / f"a-{a_kind}", A_ADDRESSES[a_kind]) as a:
            run.room = trio.run(build_room, a, members, events)
            report_room(a, run.room)
            for b_kind in b_kinds:
                for number in range(repeat):
                    where = directory / f"b-{a_kind}-{b_kind}-{len(run.joins)}"
                    address = f"127.0.0.{B_FIRST_HOST[b_kind] + number}"
                    with STARTERS[b_kind](ca, where, address) as b:
                        result = trio.run(join_on, a, b, run.room)
                    run.joins.append(result)
                    report_join(a, result)
    return runs


# ---- reporting


def report_room(a: Homeserver, room: BuiltRoom) -> None:
    print(f"room on {a.kind} (A): {room.members} members, {room.events} joins + messages")
    print(f"  load average (1 min)        {os.getloadavg()[0]:6.1f}")
    print(
        f"  built in                    {room.register_seconds:6.1f} s registering,"
        f" {room.message_seconds:.1f} s sending, {room.join_seconds:.1f} s joining"
    )


def report_join(a: Homeserver, result: JoinResult) -> None:
    print(f"  {result.b_kind} (B) joins it")
    print(f"    load average (1 min)      {os.getloadavg()[0]:6.1f}")
    if result.failure is not None:
        print(f"    failed: {result.failure}")
        return
    print(f"    /join answered            {result.join_answer_seconds:6.2f} s")
    print(
        f"    joined in B's /sync       {result.sync_seconds:6.2f} s"
        f"   (B CPU {result.b_cpu_to_sync:.2f} s, A ({a.kind}) CPU {result.a_cpu_to_sync:.2f} s)"
    )
    print(
        f"    all members listed        {result.members_seconds:6.2f} s"
        f"   (B CPU {result.b_cpu_to_members:.2f} s; {result.members_seen} joined members)"
    )
    print(
        f"    B's peak RSS              {result.peak_rss_kib / 1024:6.1f} MiB"
        f"   ({result.rss_before_kib / 1024:.1f} MiB just before the join)"
    )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def report_summary(runs: list[RoomRun]) -> None:
    """One line per case: the medians of its joins."""
    print("summary (median of each case's joins)")
    print(
        "  case                 joins   /sync s   B CPU s   all members s   B CPU s   peak RSS MiB"
    )
    for run in runs:
        by_kind: dict[str, list[JoinResult]] = {}
        for result in run.joins:
            if result.failure is None:
                by_kind.setdefault(result.b_kind, []).append(result)
        for b_kind, results in by_kind.items():
            name = f"{run.a_kind}-{'ours' if b_kind == 'matrix-conduit' else 'synapse'}"
            print(
                f"  {name:20s} {len(results):5d}"
                f"   {_median([r.sync_seconds for r in results]):7.2f}"
                f"   {_median([r.b_cpu_to_sync for r in results]):7.2f}"
                f"   {_median([r.members_seconds for r in results]):13.2f}"
                f"   {_median([r.b_cpu_to_members for r in results]):7.2f}"
                f"   {_median([r.peak_rss_kib / 1024 for r in results]):12.1f}"
            )


def measure(cases: list[str], members: int, events: int, repeat: int = 1) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, piped
    with tempfile.TemporaryDirectory(prefix="bench-federation-join-") as directory:
        runs = run_cases(cases, members, events, repeat, Path(directory))
    report_summary(runs)
    print("  target: ours at least as fast as Synapse joining the same room, with less memory")


def run(*, connections: int, duration: float, warmup: float) -> None:
    del connections, duration, warmup  # fixed by the issue: a room's size, not durations
    measure(list(CASES), members=1000, events=5000)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.federation_join", description=__doc__)
    parser.add_argument("cases", nargs="*", metavar="CASE", help=", ".join(CASES))
    parser.add_argument("--members", type=int, default=1000, help="the room's members on A")
    parser.add_argument("--events", type=int, default=5000, help="joins + messages on A")
    parser.add_argument(
        "--repeat", type=int, default=1, help="joins per case, each by a fresh B (medians)"
    )
    arguments = parser.parse_args()
    unknown = sorted(set(arguments.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)} (known: {', '.join(CASES)})")
    if arguments.members < 1 or arguments.events < arguments.members:
        parser.error("need at least one member and at least as many events as members")
    if not 1 <= arguments.repeat <= MAX_REPEAT:
        parser.error(f"--repeat is from 1 to {MAX_REPEAT} (each B has an address of its own)")
    measure(arguments.cases or list(CASES), arguments.members, arguments.events, arguments.repeat)


if __name__ == "__main__":
    main()
