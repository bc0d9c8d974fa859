"""`python -m bench federation`: two servers federating over TLS on loopback, measured.

For each pair (sending server A → receiving server B): matrix-conduit ↔
matrix-conduit, Synapse ↔ Synapse (from PyPI, `tests/support/synapse.py`'s
installer), and ours ↔ Synapse both ways. Each server is its own process with
its own 127.0.0.x address and an IP-literal server name, a certificate from
one throwaway CA (`tests/support/federation_ca.py`) that both trust, so the
CPU time of the receiving server can be read from /proc. A room on A gets
`--members` (100) local members; B's user joins it over federation, so for B
the room has that many remote members. Then, with B's user long-polling
`/sync` (this process, trio + httpx):

(a) latency: A's user sends `--messages` (300) messages at 10/s, each carrying
    its send time; send → appears in B's `/sync`, p50/p99 (the first 10 left
    out as warmup);
(b) incoming PDUs per second: 8 of A's members send `--stream` (1000)
    messages as fast as A takes them (closed loop), then one end marker; the
    rate at which they appear in B's `/sync`, first to end marker (each room's
    PDUs are handled in order, so the marker comes last);
(c) B's CPU per incoming PDU over that window (it includes the `/sync`
    answers to its one listener).

A pair whose servers cannot yet do what a measure needs (a remote join, a
message reaching the other server) says so and which measures it skips;
servers up, users registered and the CPU reading are measured regardless.
Targets (issue 11): latency at least as good as Synapse ↔ Synapse; incoming
PDUs per CPU-second at least 4× Synapse's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import trio

from bench.versions import cpu_seconds
from tests.support.federation_ca import FederationCa, free_port_on, new_ca
from tests.support.process import HANG_LIMIT_SECONDS, child_environment, write_config
from tests.support.synapse import running_synapse

CLIENT = "/_matrix/client/v3"
PASSWORD = "bench password"
LATENCY_RATE = 10.0
LATENCY_WARMUP = 10
STREAM_SENDERS = 8
LONG_POLL_MS = 30_000
JOIN_LIMIT_SECONDS = 120.0
DELIVERY_LIMIT_SECONDS = 60.0
"""How long after its send a message may take to reach B before the phase gives up."""
SYNC_FILTER = json.dumps(
    {
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "room": {
            "timeline": {"limit": 100, "types": ["m.room.message"]},
            "state": {"lazy_load_members": True},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        },
    }
)
ADDRESSES = {"ours": ("127.0.0.21", "127.0.0.22"), "synapse": ("127.0.0.51", "127.0.0.52")}
PAIRS = {
    "ours-ours": ("ours", "ours"),
    "synapse-synapse": ("synapse", "synapse"),
    "ours-synapse": ("ours", "synapse"),
    "synapse-ours": ("synapse", "ours"),
}
"""(A, B): A holds the room and sends; B joins and receives."""


class CannotRun(Exception):
    """A measure needs something these servers cannot do yet; the message says what."""


# ---- servers


@dataclass
class Homeserver:
    """One running server of a pair: enough to act as its users and read its CPU."""

    kind: str
    server_name: str
    client_url: str
    pid: int
    verify: ssl.SSLContext | bool
    started_seconds: float

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            base_url=self.client_url, headers=headers, verify=self.verify, timeout=60
        )


def _wait_for_versions(url: str, verify: ssl.SSLContext, process: subprocess.Popen, log: Path):
    give_up = time.monotonic() + HANG_LIMIT_SECONDS
    with httpx.Client(verify=verify, timeout=2) as client:
        while True:
            try:
                if client.get(f"{url}/_matrix/client/versions").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > give_up:
                raise RuntimeError(f"matrix-conduit did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.05)


@contextmanager
def our_server(ca: FederationCa, directory: Path, address: str) -> Iterator[Homeserver]:
    """`python -m matrix_conduit` named `address:port`, TLS from `ca`, trusting `ca`."""
    directory.mkdir(parents=True)
    port = free_port_on(address)
    certs, key = ca.certificate_for(address)
    config = write_config(
        directory,
        server_name=f"{address}:{port}",
        address=address,
        port=port,
        tls={"certs": certs, "key": key},
        allow_federation=True,
        allow_registration=True,
        federation_ip_range_allowlist=["127.0.0.0/8"],
        log="warn",
    )
    log = directory / "server.log"
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "matrix_conduit"],
            env=child_environment(
                {"CONDUIT_CONFIG": str(config), "SSL_CERT_FILE": str(ca.certificate_path)}
            ),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
    try:
        verify = ssl.create_default_context(cafile=str(ca.certificate_path))
        url = f"https://{address}:{port}"
        _wait_for_versions(url, verify, process, log)
        yield Homeserver(
            "matrix-conduit",
            f"{address}:{port}",
            url,
            process.pid,
            verify,
            time.perf_counter() - started,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=HANG_LIMIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def synapse_server(ca: FederationCa, directory: Path, address: str) -> Iterator[Homeserver]:
    """Synapse from PyPI as `tests/support/synapse.py` runs it (installed on first use)."""
    started = time.perf_counter()
    with running_synapse(ca, directory, address) as synapse:
        yield Homeserver(
            "Synapse",
            synapse.server_name,
            synapse.client_url,
            synapse.process.pid,
            True,
            time.perf_counter() - started,
        )


# ---- what users do


async def register(server: Homeserver, client: httpx.AsyncClient, localpart: str) -> str:
    """A new user (`m.login.dummy`); its access token."""
    answer = await client.post(
        f"{CLIENT}/register",
        json={"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
    )
    if answer.status_code != 200:
        raise RuntimeError(f"{server.kind} refused to register {localpart}: {answer.text}")
    return answer.json()["access_token"]


def _room_path(room_id: str) -> str:
    return f"{CLIENT}/rooms/{quote(room_id, safe='')}"


async def send_message(client: httpx.AsyncClient, room_id: str, txn_id: str, body: str) -> None:
    answer = await client.put(
        f"{_room_path(room_id)}/send/m.room.message/{txn_id}",
        json={"msgtype": "m.text", "body": body},
    )
    answer.raise_for_status()


async def join_locally(server: Homeserver, tokens: list[str], room_id: str) -> None:
    """Every user of `tokens` joins `room_id` on its own server, four at a time."""
    limiter = trio.CapacityLimiter(4)

    async def join(token: str) -> None:
        async with limiter, server.client(token) as client:
            (
                await client.post(f"{CLIENT}/join/{quote(room_id, safe='')}", json={})
            ).raise_for_status()

    async with trio.open_nursery() as nursery:
        for token in tokens:
            nursery.start_soon(join, token)


async def join_remotely(b: Homeserver, token: str, room_id: str, a: Homeserver) -> float:
    """B's user joins A's room over federation; the seconds it took."""
    started = time.perf_counter()
    async with b.client(token) as client:
        answer = await client.post(
            f"{CLIENT}/join/{quote(room_id, safe='')}",
            params={"server_name": a.server_name, "via": a.server_name},
            json={},
            timeout=JOIN_LIMIT_SECONDS,
        )
    if answer.status_code != 200:
        raise CannotRun(
            f"a remote join: {b.kind} answered {answer.status_code} {answer.text[:200]}"
        )
    return time.perf_counter() - started


@dataclass
class Listener:
    """B's user long-polling `/sync`: when each bench message appeared, by its body."""

    server: Homeserver
    token: str
    room_id: str
    arrivals: dict[str, int] = field(default_factory=dict)
    """Message body → time (ns) of the `/sync` answer it first appeared in."""
    responses: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.server.client(self.token) as client:
            params = {"filter": SYNC_FILTER, "timeout": "0"}
            answer = await client.get(f"{CLIENT}/sync", params=params)
            answer.raise_for_status()
            since = answer.json()["next_batch"]
            task_status.started()
            while True:
                params = {"filter": SYNC_FILTER, "timeout": str(LONG_POLL_MS), "since": since}
                answer = await client.get(
                    f"{CLIENT}/sync", params=params, timeout=LONG_POLL_MS / 1000 + 30
                )
                received = time.time_ns()
                answer.raise_for_status()
                body = answer.json()
                self.responses += 1
                since = body["next_batch"]
                room = body.get("rooms", {}).get("join", {}).get(self.room_id)
                for event in room["timeline"]["events"] if room else ():
                    text = event.get("content", {}).get("body")
                    if isinstance(text, str):
                        self.arrivals.setdefault(text, received)
                self.changed.set()
                self.changed = trio.Event()

    async def wait_for(self, text: str, limit: float) -> int | None:
        """When `text` arrived (ns), waiting at most `limit` seconds; None if it did not."""
        with trio.move_on_after(limit):
            while text not in self.arrivals:
                await self.changed.wait()
        return self.arrivals.get(text)


# ---- the measures


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def measure_latency(
    a: Homeserver, sender: str, room_id: str, listener: Listener, messages: int
) -> dict[str, Any]:
    """(a): `messages` at `LATENCY_RATE`/s from A; send → B's `/sync`, in ms."""
    sent: dict[str, int] = {}
    answered_ms: list[float] = []
    async with a.client(sender) as client:
        next_at = trio.current_time()
        for number in range(messages):
            sent_at = time.time_ns()
            text = f"latency {number} {sent_at}"
            sent[text] = sent_at
            await send_message(client, room_id, f"latency-{sent_at}-{number}", text)
            answered_ms.append((time.time_ns() - sent_at) / 1e6)
            next_at += 1 / LATENCY_RATE
            await trio.sleep_until(next_at)
    await listener.wait_for(list(sent)[-1], DELIVERY_LIMIT_SECONDS)
    latencies = [
        (listener.arrivals[text] - at) / 1e6
        for number, (text, at) in enumerate(sent.items())
        if number >= LATENCY_WARMUP and text in listener.arrivals
    ]
    return {
        "measured": len(latencies),
        "lost": sum(text not in listener.arrivals for text in sent),
        "p50_ms": _percentile(latencies, 0.5),
        "p99_ms": _percentile(latencies, 0.99),
        "send_p50_ms": _percentile(answered_ms[LATENCY_WARMUP:], 0.5),
    }


async def measure_stream(
    a: Homeserver, b: Homeserver, senders: list[str], room_id: str, listener: Listener, total: int
) -> dict[str, Any]:
    """(b) and (c): `total` messages as fast as A takes them, then an end marker."""
    per_sender = total // len(senders)
    run = time.time_ns()

    async def send_all(index: int, token: str) -> None:
        async with a.client(token) as client:
            for number in range(per_sender):
                await send_message(
                    client, room_id, f"s{run}-{index}-{number}", f"stream {index} {number}"
                )

    cpu_before = cpu_seconds(b.pid)
    started = time.time_ns()
    async with trio.open_nursery() as nursery:
        for index, token in enumerate(senders):
            nursery.start_soon(send_all, index, token)
    sent_seconds = (time.time_ns() - started) / 1e9
    marker = f"stream end {run}"
    async with a.client(senders[0]) as client:
        await send_message(client, room_id, f"s{run}-end", marker)
    ended = await listener.wait_for(marker, DELIVERY_LIMIT_SECONDS + total / 10)
    cpu = cpu_seconds(b.pid) - cpu_before
    if ended is None:
        raise CannotRun(f"the end marker did not reach {b.kind} (of {total} stream messages)")
    arrived = [at for text, at in listener.arrivals.items() if text.startswith("stream ")]
    first = min(arrived)
    pdus = per_sender * len(senders) + 1
    window = max((ended - first) / 1e9, 1e-9)
    return {
        "pdus": pdus,
        "seen_in_sync": len(arrived),
        "a_send_rate": pdus / max(sent_seconds, 1e-9),
        "b_rate": pdus / window,
        "b_cpu_ms_per_pdu": cpu / pdus * 1000,
        "b_pdus_per_cpu_second": pdus / max(cpu, 1e-9),
    }


# ---- one pair


@dataclass
class PairResult:
    name: str
    kinds: tuple[str, str]
    started_seconds: tuple[float, float] = (0.0, 0.0)
    registered: int = 0
    register_seconds: float = 0.0
    idle_cpu_ms: float = 0.0
    join_seconds: float | None = None
    latency: dict[str, Any] | None = None
    stream: dict[str, Any] | None = None
    skipped: list[str] = field(default_factory=list)


async def _run_pair(
    a: Homeserver, b: Homeserver, result: PairResult, members: int, messages: int, stream: int
) -> None:
    started = time.perf_counter()
    async with a.client() as client_a, b.client() as client_b:
        alice = await register(a, client_a, "alice")
        bob = await register(b, client_b, "bob")
        member_tokens = [await register(a, client_a, f"member{n}") for n in range(members)]
    result.registered = members + 2
    result.register_seconds = time.perf_counter() - started
    idle_before = cpu_seconds(b.pid)
    await trio.sleep(1.0)
    result.idle_cpu_ms = (cpu_seconds(b.pid) - idle_before) * 1000
    async with a.client(alice) as client:
        answer = await client.post(f"{CLIENT}/createRoom", json={"preset": "public_chat"})
        answer.raise_for_status()
        room_id = answer.json()["room_id"]
    await join_locally(a, member_tokens, room_id)
    try:
        result.join_seconds = await join_remotely(b, bob, room_id, a)
    except CannotRun as missing:
        result.skipped.append(f"(a), (b), (c): need {missing}")
        return
    listener = Listener(b, bob, room_id)
    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run)
        async with a.client(alice) as client:
            await send_message(client, room_id, f"probe-{time.time_ns()}", "probe")
        if await listener.wait_for("probe", DELIVERY_LIMIT_SECONDS) is None:
            result.skipped.append(
                f"(a), (b), (c): need a message from {a.kind} to reach {b.kind}'s /sync "
                f"(none arrived within {DELIVERY_LIMIT_SECONDS:.0f} s)"
            )
        else:
            result.latency = await measure_latency(a, alice, room_id, listener, messages)
            try:
                result.stream = await measure_stream(
                    a, b, member_tokens[:STREAM_SENDERS], room_id, listener, stream
                )
            except CannotRun as missing:
                result.skipped.append(f"(b), (c): {missing}")
        nursery.cancel_scope.cancel()


def run_pair(
    name: str, directory: Path, ca: FederationCa, members: int, messages: int, stream: int
) -> PairResult:
    kind_a, kind_b = PAIRS[name]
    starters = {"ours": our_server, "synapse": synapse_server}
    address_a = ADDRESSES[kind_a][0]
    address_b = ADDRESSES[kind_b][1]
    with ExitStack() as servers:
        a = servers.enter_context(starters[kind_a](ca, directory / "a", address_a))
        b = servers.enter_context(starters[kind_b](ca, directory / "b", address_b))
        result = PairResult(name, (a.kind, b.kind), (a.started_seconds, b.started_seconds))
        trio.run(_run_pair, a, b, result, members, messages, stream)
    return result


# ---- reporting


def report(result: PairResult, members: int) -> None:
    a_kind, b_kind = result.kinds
    print(f"federation {result.name}: {a_kind} (A, sends) → {b_kind} (B, receives)")
    print(f"  load average (1 min)       {os.getloadavg()[0]:6.1f}   (above the cores: all slower)")
    up_a, up_b = result.started_seconds
    print(f"  servers up (A / B)         {up_a:6.1f} s / {up_b:.1f} s")
    print(f"  users registered           {result.registered:6d} in {result.register_seconds:.1f} s")
    print(f"  B's CPU at rest            {result.idle_cpu_ms:6.1f} ms per s")
    if result.join_seconds is not None:
        print(f"  remote join (room of {members + 1})   {result.join_seconds * 1000:6.0f} ms")
    if result.latency is not None:
        latency = result.latency
        print(
            f"  (a) latency ms p50 / p99   {latency['p50_ms']:6.1f} / {latency['p99_ms']:.1f}"
            f"   ({latency['measured']} messages, {latency['lost']} lost)"
        )
        print(f"      of which A's answer to the PUT, p50 {latency['send_p50_ms']:6.1f} ms")
    if result.stream is not None:
        stream = result.stream
        print(
            f"  (b) incoming PDUs/s at B   {stream['b_rate']:6.1f}"
            f"   (A took sends at {stream['a_send_rate']:.0f}/s; {stream['pdus']} PDUs,"
            f" {stream['seen_in_sync']} seen in /sync)"
        )
        print(
            f"  (c) B's CPU ms per PDU     {stream['b_cpu_ms_per_pdu']:6.2f}"
            f"   ({stream['b_pdus_per_cpu_second']:.0f} PDUs per CPU-second)"
        )
    for reason in result.skipped:
        print(f"  cannot run yet: {reason}")


def run(*, connections: int, duration: float, warmup: float) -> None:
    del connections, duration, warmup  # fixed by the issue: counts, not durations
    measure(list(PAIRS), members=100, messages=300, stream=1000)


def measure(pairs: list[str], members: int, messages: int, stream: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as directory:
        ca = new_ca(Path(directory) / "ca")
        for name in pairs:
            result = run_pair(name, Path(directory) / name, ca, members, messages, stream)
            report(result, members)
    print("  targets: (a) at least as good as Synapse ↔ Synapse; (c) ≥ 4× Synapse's PDUs per CPU-s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.federation", description=__doc__)
    parser.add_argument("pairs", nargs="*", metavar="PAIR", help=", ".join(PAIRS))
    parser.add_argument("--members", type=int, default=100, help="A's members of the room")
    parser.add_argument("--messages", type=int, default=300, help="messages for (a)")
    parser.add_argument("--stream", type=int, default=1000, help="messages for (b) and (c)")
    arguments = parser.parse_args()
    unknown = sorted(set(arguments.pairs) - set(PAIRS))
    if unknown:
        parser.error(f"unknown pair {', '.join(unknown)} (known: {', '.join(PAIRS)})")
    measure(arguments.pairs or list(PAIRS), arguments.members, arguments.messages, arguments.stream)


if __name__ == "__main__":
    main()
