"""`python -m bench sync`: delivery latency, CPU per /sync response, initial sync time.

The real server runs as `python -m matrix_conduit` (LevelDB in a temporary
directory, `log = "warn"`), so its CPU time can be read from /proc. A load
process (`python -m bench.sync load ...`, trio + httpx) runs 20 listeners,
each long-polling `/sync` (`timeout=30000`) in one shared room, while one
sender posts 10 messages/s carrying their send time; each listener records
send → appears-in-its-sync latency. Phases, each measured over its own window:

1. sends only (no listeners): server CPU per message sent;
2. delivery: the listeners and the sender together: latency p50/p99, and the
   server CPU per /sync response once the sends' own CPU (phase 1) is taken out;
3. initial sync of a user in 50 rooms with 20 messages each: wall time and
   server CPU (median of 5).

Targets (the "/sync" issue): p99 under 300 ms; CPU per response at most a
quarter of Synapse's 7.8 ms (1.95 ms); initial sync at most a quarter of
Synapse's 0.34 s (85 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import trio

from bench.rooms import authorised, register
from bench.versions import cpu_seconds
from tests.support.process import server_process, write_config

CLIENT = "/_matrix/client/v3"
LISTENERS = 20
RATE = 10.0
LONG_POLL_MS = 30_000
TIMELINE_FILTER = json.dumps({"room": {"timeline": {"limit": 100}}})
TARGET_P99_MS = 300
TARGET_CPU_MS_PER_SYNC = 7.8 / 4
TARGET_INITIAL_SYNC_S = 0.34 / 4


# ---- the load process


async def _listen(
    url: str, token: str, room_id: str, latencies: list[float], counts: dict[str, int]
) -> None:
    async with httpx.AsyncClient(base_url=url, headers=authorised(token), timeout=60) as client:
        params = {"filter": TIMELINE_FILTER, "timeout": "0"}
        since = (await client.get(f"{CLIENT}/sync", params=params)).json()["next_batch"]
        while True:
            params = {"filter": TIMELINE_FILTER, "timeout": str(LONG_POLL_MS), "since": since}
            answer = (await client.get(f"{CLIENT}/sync", params=params)).json()
            received = time.time_ns()
            counts["responses"] += 1
            since = answer["next_batch"]
            room = answer["rooms"]["join"].get(room_id)
            for event in room["timeline"]["events"] if room else ():
                body = event.get("content", {}).get("body", "")
                if body.startswith("bench "):
                    latencies.append((received - int(body.split()[1])) / 1e6)


async def _send(url: str, token: str, room_id: str, rate: float, counts: dict[str, int]) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id, safe='')}/send/m.room.message"
    async with httpx.AsyncClient(base_url=url, headers=authorised(token), timeout=60) as client:
        next_at = trio.current_time()
        number = 0
        while True:
            number += 1
            body = {"msgtype": "m.text", "body": f"bench {time.time_ns()}"}
            (await client.put(f"{path}/{time.time_ns()}-{number}", json=body)).raise_for_status()
            counts["sent"] += 1
            next_at += 1 / rate
            await trio.sleep_until(next_at)


async def _load(arguments: argparse.Namespace) -> None:
    latencies: list[float] = []
    counts = {"responses": 0, "sent": 0}
    async with trio.open_nursery() as nursery:
        for token in arguments.listeners.split(",") if arguments.listeners else []:
            nursery.start_soon(_listen, arguments.url, token, arguments.room, latencies, counts)
        await trio.sleep(2)  # listeners settle into their long-polls
        nursery.start_soon(_send, arguments.url, arguments.sender, arguments.room, RATE, counts)
        await trio.sleep(arguments.warmup)
        latencies.clear()
        before = dict(counts)
        print("measuring", flush=True)
        await trio.sleep(arguments.duration)
        print(
            json.dumps(
                {
                    "latencies_ms": latencies,
                    "responses": counts["responses"] - before["responses"],
                    "sent": counts["sent"] - before["sent"],
                }
            ),
            flush=True,
        )
        nursery.cancel_scope.cancel()


# ---- the orchestrator


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def _phase(server_url: str, pid: int, room: str, sender: str, listeners: list[str], window: float):
    generator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.sync",
            "load",
            f"--warmup={2.0}",
            f"--duration={window}",
            f"--room={room}",
            f"--sender={sender}",
            f"--listeners={','.join(listeners)}",
            server_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert generator.stdout.readline() == "measuring\n"
    cpu_before = cpu_seconds(pid)
    result = json.loads(generator.stdout.readline())
    result["server_cpu_seconds"] = cpu_seconds(pid) - cpu_before
    generator.wait()
    return result


def _initial_sync(client: httpx.Client, pid: int, rooms: int, messages: int) -> tuple[float, float]:
    token = register(client, "initial")
    for room_number in range(rooms):
        room = client.post(
            f"{CLIENT}/createRoom", json={"name": f"room {room_number}"}, headers=authorised(token)
        ).json()["room_id"]
        for number in range(messages):
            client.put(
                f"{CLIENT}/rooms/{quote(room, safe='')}/send/m.room.message/{room_number}-{number}",
                json={"msgtype": "m.text", "body": f"message {number}"},
                headers=authorised(token),
            ).raise_for_status()
    walls, cpus = [], []
    for _ in range(5):
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        client.get(f"{CLIENT}/sync", headers=authorised(token)).raise_for_status()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds(pid) - cpu_before)
    return statistics.median(walls), statistics.median(cpus)


def run(*, connections: int, duration: float, warmup: float) -> None:
    del connections, warmup  # fixed by the issue: 20 listeners, 10 messages/s
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as directory:
        config = write_config(Path(directory), log="warn", allow_registration=True)
        with (
            server_process(config) as server,
            httpx.Client(base_url=server.base_url, timeout=60) as client,
        ):
            pid = server.process.pid
            sender = register(client, "sender")
            listeners = [register(client, f"listener{n}") for n in range(LISTENERS)]
            room = client.post(
                f"{CLIENT}/createRoom", json={"preset": "public_chat"}, headers=authorised(sender)
            ).json()["room_id"]
            for token in listeners:
                client.post(
                    f"{CLIENT}/join/{quote(room, safe='')}", json={}, headers=authorised(token)
                ).raise_for_status()
            sends_only = _phase(server.base_url, pid, room, sender, [], duration)
            delivery = _phase(server.base_url, pid, room, sender, listeners, duration)
            initial_wall, initial_cpu = _initial_sync(client, pid, rooms=50, messages=20)
            server.stop()
    cpu_per_send = sends_only["server_cpu_seconds"] / max(sends_only["sent"], 1)
    sync_cpu = delivery["server_cpu_seconds"] - cpu_per_send * delivery["sent"]
    cpu_ms_per_sync = sync_cpu / max(delivery["responses"], 1) * 1000
    latencies = delivery["latencies_ms"]
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    print(f"sync: {LISTENERS} long-polling listeners, 1 sender at {RATE:.0f} messages/s")
    print(f"  deliveries measured        {len(latencies):8d}")
    print(f"  latency ms p50 / p99       {p50:8.1f} / {p99:.1f}   (target p99 < {TARGET_P99_MS})")
    print(
        f"  server CPU ms per /sync    {cpu_ms_per_sync:8.2f}   "
        f"(target ≤ {TARGET_CPU_MS_PER_SYNC:.2f}; {delivery['responses']} responses)"
    )
    print(f"  server CPU ms per send     {cpu_per_send * 1000:8.2f}")
    print(
        f"  initial sync, 50 rooms x 20 msgs: {initial_wall * 1000:.0f} ms wall, "
        f"{initial_cpu * 1000:.0f} ms server CPU   (target ≤ {TARGET_INITIAL_SYNC_S * 1000:.0f} ms)"
    )
    print("  Synapse for scale: p50 ~670 ms, p99 ~1.2 s, 7.8 ms CPU per /sync, initial sync 0.34 s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="the load process (started by the benchmark)")
    load.add_argument("url")
    load.add_argument("--room", required=True)
    load.add_argument("--sender", required=True)
    load.add_argument("--listeners", default="")
    load.add_argument("--warmup", type=float, default=2.0)
    load.add_argument("--duration", type=float, default=10.0)
    commands.add_parser("run", help="run the benchmark")
    arguments = parser.parse_args()
    if arguments.command == "load":
        trio.run(_load, arguments)
    else:
        run(connections=0, duration=10.0, warmup=2.0)


if __name__ == "__main__":
    main()
