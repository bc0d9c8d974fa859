"""The server as a process: signals, systemd notification, refusals an admin can act on.

systemd (Type=notify) hears READY=1 once the server listens and STOPPING=1
when a signal starts the shutdown.

Every case runs the real `matrix-conduit` command (`python -m matrix_conduit`)
in a child process, because exit statuses, signals, stderr and file modes
are what systemd and the admin see.
"""

from __future__ import annotations

import signal
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from matrix_conduit.service.globals import Globals
from matrix_conduit.storage import open_database
from tests.support.process import (
    HANG_LIMIT_SECONDS,
    run_command,
    server_process,
    write_config,
)

pytestmark = pytest.mark.slow


def assert_refused(result, *message_parts: str) -> None:
    """Exit status 1 and one clear message as the last line on stderr, never a traceback.

    Log lines of what started before the refusal (warnings about the config, the admin
    room) may come first; the refusal is what the admin reads last."""
    assert result.returncode == 1, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("matrix-conduit: "), result.stderr
    assert "Traceback" not in result.stderr
    for part in message_parts:
        assert part in result.stderr


@pytest.fixture
def notify_socket() -> socket.socket:
    """A datagram socket standing in for systemd's notification socket."""
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        path = Path(directory) / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(HANG_LIMIT_SECONDS)
            yield sock


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_server_with_exit_status_0_and_the_database_closed(
    tmp_path, notify_socket, signum
):
    config = write_config(tmp_path)
    with server_process(config, {"NOTIFY_SOCKET": notify_socket.getsockname()}) as server:
        assert notify_socket.recv(4096) == b"READY=1"
        status = server.stop(signum)

    assert status == 0, server.stderr
    assert notify_socket.recv(4096) == b"STOPPING=1"
    assert f"received {signal.Signals(signum).name}, shutting down" in server.stderr
    assert "stopped; database closed" in server.stderr
    with open_database("leveldb", str(tmp_path / "db")) as db:
        assert db.tree("global").get(b"server_name") == b"localhost"


def test_second_server_on_the_same_database_exits_saying_it_is_in_use(tmp_path):
    first = write_config(tmp_path)
    second_directory = tmp_path / "second"
    second_directory.mkdir()
    second = write_config(second_directory, database_path=str(tmp_path / "db"))

    with server_process(first) as server:
        result = run_command(env={"CONDUIT_CONFIG": str(second)})
        assert server.process.poll() is None, "the first server must keep running"

    assert_refused(result, f"database at {tmp_path / 'db'} is in use by another process")


def test_database_made_for_another_server_name_is_refused_with_an_explanation(tmp_path):
    with open_database("leveldb", str(tmp_path / "db")) as db:
        Globals(db, "old.example")
    config = write_config(tmp_path, server_name="new.example")

    result = run_command(env={"CONDUIT_CONFIG": str(config)})

    assert_refused(
        result, "created for server_name 'old.example'", "configuration says 'new.example'"
    )


def test_port_in_use_exits_naming_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, port=port)

        result = run_command(env={"CONDUIT_CONFIG": str(config)})

    assert_refused(result, f"cannot listen on 127.0.0.1:{port}: Address already in use")


def test_database_files_are_private_even_under_a_permissive_umask(tmp_path):
    config = write_config(tmp_path)
    with server_process(config, umask=0o022) as server:
        assert server.stop() == 0

    database = tmp_path / "db"
    modes = {
        str(path.relative_to(database)): stat.S_IMODE(path.stat().st_mode)
        for path in [database, *database.rglob("*")]
    }
    expected = {name: 0o700 if (database / name).is_dir() else 0o600 for name in modes}
    assert modes == expected
