"""Synapse from PyPI as a real federation peer of our servers, for `tests/federation/`.

`install_synapse` puts the exact `matrix-synapse` of `requirements-synapse.txt`
(every dependency frozen) into its own venv, `.synapse-venv/` at the repo
root, once: `make test` runs it before pytest (`python -m tests.support.synapse`),
and the fixture runs it again, which costs nothing when the venv matches the
requirements. An install that fails is a test error, never a skip.

`running_synapse` starts one real Synapse process (`python -m
synapse.app.homeserver`) the way `../shared/notes/federation-testing.md`
found to work on loopback:
- its own 127.0.0.x address and an IP-literal server name with an explicit
  port (`127.0.0.50:PORT`), so neither side asks DNS or `.well-known`
  (server-server API, "Resolving server names", step 1 and 2);
- a TLS listener on that port carrying the `federation` resource (which
  includes `/_matrix/key/v2`), with a certificate from the test's CA
  (`FederationCa` of `tests/support/federation_ca.py`, the one our servers
  use), and a plain-HTTP client listener on another port;
- `federation_custom_ca_list` naming that CA; `ip_range_blacklist`
  covering every address but 127.0.0.0/8 (Synapse's default list blocks
  loopback, so it would refuse to reach our servers; this one also keeps
  it from reaching anything else), `trusted_key_servers: []` and
  `report_stats: false`: nothing leaves 127.0.0.0/8; open registration without
  verification, every `rc_*` limit raised, `bcrypt_rounds: 4`, public room
  publication allowed, SQLite in the test's directory.

The fixtures (`tests/support/synapse_fixtures.py`, so that this module
needs no pytest and `bench/` can run Synapse too): `synapse_server`
is module-scoped (a cold start with schema creation takes seconds);
`synapse` is the per-test view of it that also points `SSL_CERT_FILE` at
its CA, so that our servers started in the test trust Synapse's certificate
and present one (from `synapse.ca`) that Synapse trusts. When a test that
used it fails, the report gets the part of Synapse's log written during
that test. Waiting loops poll with short sleeps and stop at generous
limits: they turn a hang into a failure and never assert a duration.

Use, in a test under `tests/federation/`:

    async def test_something(nursery, synapse, tmp_path):
        us = await start_federating(nursery, synapse.ca, tmp_path / "us", "127.0.0.2")
        alice = await synapse.register_async(displayname="Alice")  # or .register() in setup
        async with synapse.client(alice) as client:  # Synapse's client API as alice
            await client.post("/_matrix/client/v3/createRoom", json={})
        await us.federation.client.request(synapse.server_name, "GET", "/_matrix/...")

Each test's own server has a new port, hence a new server name, so the
backoff Synapse keeps per destination never carries over between tests.
A test that stops or restarts Synapse takes one of its own: `with
running_synapse(ca, tmp_path / "synapse") as synapse:` (the ordinary `ca`
fixture), and `await synapse.restart_async()`.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.support.accounts import PASSWORD
from tests.support.federation_ca import FederationCa, free_port_on

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements-synapse.txt"
VENV = ROOT / ".synapse-venv"
STAMP = VENV / "installed-requirements.txt"
"""A copy of the requirements the venv was completed with; written last."""
INSTALL_LOCK = ROOT / ".synapse-venv.lock"
"""Serialises installs between pytest-xdist workers (and `make test`)."""

SYNAPSE_ADDRESS = "127.0.0.50"
INSTALL_LIMIT_SECONDS = 1200.0
START_LIMIT_SECONDS = 180.0
"""How long Synapse may take to answer after starting (it is seconds when the machine is quiet)."""
STOP_LIMIT_SECONDS = 30.0
PORT_ATTEMPTS = 5
FAILURE_LOG_LINES = 300

IP_RANGE_BLOCKLIST = [
    *(str(net) for net in IPv4Network("0.0.0.0/0").address_exclude(IPv4Network("127.0.0.0/8"))),
    "::/0",
]
"""Every address but 127.0.0.0/8, for everything Synapse fetches.

Not merely Synapse's default list minus loopback (which the notes found
necessary): nothing beyond loopback, so no test can make Synapse reach the
internet. An allowlist alone would not do: the outer wrapper of Synapse's
federation client checks IP literals against the blocklist only.
"""

RAISED_LIMIT = {"per_second": 10000, "burst_count": 100000}
RATE_LIMITS: dict[str, Any] = {
    "rc_message": RAISED_LIMIT,
    "rc_registration": RAISED_LIMIT,
    "rc_registration_token_validity": RAISED_LIMIT,
    "rc_login": {"address": RAISED_LIMIT, "account": RAISED_LIMIT, "failed_attempts": RAISED_LIMIT},
    "rc_admin_redaction": RAISED_LIMIT,
    "rc_joins": {"local": RAISED_LIMIT, "remote": RAISED_LIMIT},
    "rc_joins_per_room": RAISED_LIMIT,
    "rc_key_requests": RAISED_LIMIT,
    "rc_3pid_validation": RAISED_LIMIT,
    "rc_invites": {"per_room": RAISED_LIMIT, "per_user": RAISED_LIMIT, "per_issuer": RAISED_LIMIT},
    "rc_third_party_invite": RAISED_LIMIT,
    "rc_media_create": RAISED_LIMIT,
    "rc_presence": {"per_user": RAISED_LIMIT},
    "rc_delayed_event_mgmt": RAISED_LIMIT,
    "rc_room_creation": RAISED_LIMIT,
    "rc_reports": RAISED_LIMIT,
    "rc_user_directory": RAISED_LIMIT,
    "rc_profile": RAISED_LIMIT,
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 10000,
        "sleep_delay": 1,
        "reject_limit": 10000,
        "concurrent": 1000,
    },
    "federation_rr_transactions_per_room_per_second": 10000,
}


class SynapseError(Exception):
    """Synapse could not be installed or started; the message carries its output."""


# Installing -----------------------------------------------------------------


def synapse_python() -> Path:
    return VENV / "bin" / "python"


def _installed(wanted: str) -> bool:
    return synapse_python().exists() and STAMP.exists() and STAMP.read_text() == wanted


def run_install_step(command: list[str], what: str, error: type[Exception] = SynapseError) -> None:
    """One step of installing a peer's venv; `error` (with its output) when it fails."""
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=INSTALL_LIMIT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as timed_out:
        raise error(f"{what} did not finish: {timed_out}") from None
    if result.returncode != 0:
        raise error(
            f"{what} failed with status {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )


def install_synapse() -> Path:
    """The Python of Synapse's venv, installed from `requirements-synapse.txt` if needed.

    From PyPI through pip (whatever index the machine's pip is set up for).
    A venv that does not match the requirements is removed and made anew.
    """
    wanted = REQUIREMENTS.read_text()
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(wanted):
            return synapse_python()
        shutil.rmtree(VENV, ignore_errors=True)
        run_install_step([sys.executable, "-m", "venv", str(VENV)], "creating .synapse-venv")
        run_install_step(
            [
                str(synapse_python()),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
                str(REQUIREMENTS),
            ],
            f"pip install -r {REQUIREMENTS.name}",
        )
        run_install_step(
            [str(synapse_python()), "-c", "import synapse.app.homeserver"], "importing Synapse"
        )
        STAMP.write_text(wanted)
    return synapse_python()


# Running --------------------------------------------------------------------


@dataclass(frozen=True)
class SynapseUser:
    user_id: str
    access_token: str
    device_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


_localparts = itertools.count(1)


def _registration_body(localpart: str | None, password: str) -> dict[str, Any]:
    """`m.login.dummy` registration; a unique localpart unless one is given."""
    return {
        "username": localpart or f"user{next(_localparts)}-{secrets.token_hex(3)}",
        "password": password,
        "auth": {"type": "m.login.dummy"},
        "initial_device_display_name": "test",
    }


def _registered(response: httpx.Response) -> SynapseUser:
    if response.status_code != 200:
        raise AssertionError(f"Synapse refused the registration: {response.text}")
    answer = response.json()
    return SynapseUser(answer["user_id"], answer["access_token"], answer["device_id"])


@dataclass
class Synapse:
    """A running Synapse: its names, addresses, log, and ways to act as its users."""

    server_name: str
    address: str
    federation_port: int
    client_port: int
    directory: Path
    ca: FederationCa
    process: subprocess.Popen[bytes]
    _log_marks: list[int] = field(default_factory=list)

    @property
    def client_url(self) -> str:
        """The plain-HTTP client-server API (`http://127.0.0.50:PORT`)."""
        return f"http://{self.address}:{self.client_port}"

    @property
    def federation_url(self) -> str:
        """The TLS federation listener: `https://` + the server name."""
        return f"https://{self.server_name}"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    @property
    def output_path(self) -> Path:
        """What the process wrote to stdout/stderr (startup errors land here)."""
        return self.directory / "output.log"

    def log(self, since: int = 0) -> str:
        """Synapse's log from byte `since` on, then its stdout/stderr."""
        text = ""
        for path, start in ((self.log_path, since), (self.output_path, 0)):
            if path.exists():
                with path.open("rb") as log:
                    log.seek(start)
                    text += log.read().decode("utf-8", "replace")
        return text

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts the test's CA (to call the federation port directly)."""
        return ssl.create_default_context(cafile=str(self.ca.certificate_path))

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def register(
        self, localpart: str | None = None, password: str = PASSWORD, displayname: str | None = None
    ) -> SynapseUser:
        """A new user on Synapse (m.login.dummy) with an access token; blocks (use in setup).

        `register_async` is the same from inside a trio test.
        """
        with httpx.Client(base_url=self.client_url, timeout=60) as client:
            user = _registered(
                client.post(
                    "/_matrix/client/v3/register",
                    json=_registration_body(localpart, password),
                )
            )
            if displayname is not None:
                client.put(
                    f"/_matrix/client/v3/profile/{user.user_id}/displayname",
                    json={"displayname": displayname},
                    headers=user.headers,
                ).raise_for_status()
        return user

    async def register_async(
        self, localpart: str | None = None, password: str = PASSWORD, displayname: str | None = None
    ) -> SynapseUser:
        async with self.client() as client:
            user = _registered(
                await client.post(
                    "/_matrix/client/v3/register",
                    json=_registration_body(localpart, password),
                )
            )
            if displayname is not None:
                answer = await client.put(
                    f"/_matrix/client/v3/profile/{user.user_id}/displayname",
                    json={"displayname": displayname},
                    headers=user.headers,
                )
                answer.raise_for_status()
        return user

    def client(self, user: SynapseUser | None = None, **options: Any) -> httpx.AsyncClient:
        """An async client of Synapse's client API, authorised as `user` if given.

        A new one for each test (a client belongs to the trio run that opened
        its connections): `async with synapse.client(alice) as client: ...`.
        """
        headers = user.headers if user is not None else {}
        options.setdefault("timeout", 60)
        return httpx.AsyncClient(base_url=self.client_url, headers=headers, **options)

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise SynapseError(
                f"Synapse exited with status {self.process.returncode}:\n{self._tail()}"
            )

    def _tail(self, since: int = 0) -> str:
        lines = self.log(since).splitlines()
        return "\n".join(lines[-FAILURE_LOG_LINES:])

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not end; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_LIMIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def restart(self) -> None:
        """Stop, then start again on the same config and database; blocks until it answers.

        Only from the thread that ran `running_synapse` (see `restart_async`).
        Only for a Synapse of the test's own (`running_synapse`), not the module's.
        """
        self.stop()
        self.process = _start_process(self.directory)
        _wait_until_ready(self)

    async def restart_async(self) -> None:
        """`restart` from a trio test: our servers in the test's loop keep answering meanwhile.

        Stopping and waiting happen in worker threads, but the new process
        starts on the test's own thread: `setpriv --pdeathsig` signals the
        child when the *thread* that forked it ends, and trio's idle worker
        threads end after 10 s (a Synapse started from one got SIGTERM then).
        """
        await trio.to_thread.run_sync(self.stop)
        self.process = _start_process(self.directory)
        await trio.to_thread.run_sync(_wait_until_ready, self)


def _signing_key() -> str:
    """A signing key file's line: `ed25519 <key version> <unpadded base64 seed>`."""
    seed = b64encode(os.urandom(32)).decode().rstrip("=")
    return f"ed25519 a_{secrets.token_hex(2)} {seed}\n"


def _log_config(log_path: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                "%(request)s - %(message)s"
            }
        },
        "filters": {
            "context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filters": ["context"],
                "filename": str(log_path),
                "encoding": "utf8",
            }
        },
        "loggers": {"synapse.storage.SQL": {"level": "WARNING"}, "twisted": {"level": "WARNING"}},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def synapse_config(
    directory: Path,
    ca: FederationCa,
    address: str,
    federation_port: int,
    client_port: int,
    **overrides: Any,
) -> dict[str, Any]:
    """homeserver.yaml's settings for a Synapse named `address:federation_port`."""
    certificate, key = ca.certificate_for(address)
    signing_key = directory / "signing.key"
    signing_key.write_text(_signing_key())
    log_config = directory / "log.yaml"
    log_config.write_text(json.dumps(_log_config(directory / "homeserver.log")))
    values: dict[str, Any] = {
        "server_name": f"{address}:{federation_port}",
        "public_baseurl": f"http://{address}:{client_port}/",
        "pid_file": str(directory / "homeserver.pid"),
        "report_stats": False,
        "listeners": [
            {
                "port": federation_port,
                "bind_addresses": [address],
                "type": "http",
                "tls": True,
                "x_forwarded": False,
                "resources": [{"names": ["federation"], "compress": False}],
            },
            {
                "port": client_port,
                "bind_addresses": [address],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            },
        ],
        "tls_certificate_path": certificate,
        "tls_private_key_path": key,
        "federation_verify_certificates": True,
        "federation_custom_ca_list": [str(ca.certificate_path)],
        "ip_range_blacklist": IP_RANGE_BLOCKLIST,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "log_config": str(log_config),
        "media_store_path": str(directory / "media"),
        "signing_key_path": str(signing_key),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "bcrypt_rounds": 4,
        "room_list_publication_rules": [{"action": "allow"}],
        "allow_public_rooms_over_federation": True,
        "enable_metrics": False,
        "url_preview_enabled": False,
        "serve_server_wellknown": False,
        "presence": {"enabled": True},
        **RATE_LIMITS,
    }
    values.update(overrides)
    return values


def _child_environment() -> dict[str, str]:
    """Ours, minus what would make Synapse or its TLS behave differently from production."""
    dropped = ("SSL_CERT_FILE", "SSL_CERT_DIR", "PYTHONPATH", "VIRTUAL_ENV")
    environment = {name: value for name, value in os.environ.items() if name not in dropped}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _dying_with_the_tests(command: list[str]) -> list[str]:
    """`command` under `setpriv --pdeathsig TERM` (util-linux) when there is one.

    Synapse then gets SIGTERM when the test process dies, so a killed pytest
    leaves no Synapse running.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *command] if setpriv else command


def _start_process(directory: Path) -> subprocess.Popen[bytes]:
    """`python -m synapse.app.homeserver` on `directory/homeserver.yaml`, output appended."""
    command = [
        str(synapse_python()),
        "-m",
        "synapse.app.homeserver",
        "--config-path",
        str(directory / "homeserver.yaml"),
    ]
    with (directory / "output.log").open("ab") as output:
        return subprocess.Popen(
            _dying_with_the_tests(command),
            cwd=directory,
            env=_child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )


def _spawn(directory: Path, config: dict[str, Any], ca: FederationCa) -> Synapse:
    (directory / "homeserver.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    process = _start_process(directory)
    federation_port = config["listeners"][0]["port"]
    client_port = config["listeners"][1]["port"]
    address = config["listeners"][0]["bind_addresses"][0]
    return Synapse(
        config["server_name"], address, federation_port, client_port, directory, ca, process
    )


class _PortTaken(Exception):
    pass


def _wait_until_ready(synapse: Synapse) -> None:
    """Until the client port answers `/health` and the TLS port serves Synapse's keys."""
    give_up = time.monotonic() + START_LIMIT_SECONDS
    checks = [
        (httpx.Client(timeout=5), f"{synapse.client_url}/health"),
        (
            httpx.Client(timeout=5, verify=synapse.tls_context()),
            f"{synapse.federation_url}/_matrix/key/v2/server",
        ),
    ]
    try:
        for client, url in checks:
            while True:
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if synapse.process.poll() is not None:
                    log = synapse.log()
                    if "Address already in use" in log:
                        raise _PortTaken(log)
                    raise SynapseError(
                        f"Synapse exited with status {synapse.process.returncode}:\n{log}"
                    )
                if time.monotonic() > give_up:
                    raise SynapseError(f"Synapse did not answer {url}:\n{synapse._tail()}")
                time.sleep(0.1)
    finally:
        for client, _ in checks:
            client.close()


@contextmanager
def running_synapse(
    ca: FederationCa, directory: Path, address: str = SYNAPSE_ADDRESS, **overrides: Any
) -> Iterator[Synapse]:
    """A Synapse at `address` on free ports, trusting `ca`, ready; stopped at the end.

    `overrides` are homeserver.yaml settings. Each try (a port may be taken
    between choosing it and Synapse binding it) gets a fresh directory:
    Synapse refuses a database made for another server name.
    """
    install_synapse()
    for attempt in range(1, PORT_ATTEMPTS + 1):
        attempt_directory = directory / f"attempt{attempt}"
        attempt_directory.mkdir(parents=True)
        federation_port = free_port_on(address)
        client_port = free_port_on(address)
        if client_port == federation_port:
            continue
        config = synapse_config(
            attempt_directory, ca, address, federation_port, client_port, **overrides
        )
        synapse = _spawn(attempt_directory, config, ca)
        try:
            _wait_until_ready(synapse)
            break
        except _PortTaken:
            synapse.stop()
            if attempt == PORT_ATTEMPTS:
                raise
        except BaseException:
            synapse.stop()
            raise
    else:
        raise SynapseError("no free pair of ports for Synapse")
    try:
        yield synapse
    finally:
        synapse.stop()


if __name__ == "__main__":
    # `make test` installs Synapse before pytest runs, so no test waits for it.
    started = time.monotonic()
    print(f"Synapse venv: {install_synapse()} ({time.monotonic() - started:.0f} s)")
