"""`python -m bench rooms`: messages in one room, room creation, database size.

The real server runs as `python -m matrix_conduit` (LevelDB in a temporary
directory, `log = "warn"`), so its CPU time can be read from
/proc/<pid>/stat. Eight users (`--connections`) join one public room; a load
generator in a separate process (`python -m bench.rooms load ...`) gives each
sender one keep-alive connection and sends `PUT
/rooms/{roomId}/send/m.room.message/{txnId}` in a closed loop: each sender
waits for its answer before sending the next message. After `--warmup`
seconds it measures for `--duration` seconds (messages/s, server CPU per
message, latency), then keeps sending until the room holds `--messages`
messages (10,000 by default) so the database growth per 10,000 messages can
be read from the disk once the server has stopped. Room creation is timed
before the load: `--rooms` sequential `POST /createRoom` calls (private
chat, name and topic, as a client sends them).

`--backend postgresql` runs the same load on the PostgreSQL backend, on a
cluster this benchmark starts (tests/support/postgres.py: loopback, fsync
off; the database size lines then count only `database_path`, the media).

Targets (the "Rooms on one server" issue): at least 170 messages/s and at
most 3.5 ms of server CPU per message. Synapse, for scale: about 42
messages/s at 13.7 ms CPU per message, about 160 ms per room creation.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import plyvel

from bench.load import Connection
from bench.versions import cpu_seconds
from tests.support.process import server_process, write_config

CLIENT = "/_matrix/client/v3"
TARGET_MESSAGES_PER_SECOND = 170
TARGET_CPU_MS_PER_MESSAGE = 3.5


# ---- the load generator (its own process)


def _send_request(host: str, room_id: str, token: str, txn_id: str, body: bytes) -> bytes:
    path = f"{CLIENT}/rooms/{quote(room_id, safe='')}/send/m.room.message/{txn_id}"
    return (
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def generate_messages(
    url: str, room_id: str, tokens: list[str], warmup: float, duration: float, total: int
) -> None:
    """Closed-loop senders, one connection each; prints `measuring`, the window's JSON
    result, and a final JSON line once `total` messages were answered in all."""
    parts = urlsplit(url)
    run = f"{os.getpid()}x{time.monotonic_ns()}"
    selector = selectors.DefaultSelector()
    sent_at: dict[Connection, float] = {}
    counters: dict[Connection, int] = {}

    def send_next(connection: Connection, sender: int) -> None:
        counters[connection] += 1
        number = counters[connection]
        body = json.dumps(
            {"msgtype": "m.text", "body": f"message {number} from sender {sender}"}
        ).encode()
        txn_id = f"{run}-{sender}-{number}"
        connection.request = _send_request(parts.netloc, room_id, tokens[sender], txn_id, body)
        sent_at[connection] = time.monotonic()
        connection.send_request()

    def reconnect(old: Connection, sender: int) -> None:
        selector.unregister(old.socket)
        old.socket.close()
        connection = Connection(parts.hostname, parts.port, old.request)
        counters[connection] = counters.pop(old)
        sent_at[connection] = sent_at.pop(old)
        selector.register(connection.socket, selectors.EVENT_READ, (connection, sender))
        connection.send_request()

    for sender in range(len(tokens)):
        connection = Connection(parts.hostname, parts.port, b"")
        counters[connection] = 0
        selector.register(connection.socket, selectors.EVENT_READ, (connection, sender))
        send_next(connection, sender)

    measuring_from = time.monotonic() + warmup
    measuring_until = measuring_from + duration
    phase = "warmup"
    answered = errors = window_count = window_errors = 0
    latencies: list[float] = []
    cpu_at_start = 0.0
    while True:
        now = time.monotonic()
        if phase == "warmup" and now >= measuring_from:
            phase = "measuring"
            cpu_at_start = time.process_time()
            print("measuring", flush=True)
        elif phase == "measuring" and now >= measuring_until:
            phase = "filling"
            print(
                json.dumps(
                    {
                        "messages": window_count,
                        "errors": window_errors,
                        "seconds": duration,
                        "latency_ms_median": statistics.median(latencies) if latencies else 0,
                        "latency_ms_p95": _percentile(latencies, 0.95),
                        "client_cpu_seconds": time.process_time() - cpu_at_start,
                    }
                ),
                flush=True,
            )
        if phase == "filling" and answered >= total:
            break
        for key, _ in selector.select(timeout=0.1):
            connection, sender = key.data
            statuses = connection.receive()
            if statuses is None:
                # hypercorn closes a keep-alive connection after
                # `keep_alive_max_requests` answers: resend the message in
                # flight (same txnId, so it is sent at most once) on a new one.
                reconnect(connection, sender)
                continue
            if not statuses:
                continue
            latency = (time.monotonic() - sent_at[connection]) * 1000
            answered += len(statuses)
            errors += sum(status != b"200" for status in statuses)
            if phase == "measuring":
                window_count += len(statuses)
                window_errors += sum(status != b"200" for status in statuses)
                latencies.append(latency)
            if phase != "filling" or answered < total:
                send_next(connection, sender)
    print(json.dumps({"answered": answered, "errors": errors}), flush=True)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# ---- the orchestrator


@dataclass(frozen=True)
class Result:
    senders: int
    messages: int
    errors: int
    seconds: float
    server_cpu_seconds: float
    client_cpu_seconds: float
    latency_ms_median: float
    latency_ms_p95: float
    room_creations: int
    room_creation_seconds: float
    room_creation_cpu_seconds: float
    total_messages: int
    database_growth_bytes: int
    compacted_database_bytes: int

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_ms_per_message(self) -> float:
        return self.server_cpu_seconds / self.messages * 1000

    @property
    def room_creation_ms(self) -> float:
        return self.room_creation_seconds / self.room_creations * 1000

    @property
    def room_creation_cpu_ms(self) -> float:
        return self.room_creation_cpu_seconds / self.room_creations * 1000

    def per_10000_messages(self, size: int) -> float:
        return size / self.total_messages * 10_000


def directory_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def register(client: httpx.Client, name: str) -> str:
    answer = client.post(
        f"{CLIENT}/register",
        json={"username": name, "auth": {"type": "m.login.dummy"}},
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def authorised(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def time_room_creation(client: httpx.Client, token: str, pid: int, count: int):
    """Wall and server CPU seconds of `count` sequential createRoom calls."""
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    for number in range(count):
        answer = client.post(
            f"{CLIENT}/createRoom",
            json={"preset": "private_chat", "name": f"room {number}", "topic": "benchmark"},
            headers=authorised(token),
        )
        answer.raise_for_status()
    return time.perf_counter() - started, cpu_seconds(pid) - cpu_before


def measure(
    senders: int,
    duration: float,
    warmup: float,
    total_messages: int,
    rooms: int,
    backend: str = "leveldb",
) -> Result:
    postgres = None
    backend_keys: dict[str, str] = {}
    if backend == "postgresql":
        from tests.support.postgres import start_postgres

        postgres = start_postgres()
        backend_keys = {
            "database_backend": "postgresql",
            "database_url": postgres.fresh_database(),
            "database_password_file": postgres.password_file,
        }
    try:
        return _measure(senders, duration, warmup, total_messages, rooms, backend_keys)
    finally:
        if postgres is not None:
            postgres.stop()


def _measure(
    senders: int,
    duration: float,
    warmup: float,
    total_messages: int,
    rooms: int,
    backend_keys: dict[str, str],
) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-rooms-") as directory:
        config = write_config(Path(directory), log="warn", allow_registration=True, **backend_keys)
        database = Path(directory) / "db"
        with server_process(config) as server, httpx.Client(base_url=server.base_url) as client:
            pid = server.process.pid
            tokens = [register(client, f"sender{index}") for index in range(senders)]
            creation_seconds, creation_cpu = time_room_creation(client, tokens[0], pid, rooms)
            room = client.post(
                f"{CLIENT}/createRoom",
                json={"preset": "public_chat", "name": "benchmark"},
                headers=authorised(tokens[0]),
            ).json()["room_id"]
            for token in tokens[1:]:
                client.post(
                    f"{CLIENT}/join/{quote(room, safe='')}", json={}, headers=authorised(token)
                ).raise_for_status()
            size_before = directory_size(database)

            generator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.rooms",
                    "load",
                    f"--warmup={warmup}",
                    f"--duration={duration}",
                    f"--total={total_messages}",
                    "--",  # access tokens may start with "-"
                    server.base_url,
                    room,
                    ",".join(tokens),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert generator.stdout.readline() == "measuring\n"
            cpu_at_start = cpu_seconds(pid)
            window = json.loads(generator.stdout.readline())
            cpu_at_end = cpu_seconds(pid)
            final = json.loads(generator.stdout.readline())
            if generator.wait() != 0:
                raise RuntimeError(f"the load generator failed ({generator.returncode})")
            server.stop()
        growth = directory_size(database) - size_before
        if (database / "leveldb").exists():
            leveldb = plyvel.DB(str(database / "leveldb"))
            leveldb.compact_range()
            leveldb.close()
        compacted = directory_size(database)
    return Result(
        senders=senders,
        messages=window["messages"],
        errors=window["errors"] + final["errors"],
        seconds=window["seconds"],
        server_cpu_seconds=cpu_at_end - cpu_at_start,
        client_cpu_seconds=window["client_cpu_seconds"],
        latency_ms_median=window["latency_ms_median"],
        latency_ms_p95=window["latency_ms_p95"],
        room_creations=rooms,
        room_creation_seconds=creation_seconds,
        room_creation_cpu_seconds=creation_cpu,
        total_messages=final["answered"],
        database_growth_bytes=growth,
        compacted_database_bytes=compacted,
    )


def report(result: Result) -> None:
    def verdict(good: bool) -> str:
        return "meets target" if good else "MISSES target"

    mps = result.messages_per_second
    cpu = result.cpu_ms_per_message
    print(
        f"rooms: {result.senders} closed-loop senders in one room, "
        f"{result.seconds:.0f} s measured, {os.cpu_count()} CPUs"
    )
    print(
        f"  messages/s               {mps:10.1f}   "
        f"({verdict(mps >= TARGET_MESSAGES_PER_SECOND)} ≥ {TARGET_MESSAGES_PER_SECOND})"
    )
    print(
        f"  server CPU ms/message    {cpu:10.2f}   "
        f"({verdict(cpu <= TARGET_CPU_MS_PER_MESSAGE)} ≤ {TARGET_CPU_MS_PER_MESSAGE})"
    )
    print(
        f"  latency ms (median, p95) {result.latency_ms_median:10.1f} {result.latency_ms_p95:8.1f}"
    )
    print(f"  errors                   {result.errors:10d}")
    print(f"  load generator CPU-s     {result.client_cpu_seconds:10.1f}")
    print(
        f"  room creation ms         {result.room_creation_ms:10.1f}   "
        f"(server CPU {result.room_creation_cpu_ms:.1f} ms; {result.room_creations} rooms)"
    )
    growth = result.per_10000_messages(result.database_growth_bytes) / 1e6
    compacted = result.per_10000_messages(result.compacted_database_bytes) / 1e6
    print(
        f"  database per 10,000 msgs {growth:10.2f} MB on disk after stop, "
        f"{compacted:.2f} MB compacted ({result.total_messages} messages sent)"
    )
    print("  Synapse for scale: ~42 messages/s, 13.7 ms CPU/message, ~160 ms per room")


def run(
    *,
    connections: int,
    duration: float,
    warmup: float,
    messages: int = 10_000,
    rooms: int = 20,
    backend: str = "leveldb",
) -> None:
    report(measure(connections, duration, warmup, messages, rooms, backend))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rooms")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="the load generator (run by the benchmark)")
    load.add_argument("url")
    load.add_argument("room_id")
    load.add_argument("tokens", help="comma-separated access tokens, one per sender")
    load.add_argument("--warmup", type=float, default=2.0)
    load.add_argument("--duration", type=float, default=10.0)
    load.add_argument("--total", type=int, default=10_000)
    run_it = commands.add_parser("run", help="the benchmark, with room-specific settings")
    run_it.add_argument("--connections", type=int, default=8, help="senders")
    run_it.add_argument("--duration", type=float, default=10.0)
    run_it.add_argument("--warmup", type=float, default=2.0)
    run_it.add_argument("--messages", type=int, default=10_000, help="for the database size")
    run_it.add_argument("--rooms", type=int, default=20, help="createRoom calls timed")
    run_it.add_argument("--backend", choices=["leveldb", "postgresql"], default="leveldb")
    arguments = parser.parse_args()
    if arguments.command == "run":
        run(
            connections=arguments.connections,
            duration=arguments.duration,
            warmup=arguments.warmup,
            messages=arguments.messages,
            rooms=arguments.rooms,
            backend=arguments.backend,
        )
        return
    generate_messages(
        arguments.url,
        arguments.room_id,
        arguments.tokens.split(","),
        arguments.warmup,
        arguments.duration,
        arguments.total,
    )


if __name__ == "__main__":
    main()
