"""Sydent from PyPI as a real identity server, for the third-party invite tests.

`install_sydent` puts the exact `matrix-sydent` of `requirements-sydent.txt`
(every dependency frozen) into its own venv, `.sydent-venv/` at the repo
root, once, as `tests/support/synapse.py` does for Synapse: `make test`
runs it before pytest (`python -m tests.support.sydent`) and the fixture
runs it again, which costs nothing when the venv matches. An install that
fails is a test error, never a skip.

`running_sydent` starts it (`python -m sydent.sydent`) on 127.0.0.1:
- its client API on plain HTTP (the only way Sydent serves it), reached by
  our servers as `https://<id_server>` through `serve_tls_front`, a TLS
  forwarder in the test's trio loop with a certificate from the test's CA
  (`tests/support/federation_ca.py`, trusted through `SSL_CERT_FILE`);
- `server.name` is that `id_server` (`127.0.0.1:PORT`), the name Sydent
  signs with and the destination it checks in signed `/3pid/unbind`s;
- `ip.whitelist = 127.0.0.0/8` and `federation.verifycerts = false`, so it
  can call our servers' `/3pid/onbind`, `/_matrix/key/v2/server` and
  `/openid/userinfo` on loopback (nothing beyond loopback is reachable:
  every name it meets is a 127.0.0.x literal);
- email through `SmtpSink`, an SMTP server of the test's own that keeps
  every message (the validation tokens a test reads), with the two email
  templates Sydent needs (its wheel ships none), and replication off.

Waiting loops poll with short sleeps and stop at generous limits.
"""

from __future__ import annotations

import email
import email.policy
import fcntl
import functools
import os
import shutil
import signal
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
import trio

from tests.support.federation_ca import FederationCa, free_port_on
from tests.support.synapse import run_install_step

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements-sydent.txt"
VENV = ROOT / ".sydent-venv"
STAMP = VENV / "installed-requirements.txt"
INSTALL_LOCK = ROOT / ".sydent-venv.lock"
INSTALL_LIMIT_SECONDS = 1200.0
START_LIMIT_SECONDS = 60.0
MAIL_LIMIT_SECONDS = 30.0
SYDENT_ADDRESS = "127.0.0.1"

VERIFICATION_TEMPLATE = """Date: %(date)s
From: %(from)s
To: %(to)s
Message-ID: %(messageid)s
Subject: Your validation token
Content-Type: text/plain; charset=UTF-8

token=%(token)s
"""
INVITE_TEMPLATE = """Date: %(date)s
From: %(from)s
To: %(to)s
Message-ID: %(messageid)s
Subject: %(subject_header_value)s
Content-Type: text/plain; charset=UTF-8

%(sender_display_name)s invited you to %(room_name)s (%(room_id)s).
"""


class SydentError(Exception):
    """Sydent could not be installed or started; the message carries its output."""


# Installing -----------------------------------------------------------------


def sydent_python() -> Path:
    return VENV / "bin" / "python"


def _run(command: list[str], what: str) -> None:
    run_install_step(command, what, SydentError)


def install_sydent() -> Path:
    """The Python of Sydent's venv, installed from `requirements-sydent.txt` if needed."""
    wanted = REQUIREMENTS.read_text()
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if sydent_python().exists() and STAMP.exists() and STAMP.read_text() == wanted:
            return sydent_python()
        shutil.rmtree(VENV, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(VENV)], "creating .sydent-venv")
        pip = [str(sydent_python()), "-m", "pip", "install", "--quiet"]
        _run(
            [*pip, "--disable-pip-version-check", "--no-input", "-r", str(REQUIREMENTS)],
            f"pip install -r {REQUIREMENTS.name}",
        )
        _run([str(sydent_python()), "-c", "import sydent.sydent"], "importing Sydent")
        STAMP.write_text(wanted)
    return sydent_python()


# Email ----------------------------------------------------------------------


@dataclass
class SmtpSink:
    """An SMTP server on loopback that accepts every message and keeps it."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None

    async def wait_for(self, to: str, count: int = 1) -> EmailMessage:
        """The `count`-th message to `to`, once it came (polling, generous limit)."""
        with trio.move_on_after(MAIL_LIMIT_SECONDS):
            while True:
                received = [message for message in self.messages if to in str(message["To"])]
                if len(received) >= count:
                    return received[count - 1]
                await trio.sleep(0.05)
        raise AssertionError(f"no message {count} to {to}; got {len(self.messages)} in all")


@contextmanager
def smtp_sink(address: str = SYDENT_ADDRESS) -> Iterator[SmtpSink]:
    sink = SmtpSink(0)

    class Session(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220 sink ESMTP\r\n")
            while line := self.rfile.readline(65536):
                command = line.strip().upper()
                if command.startswith(b"DATA"):
                    self.wfile.write(b"354 go on\r\n")
                    data = b""
                    while (part := self.rfile.readline(1 << 20)) not in (b".\r\n", b""):
                        data += part[1:] if part.startswith(b"..") else part
                    sink.messages.append(
                        email.message_from_bytes(data, policy=email.policy.default)
                    )
                    self.wfile.write(b"250 kept\r\n")
                elif command.startswith(b"QUIT"):
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 ok\r\n")

    server = socketserver.ThreadingTCPServer((address, 0), Session)
    server.daemon_threads = True
    sink.port = server.server_address[1]
    sink._server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


# Running --------------------------------------------------------------------


@dataclass
class Sydent:
    """A running Sydent: `id_server` is what clients name (`https://` through the TLS front)."""

    id_server: str
    http_port: int
    mail: SmtpSink
    log_path: Path

    @property
    def tls_port(self) -> int:
        return int(self.id_server.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _config(directory: Path, id_server: str, http_port: int, mail: SmtpSink) -> str:
    templates = directory / "res"
    (templates / "matrix-org").mkdir(parents=True, exist_ok=True)
    (templates / "matrix-org" / "verification_template.eml").write_text(VERIFICATION_TEMPLATE)
    (templates / "matrix-org" / "invite_template.eml").write_text(INVITE_TEMPLATE)
    return "\n".join(
        [
            "[general]",
            f"server.name = {id_server}",
            f"templates.path = {templates}",
            f"pidfile.path = {directory / 'sydent.pid'}",
            "ip.whitelist = 127.0.0.0/8",
            "[db]",
            f"db.file = {directory / 'sydent.db'}",
            "[http]",
            f"clientapi.http.bind_address = {SYDENT_ADDRESS}",
            f"clientapi.http.port = {http_port}",
            "federation.verifycerts = False",
            f"client_http_base = https://{id_server}",
            "[email]",
            f"email.smtphost = {SYDENT_ADDRESS}",
            f"email.smtpport = {mail.port}",
            "email.hostname = sydent.test",
            "",
        ]
    )


@contextmanager
def running_sydent(directory: Path) -> Iterator[Sydent]:
    """Sydent on 127.0.0.1, email to its own sink; stopped (SIGTERM, then SIGKILL) at the end.

    Its `id_server` answers only once `serve_tls_front` runs for it.
    """
    python = install_sydent()
    directory.mkdir(parents=True, exist_ok=True)
    http_port = free_port_on(SYDENT_ADDRESS)
    id_server = f"{SYDENT_ADDRESS}:{free_port_on(SYDENT_ADDRESS)}"
    with smtp_sink() as mail:
        config_path = directory / "sydent.conf"
        config_path.write_text(_config(directory, id_server, http_port, mail))
        log_path = directory / "sydent.log"
        environment = {**os.environ, "SYDENT_CONF": str(config_path)}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(python), "-m", "sydent.sydent"],
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        sydent = Sydent(id_server, http_port, mail, log_path)
        try:
            _wait_until_up(process, sydent)
            yield sydent
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(process: subprocess.Popen, sydent: Sydent) -> None:
    deadline = time.monotonic() + START_LIMIT_SECONDS
    url = f"http://{SYDENT_ADDRESS}:{sydent.http_port}/_matrix/identity/v2"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SydentError(f"Sydent exited with {process.returncode}:\n{sydent.log()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SydentError(f"Sydent did not answer within {START_LIMIT_SECONDS} s:\n{sydent.log()}")


async def serve_tls_front(nursery: trio.Nursery, ca: FederationCa, sydent: Sydent) -> None:
    """`https://<id_server>`: TLS with the CA's certificate, each connection piped to Sydent."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*ca.certificate_for(SYDENT_ADDRESS))

    async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async def handle(client: trio.SSLStream) -> None:
        try:
            upstream = await trio.open_tcp_stream(SYDENT_ADDRESS, sydent.http_port)
        except OSError:
            await client.aclose()
            return
        async with trio.open_nursery() as both_ways:
            both_ways.start_soon(pipe, client, upstream)
            both_ways.start_soon(pipe, upstream, client)

    await nursery.start(
        functools.partial(
            trio.serve_ssl_over_tcp, handle, sydent.tls_port, tls, host=SYDENT_ADDRESS
        )
    )


if __name__ == "__main__":
    # `make test` installs Sydent before pytest runs, so no test waits for it.
    started = time.monotonic()
    print(f"Sydent venv: {install_sydent()} ({time.monotonic() - started:.0f} s)")
