"""Online backup: how long `matrix-conduit backup` takes and how big the copy is.

    python -m bench.backup [--events 100000] [--senders 8] [--database DIR]

Fills a LevelDB database through the real server with `--events` messages in
one room (bench/rooms.py's load generator; `--database DIR` keeps it, and a
second run on the same DIR reuses it), then, with the server still running,
times `matrix-conduit backup` (the snapshot copied by the server) and
`verify-backup`, and reports the sizes of the live database and of the copy
(the copy is compacted, so it is usually smaller). Numbers, never assertions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from bench.rooms import CLIENT, authorised, directory_size, register
from tests.support.process import run_command, server_process, write_config


def _fill(base_url: str, events: int, senders: int) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        tokens = [register(client, f"sender{index}") for index in range(senders)]
        room = client.post(
            f"{CLIENT}/createRoom", json={"preset": "public_chat"}, headers=authorised(tokens[0])
        ).json()["room_id"]
        for token in tokens[1:]:
            client.post(
                f"{CLIENT}/join/{quote(room, safe='')}", json={}, headers=authorised(token)
            ).raise_for_status()
    generator = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.rooms",
            "load",
            "--warmup=0.1",
            "--duration=0.1",
            f"--total={events}",
            "--",
            base_url,
            room,
            ",".join(tokens),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    final = json.loads(generator.stdout.strip().splitlines()[-1])
    if final["errors"]:
        raise RuntimeError(f"{final['errors']} messages were not accepted")


def measure(events: int, senders: int, directory: Path) -> dict[str, float]:
    marker = directory / "filled.json"
    config = write_config(directory, log="warn", allow_registration=True)
    with server_process(config) as server:
        fill_seconds = 0.0
        if not marker.exists():
            started = time.perf_counter()
            _fill(server.base_url, events, senders)
            fill_seconds = time.perf_counter() - started
            marker.write_text(json.dumps({"events": events}))
        env = {"CONDUIT_CONFIG": str(config)}
        destination = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=directory)) / "copy"
        started = time.perf_counter()
        made = run_command("backup", str(destination), env=env)
        backup_seconds = time.perf_counter() - started
        if made.returncode:
            raise RuntimeError(made.stderr)
        live_bytes = directory_size(directory / "db")
        server.stop()
    started = time.perf_counter()
    checked = run_command("verify-backup", str(destination), env=env)
    verify_seconds = time.perf_counter() - started
    if checked.returncode:
        raise RuntimeError(checked.stderr)
    return {
        "events_in_room": json.loads(marker.read_text())["events"],
        "fill_seconds": fill_seconds,
        "backup_seconds": backup_seconds,
        "verify_seconds": verify_seconds,
        "live_database_bytes": live_bytes,
        "backup_bytes": directory_size(destination),
        "backup_summary": made.stdout.strip(),
        "verify_summary": checked.stdout.strip(),
    }


def report(result: dict[str, float]) -> None:
    print(f"backup: a LevelDB database of {result['events_in_room']} messages, server running")
    if result["fill_seconds"]:
        print(f"  filled in                {result['fill_seconds']:10.1f} s")
    print(f"  backup (online) took     {result['backup_seconds']:10.2f} s")
    print(f"  verify-backup took       {result['verify_seconds']:10.2f} s")
    print(f"  live database            {result['live_database_bytes'] / 1e6:10.1f} MB")
    print(f"  backup                   {result['backup_bytes'] / 1e6:10.1f} MB")
    print(f"  {result['backup_summary']}")
    print(f"  {result['verify_summary']}")


def run(*, connections: int, duration: float, warmup: float, events: int = 100_000) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as directory:
        report(measure(events, connections, Path(directory)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--database", type=Path, help="keep (and reuse) the filled database here")
    arguments = parser.parse_args()
    if arguments.database is None:
        run(connections=arguments.senders, duration=0, warmup=0, events=arguments.events)
        return
    arguments.database.mkdir(parents=True, exist_ok=True)
    report(measure(arguments.events, arguments.senders, arguments.database))


if __name__ == "__main__":
    main()
