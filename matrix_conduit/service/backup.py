"""Online backup, the server's side: `OnlineBackup.make` and the local backup socket.

`matrix_conduit/backup.py` says how a consistent copy is made and why the
`matrix-conduit backup` command reaches the server through a Unix socket
(`database_path/backup.sock`, mode 0600, peers checked with SO_PEERCRED).

For the admin room (service/admin_room/): a `backup DEST` command calls
`await services.backup.make(dest)` and answers with `report.summary()`; it
raises `BackupError` (its message is for the admin) when DEST exists and is not
empty, or cannot be written by the server's user. One backup runs at a time;
a second one waits for the first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct

import trio

from ..backup import BackupError, BackupReport, report_as_json, socket_path, start_copy
from ..storage import Database

log = logging.getLogger(__name__)

_MAX_REQUEST = 65536
_NOT_THE_SERVERS_USER = (
    "only the server's user may ask for a backup: run the command as that user "
    "(runuser -u conduit -- ...); with systemd's PrivateUsers=yes even root looks "
    "like another user to the server"
)


class OnlineBackup:
    def __init__(self, db: Database, database_path: str) -> None:
        self._db = db
        self._database_path = database_path
        self._one_at_a_time = trio.Lock()

    async def make(self, destination: str) -> BackupReport:
        """Copy the database and media to the new directory `destination`, while serving.

        The snapshot is taken in this event loop before the first await, so the
        copy holds every write acknowledged before the call; the copying runs
        in a worker thread.
        """
        async with self._one_at_a_time:
            write = start_copy(self._db, self._database_path, destination)
            report = await trio.to_thread.run_sync(write, abandon_on_cancel=False)
        log.info("%s", report.summary())
        return report

    async def serve_socket(self) -> None:
        """Answer `matrix-conduit backup` on `database_path/backup.sock` until cancelled."""
        path = socket_path(self._database_path)
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(path):
                os.unlink(path)  # left by a server that was killed; we hold the lock
            await listener.bind(path)
            os.chmod(path, 0o600)
            listener.listen(4)
        except OSError as error:
            listener.close()
            log.warning("online backup unavailable: cannot listen on %s: %s", path, error)
            return
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    connection, _ = await listener.accept()
                    nursery.start_soon(self._answer_safely, connection)
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def _answer_safely(self, connection: trio.socket.SocketType) -> None:
        """A failure of one backup is logged and answered; it never stops the server."""
        try:
            await self._answer(connection)
        except Exception:
            log.exception("online backup failed")
            await _reply(connection, {"ok": False, "error": "the backup failed (see the log)"})
        finally:
            connection.close()

    async def _answer(self, connection: trio.socket.SocketType) -> None:
        if not _peer_may_ask(connection):
            await _reply(connection, {"ok": False, "error": _NOT_THE_SERVERS_USER})
            return
        request = b""
        while not request.endswith(b"\n") and len(request) < _MAX_REQUEST:
            chunk = await connection.recv(4096)
            if not chunk:
                return
            request += chunk
        try:
            destination = json.loads(request)["destination"]
            if not isinstance(destination, str) or not os.path.isabs(destination):
                raise ValueError("destination must be an absolute path")
            report = await self.make(destination)
        except BackupError as error:
            await _reply(connection, {"ok": False, "error": str(error)})
        except (ValueError, KeyError, TypeError) as error:
            await _reply(connection, {"ok": False, "error": f"bad request: {error}"})
        else:
            await _reply(connection, {"ok": True, "report": report_as_json(report)})


def _peer_may_ask(connection: trio.socket.SocketType) -> bool:
    """The peer runs as our uid or as root (the socket's mode says so already).

    Under the unit's `PrivateUsers=yes` a root peer shows up as the overflow
    uid, so there only the server's own user gets through."""
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _, uid, _ = struct.unpack("3i", credentials)
    return uid in (0, os.getuid())


async def _reply(connection: trio.socket.SocketType, answer: dict[str, object]) -> None:
    with contextlib.suppress(OSError, trio.ClosedResourceError):  # the command went away
        await trio.SocketStream(connection).send_all(json.dumps(answer).encode() + b"\n")
