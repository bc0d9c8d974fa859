"""`python -m bench versions`: our per-request overhead on the cheapest endpoint.

Serves `GET /_matrix/client/versions` from (1) the real server, started as
`python -m matrix_conduit`, and (2) a bare QuartTrio app on the same
hypercorn setup (`bench/hello_app.py`), one after the other, and loads each
with the keep-alive generator in a third process (`bench/load.py`). For each
it prints requests per second and the server process's CPU time per request,
read from /proc/<pid>/stat over exactly the measured window. CPU per request
is the number to compare: requests per second also depends on what else the
machine is doing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.process import server_process, write_config

PATH = "/_matrix/client/versions"
APPS = {
    "matrix-conduit": [sys.executable, "-m", "matrix_conduit"],
    "bare quart-trio": [sys.executable, "-m", "bench.hello_app"],
}
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / CLOCK_TICKS_PER_SECOND


@dataclass(frozen=True)
class Measurement:
    app: str
    requests: int
    errors: int
    seconds: float
    server_cpu_seconds: float
    client_cpu_seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_microseconds_per_request(self) -> float:
        return self.server_cpu_seconds / self.requests * 1e6

    @property
    def requests_per_server_cpu_second(self) -> float:
        return self.requests / self.server_cpu_seconds


def load(app: str, url: str, server_pid: int, connections: int, duration: float, warmup: float):
    """Load `url` from a separate process; the server's CPU time over the measured part."""
    options = [f"--connections={connections}", f"--warmup={warmup}", f"--duration={duration}"]
    generator = subprocess.Popen(
        [sys.executable, "-m", "bench.load", url, *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert generator.stdout.readline() == "measuring\n"
    cpu_at_start = cpu_seconds(server_pid)
    result = json.loads(generator.stdout.readline())
    cpu_at_end = cpu_seconds(server_pid)
    if generator.wait() != 0:
        raise RuntimeError(f"the load generator failed with status {generator.returncode}")
    return Measurement(
        app=app,
        requests=result["requests"],
        errors=result["errors"],
        seconds=result["seconds"],
        server_cpu_seconds=cpu_at_end - cpu_at_start,
        client_cpu_seconds=result["client_cpu_seconds"],
    )


def measure(app: str, connections: int, duration: float, warmup: float) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="bench-versions-") as directory:
        config = write_config(Path(directory), log="warn")
        with server_process(config, command=APPS[app]) as server:
            measurement = load(
                app, server.base_url + PATH, server.process.pid, connections, duration, warmup
            )
            server.stop()
    return measurement


def report(measurements: list[Measurement], connections: int) -> None:
    print(f"GET {PATH}, {connections} keep-alive connections, {os.cpu_count()} CPUs")
    print(
        f"{'app':<18}{'requests/s':>12}{'server CPU µs/req':>20}"
        f"{'req/server CPU-s':>18}{'errors':>8}{'client CPU-s':>14}"
    )
    for m in measurements:
        print(
            f"{m.app:<18}{m.requests_per_second:>12.0f}"
            f"{m.server_cpu_microseconds_per_request:>20.0f}"
            f"{m.requests_per_server_cpu_second:>18.0f}{m.errors:>8}"
            f"{m.client_cpu_seconds:>14.1f}"
        )
    ours, bare = measurements
    ours_cost = ours.server_cpu_microseconds_per_request
    bare_cost = bare.server_cpu_microseconds_per_request
    print(
        f"our overhead: {ours_cost - bare_cost:+.0f} µs of server CPU per request "
        f"({ours_cost / bare_cost:.2f}× the bare app)"
    )


def run(*, connections: int, duration: float, warmup: float) -> None:
    measurements = [measure(app, connections, duration, warmup) for app in APPS]
    report(measurements, connections)
