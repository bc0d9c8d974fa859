"""A real PostgreSQL server for the tests, from Debian's `postgresql` package.

`make test` (and so `.ci/run`) installs the package (`make postgresql`); this
module finds `initdb`/`pg_ctl` under `/usr/lib/postgresql/*/bin`, makes a
cluster in a temporary directory and starts it on 127.0.0.1 on a free port,
once per pytest process (`postgres_server`, session-scoped; stopped at exit).
`pytest --backend=postgresql` puts every server of `make_config`
(tests/support/server.py) on it too (`backend_overrides`). PostgreSQL
refuses to run as root, and the tests run as root here, so the cluster belongs
to `nobody` then (subprocess `user=`); as any other user it runs as that user.
The superuser `conduit` has a password (scram-sha-256, also on the Unix
socket), given to the backend through a password file as an admin would.

Each test gets its own empty database (`fresh_database`, `CREATE DATABASE`
from template0), so that tests never see each other's trees. A missing
PostgreSQL is an error, never a skip.

Use, in a test module:

    from tests.support.postgres import postgres_server  # noqa: F401 (fixture)

    def test_x(postgres_server):
        url = postgres_server.fresh_database()
        db = open_database("postgresql", str(tmp / "db"), url=url,
                           password_file=postgres_server.password_file)
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

USER = "conduit"
PASSWORD = "test-password-not-secret"


def postgres_bin_directory() -> str:
    """The newest `/usr/lib/postgresql/N/bin` with initdb; an error says how to install it."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(path.split("/")[4]),
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL is not installed: run `make postgresql` "
            "(apt-get install -y postgresql) before the tests"
        )
    return os.path.dirname(candidates[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A running cluster: where it listens, how to log in, and databases to hand out."""

    directory: str
    port: int
    password_file: str
    bin_directory: str
    run_as: str | None
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        """A libpq URI without the password (it comes from `password_file`)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url(database), password=PASSWORD, autocommit=True)

    def fresh_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"test_{os.getpid()}_{next(self._numbers)}"
        with self.connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete its files (again: nothing)."""
        if not os.path.isdir(f"{self.directory}/data"):
            return
        _run(
            [f"{self.bin_directory}/pg_ctl", "-D", f"{self.directory}/data", "-m", "fast", "stop"],
            self.run_as,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def _run(command: list[str], run_as: str | None) -> None:
    completed = subprocess.run(
        command,
        user=run_as,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        cwd="/",
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )


def start_postgres() -> PostgresServer:
    """initdb into a new temporary directory and start the server on 127.0.0.1."""
    bin_directory = postgres_bin_directory()
    run_as = "nobody" if os.geteuid() == 0 else None
    directory = tempfile.mkdtemp(prefix="conduit-postgres-")
    os.chmod(directory, 0o755)
    secret = os.path.join(directory, "initdb-password")
    with open(secret, "w", encoding="utf-8") as file:
        file.write(PASSWORD + "\n")
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        os.chown(secret, entry.pw_uid, entry.pw_gid)
    data = os.path.join(directory, "data")
    _run(
        [
            f"{bin_directory}/initdb",
            "-D",
            data,
            "-U",
            USER,
            "--pwfile",
            secret,
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        ],
        run_as,
    )
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _run(
        [
            f"{bin_directory}/pg_ctl",
            "-D",
            data,
            "-o",
            options,
            "-l",
            f"{directory}/server.log",
            "-w",
            "-t",
            "60",
            "start",
        ],
        run_as,
    )
    password_file = os.path.join(directory, "client-password")
    with open(password_file, "w", encoding="utf-8") as file:
        file.write(PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    return PostgresServer(directory, port, password_file, bin_directory, run_as)


_shared: PostgresServer | None = None
_databases: dict[str, str] = {}
BACKEND_VARIABLE = "CONDUIT_TEST_BACKEND"
"""Set to "postgresql" by `pytest --backend=postgresql` (tests/conftest.py)."""


def shared_postgres() -> PostgresServer:
    """The one cluster of this process: started on first use, stopped when it exits."""
    global _shared
    if _shared is None:
        _shared = start_postgres()
        atexit.register(_shared.stop)
    return _shared


def backend_overrides(database_path: str) -> dict[str, str]:
    """Config keys that put a test server on PostgreSQL under `--backend=postgresql`.

    One database per `database_path`, so a test that restarts its server on
    the same directory finds its data again.
    """
    if os.environ.get(BACKEND_VARIABLE) != "postgresql":
        return {}
    server = shared_postgres()
    if database_path not in _databases:
        _databases[database_path] = server.fresh_database()
    return {
        "database_backend": "postgresql",
        "database_url": _databases[database_path],
        "database_password_file": server.password_file,
    }


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The PostgreSQL cluster of this pytest process."""
    return shared_postgres()


if __name__ == "__main__":
    running = start_postgres()
    print(running.url(), running.password_file, running.directory)
