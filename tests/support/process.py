"""Run the real `matrix-conduit` command in a child process, as an admin or systemd would.

For behaviour that only a separate process shows: signals, exit statuses,
stderr messages, sd_notify, file modes, a second process on the same
database. The child gets a clean environment (no inherited `CONDUIT_*`,
`NOTIFY_SOCKET` or `JOURNAL_STREAM`) plus what the test gives it.

Waiting loops poll with short sleeps and stop at generous limits: they only
turn a hang into a failure, they never assert how long anything took.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomlkit

from tests.support.server import PORT_ATTEMPTS, free_port

COMMAND = [sys.executable, "-m", "matrix_conduit"]
HANG_LIMIT_SECONDS = 60.0
"""How long a child may take to start or stop before the test gives up on it."""


def write_config(directory: Path, **overrides: Any) -> Path:
    """A `conduit.toml` in `directory` for a server on a free 127.0.0.1 port."""
    values: dict[str, Any] = {
        "server_name": "localhost",
        "database_backend": "leveldb",
        "database_path": str(directory / "db"),
        "address": "127.0.0.1",
        "port": free_port(),
        "allow_federation": False,
        "trusted_servers": [],
        "log": "info",
        "rate_limits": {"enabled": False},  # tests and benchmarks outpace any person
    }
    values.update(overrides)
    path = directory / "conduit.toml"
    path.write_text(tomlkit.dumps({"global": values}))
    return path


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CONDUIT_") and name not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")
    }
    return {**inherited, **extra}


def run_command(
    *arguments: str, env: Mapping[str, str] = {}, umask: int = 0o022
) -> subprocess.CompletedProcess[str]:
    """Run `matrix-conduit ARGUMENTS` to completion; stdout and stderr as text."""
    return subprocess.run(
        [*COMMAND, *arguments],
        env=child_environment(env),
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT_SECONDS,
        umask=umask,
    )


@dataclass
class ServerProcess:
    """A `matrix-conduit` child process serving `base_url`."""

    process: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send `signum` and wait for the process to end; its exit status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=HANG_LIMIT_SECONDS)


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.TransportError:
        return False


class _PortTaken(Exception):
    """The child could not bind its port: taken since `free_port` chose it."""


def _wait_until_answering(server: ServerProcess) -> None:
    url = server.base_url + "/_matrix/client/versions"
    give_up = time.monotonic() + HANG_LIMIT_SECONDS
    with httpx.Client(timeout=1.0) as client:  # one client: a new one per try costs CPU
        while not _answers(client, url):
            if server.process.poll() is not None:
                if "Address already in use" in server.stderr:
                    raise _PortTaken(server.stderr)
                raise RuntimeError(
                    f"the server exited with status {server.process.returncode}:\n{server.stderr}"
                )
            if time.monotonic() > give_up:
                raise RuntimeError(f"the server did not answer {url}:\n{server.stderr}")
            time.sleep(0.05)


def _spawn(
    config_path: Path, env: Mapping[str, str], umask: int, command: Sequence[str]
) -> ServerProcess:
    port = tomlkit.parse(config_path.read_text())["global"]["port"]
    stderr_path = config_path.with_name("stderr.log")
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            env=child_environment({"CONDUIT_CONFIG": str(config_path), **env}),
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            umask=umask,
        )
    return ServerProcess(process, f"http://127.0.0.1:{port}", stderr_path)


def _end(server: ServerProcess) -> None:
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def _move_to_a_free_port(config_path: Path) -> None:
    document = tomlkit.parse(config_path.read_text())
    document["global"]["port"] = free_port()
    config_path.write_text(tomlkit.dumps(document))


@contextmanager
def server_process(
    config_path: Path,
    env: Mapping[str, str] = {},
    umask: int = 0o022,
    command: Sequence[str] = COMMAND,
) -> Iterator[ServerProcess]:
    """The server running as `matrix-conduit` with `config_path`, answering HTTP.

    `command` may name another program that reads `$CONDUIT_CONFIG` and serves
    `/_matrix/client/versions` (the benchmark's baseline app). If the port was
    taken meanwhile, the config moves to another one (as `start_server` does).
    Killed at the end of the block if the caller has not stopped it.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        server = _spawn(config_path, env, umask, command)
        try:
            _wait_until_answering(server)
            break
        except _PortTaken:
            if attempt == PORT_ATTEMPTS:
                raise
            _move_to_a_free_port(config_path)
        except BaseException:
            _end(server)
            raise
    try:
        yield server
    finally:
        _end(server)
