"""`python -m bench sliding_sync`: simplified sliding sync (MSC4186) against `/sync`, by room count.

The real server runs as `python -m matrix_conduit` (LevelDB in a temporary
directory, `log = "warn"`); its CPU time is read from /proc. One user is in
N rooms (1,000, then 10,000 unless `--rooms` says otherwise), each created
by that user (its create event bumps it). Measured, per N:

1. first window: a new connection's first response for a 20-room window
   (`ranges [[0, 19]]`, `timeline_limit 1`, name/avatar/encryption state,
   the shape Element X asks for): wall time and server CPU, median of 5;
2. a live connection: 50 rounds of (a message in one of the rooms, then an
   incremental request from the last `pos`), with the CPU of 50 sends alone
   subtracted: server CPU per request;
3. the same for `/sync`: the initial `/sync` (median of 3) and incremental
   `/sync` from the last `next_batch` after each message.

Target (the sliding sync issue): the first window under 50 ms and the same
for 1,000 and 10,000 rooms. CPU time comes in clock ticks (10 ms), so per-request
figures are totals over many requests divided by their number.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from bench.rooms import authorised, register
from bench.versions import cpu_seconds
from tests.support.process import server_process, write_config

CLIENT = "/_matrix/client/v3"
SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
ROUNDS = 50
TARGET_FIRST_WINDOW_MS = 50
WINDOW = {
    "lists": {
        "all": {
            "ranges": [[0, 19]],
            "timeline_limit": 1,
            "required_state": [
                ["m.room.name", ""],
                ["m.room.avatar", ""],
                ["m.room.encryption", ""],
                ["m.room.member", "$ME"],
            ],
        }
    }
}


def _create_rooms(client: httpx.Client, token: str, count: int) -> list[str]:
    rooms = []
    for number in range(count):
        answer = client.post(
            f"{CLIENT}/createRoom",
            json={"preset": "private_chat", "name": f"room {number}"},
            headers=authorised(token),
        )
        answer.raise_for_status()
        rooms.append(answer.json()["room_id"])
    return rooms


def _send(client: httpx.Client, token: str, room_id: str, number: int) -> None:
    client.put(
        f"{CLIENT}/rooms/{quote(room_id, safe='')}/send/m.room.message/bench-{time.time_ns()}",
        json={"msgtype": "m.text", "body": f"live {number}"},
        headers=authorised(token),
    ).raise_for_status()


def _timed(pid: int, call) -> tuple[float, float, object]:
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, cpu_seconds(pid) - cpu_before, result


def measure(rooms: int, *, with_sync: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-sliding-") as directory:
        config = write_config(Path(directory), log="warn", allow_registration=True)
        with (
            server_process(config) as server,
            httpx.Client(base_url=server.base_url, timeout=600) as client,
        ):
            pid = server.process.pid
            token = register(client, "many")
            headers = authorised(token)
            started = time.perf_counter()
            room_ids = _create_rooms(client, token, rooms)
            setup_seconds = time.perf_counter() - started

            def first_window(n: int):
                body = {"conn_id": f"first-{n}", **WINDOW}
                answer = client.post(SLIDING, json=body, headers=headers)
                answer.raise_for_status()
                return answer.json()

            firsts = [_timed(pid, lambda n=n: first_window(n)) for n in range(5)]
            first_rooms = len(firsts[0][2]["rooms"])

            # sends alone
            cpu_before = cpu_seconds(pid)
            for number in range(ROUNDS):
                _send(client, token, room_ids[number % len(room_ids)], number)
            send_cpu = cpu_seconds(pid) - cpu_before

            live_body = {"conn_id": "live", **WINDOW}
            pos = client.post(SLIDING, json=live_body, headers=headers).json()["pos"]
            cpu_before = cpu_seconds(pid)
            for number in range(ROUNDS):
                _send(client, token, room_ids[number % len(room_ids)], number)
                answer = client.post(
                    SLIDING, params={"pos": pos, "timeout": 0}, json=live_body, headers=headers
                )
                answer.raise_for_status()
                pos = answer.json()["pos"]
            live_cpu = cpu_seconds(pid) - cpu_before - send_cpu
            result = {
                "setup_s": setup_seconds,
                "first_window_ms": statistics.median(w for w, _, _ in firsts) * 1000,
                "first_window_cpu_ms": sum(c for _, c, _ in firsts) / len(firsts) * 1000,
                "first_window_rooms": first_rooms,
                "live_cpu_ms": live_cpu / ROUNDS * 1000,
                "send_cpu_ms": send_cpu / ROUNDS * 1000,
            }
            if not with_sync:
                server.stop()
                return result

            initials = []
            for _ in range(3):
                initials.append(
                    _timed(
                        pid,
                        lambda: client.get(f"{CLIENT}/sync", headers=headers).raise_for_status(),
                    )
                )
            since = client.get(f"{CLIENT}/sync", headers=headers).json()["next_batch"]
            cpu_before = cpu_seconds(pid)
            for number in range(ROUNDS):
                _send(client, token, room_ids[number % len(room_ids)], number)
                answer = client.get(f"{CLIENT}/sync", params={"since": since}, headers=headers)
                answer.raise_for_status()
                since = answer.json()["next_batch"]
            sync_cpu = cpu_seconds(pid) - cpu_before - send_cpu
            server.stop()
    return {
        **result,
        "initial_sync_ms": statistics.median(w for w, _, _ in initials) * 1000,
        "initial_sync_cpu_ms": sum(c for _, c, _ in initials) / len(initials) * 1000,
        "incremental_sync_cpu_ms": sync_cpu / ROUNDS * 1000,
    }


def report(rooms: int, result: dict[str, float]) -> None:
    print(f"sliding sync vs /sync: one user in {rooms} rooms (setup {result['setup_s']:.0f} s)")
    print(
        f"  sliding sync first window (20 rooms)   {result['first_window_ms']:8.1f} ms wall, "
        f"{result['first_window_cpu_ms']:.1f} ms server CPU   "
        f"(target < {TARGET_FIRST_WINDOW_MS} ms)"
    )
    print(f"  sliding sync live request CPU          {result['live_cpu_ms']:8.2f} ms")
    print(f"  (a message send: {result['send_cpu_ms']:.2f} ms server CPU, subtracted)")
    if "initial_sync_ms" not in result:
        return
    print(
        f"  /sync initial                          {result['initial_sync_ms']:8.1f} ms wall, "
        f"{result['initial_sync_cpu_ms']:.1f} ms server CPU"
    )
    print(f"  /sync incremental request CPU          {result['incremental_sync_cpu_ms']:8.2f} ms")


def run(
    *,
    connections: int,
    duration: float,
    warmup: float,
    rooms: tuple[int, ...] = (1000, 10000),
    with_sync: bool = True,
) -> None:
    del connections, duration, warmup  # fixed by the issue: room counts and a 20-room window
    for count in rooms:
        report(count, measure(count, with_sync=with_sync))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sliding_sync")
    parser.add_argument("--rooms", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="sliding sync only (an initial /sync of 10,000 rooms takes minutes)",
    )
    arguments = parser.parse_args()
    run(
        connections=0,
        duration=0,
        warmup=0,
        rooms=tuple(arguments.rooms),
        with_sync=not arguments.no_sync,
    )


if __name__ == "__main__":
    main()
