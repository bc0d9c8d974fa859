"""Backups while the server runs: a consistent copy of the database and the media.

    matrix-conduit backup DEST          copy database_path to the new directory DEST
    matrix-conduit verify-backup PATH   open a copy, count it, check its server_name

A backup is a directory laid out like `database_path` (`leveldb/` or
`conduit.db`, `media/`), so restoring one is putting it back in place
(README.Debian, "Backup and restore").

Consistency: LevelDB lets one process open a database, so while the server
runs only the server can read it. The copy comes from a LevelDB snapshot
(`plyvel.DB.snapshot()`), taken in the server's event loop, where every write
batch is applied: it holds exactly the writes acknowledged before the backup
began, and none half. Its entries are then written into a fresh LevelDB at
DEST in a worker thread while the server keeps serving. SQLite's online
backup API (`sqlite3.Connection.backup`, in one step on a connection of its
own) copies one read transaction the same way. Media files are copied after
the snapshot: they are content-addressed and written before the database
records them, so every file the copy names is there (a few newer, unnamed ones
may come along, harmlessly). Being immutable, they are hard-linked when DEST is
on the same filesystem, and copied otherwise.

How the command reaches the running server: a Unix socket,
`database_path/backup.sock`, mode 0600 in the 0700 database directory
(`service/backup.py` serves it), rather than an admin endpoint on 127.0.0.1
with a token file. The socket is local by construction (nothing on the
network, no port to firewall, nothing a reverse proxy could expose by
mistake), its access control is the file system's (only the server's user,
and root, can connect; the server also checks the peer's uid with
SO_PEERCRED), and there is no secret that could leak into a log or a backup.
The server writes DEST as its own user, so DEST's parent must be writable by
it. When no server answers on the socket, the command opens the database
itself (taking its lock) and copies directly.

Nothing here knows about Matrix except `verify`, which reads the server name
the `global` tree records and counts the events of `pduid_pdu`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from .storage import (
    LEVELDB_DIRECTORY,
    SQLITE_FILE,
    Database,
    DatabaseError,
    DatabaseInUse,
    embedded_engine_in,
    open_database,
)

if TYPE_CHECKING:  # sqlite3 is imported by a SQLite backup, not by every server
    import sqlite3

SOCKET_NAME = "backup.sock"
MEDIA_DIRECTORY = "media"
_BATCH_ENTRIES = 10_000
"""Entries per write batch into the copy: bounded memory, few LevelDB writes."""


class BackupError(Exception):
    """The backup cannot be made or checked; the message says why and what to do."""


@dataclass
class BackupReport:
    """What a backup copied (printed by the command, answered over the socket)."""

    destination: str
    backend: str
    entries: int = 0
    media_files: int = 0
    media_linked: int = 0
    size_bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"backup of the {self.backend} database in {self.destination}: "
            f"{self.entries} entries, {self.media_files} media files "
            f"({self.media_linked} hard-linked), {self.size_bytes / 1e6:.1f} MB, "
            f"{self.seconds:.1f} s"
        )


@dataclass
class Verification:
    """What `verify` found in a backup."""

    path: str
    backend: str
    server_name: str | None
    trees: dict[str, int] = field(default_factory=dict)
    events: int = 0
    media_files: int = 0
    problems: list[str] = field(default_factory=list)


def socket_path(database_path: str) -> str:
    return os.path.join(database_path, SOCKET_NAME)


def _backend_of(database: Database) -> str:
    from .storage.leveldb import LevelDBDatabase
    from .storage.sqlite import SQLiteDatabase

    if isinstance(database, SQLiteDatabase):
        return "sqlite"
    if isinstance(database, LevelDBDatabase):
        return "leveldb"
    raise BackupError(
        f"backup copies LevelDB and SQLite databases; a {type(database).__name__} is "
        "backed up with its own tools (for PostgreSQL: pg_dump, and copy media/)"
    )


def prepare_destination(destination: str) -> str:
    """DEST as an absolute path, created mode 0700; it must not exist or be empty."""
    destination = os.path.abspath(destination)
    if os.path.exists(destination) and (not os.path.isdir(destination) or os.listdir(destination)):
        raise BackupError(f"{destination} exists and is not an empty directory")
    try:
        os.makedirs(destination, mode=0o700, exist_ok=True)
    except OSError as error:
        raise BackupError(f"cannot create {destination}: {error.strerror}") from None
    return destination


def start_copy(
    database: Database, database_path: str, destination: str
) -> Callable[[], BackupReport]:
    """Fix what the copy will hold now; the returned function writes it (any thread).

    For LevelDB the snapshot is taken here, so call this where the database's
    writes are made (the server's event loop): the copy then holds exactly
    what was acknowledged before.
    """
    backend = _backend_of(database)
    destination = prepare_destination(destination)
    started = time.monotonic()
    report = BackupReport(destination, backend)
    if report.backend == "sqlite":
        write_database = _sqlite_copier(database.path, destination, report)
    else:
        write_database = _leveldb_copier(database, destination, report)

    def write() -> BackupReport:
        try:
            write_database()
            _copy_media(
                os.path.join(database_path, MEDIA_DIRECTORY),
                os.path.join(destination, MEDIA_DIRECTORY),
                report,
            )
        except OSError as error:
            raise BackupError(f"cannot write the backup to {destination}: {error}") from None
        report.size_bytes = _size_of(destination)
        report.seconds = time.monotonic() - started
        return report

    return write


def _leveldb_copier(
    database: Database, destination: str, report: BackupReport
) -> Callable[[], None]:
    import plyvel

    snapshot = database._db.snapshot()  # type: ignore[attr-defined]

    def copy() -> None:
        target_path = os.path.join(destination, LEVELDB_DIRECTORY)
        target = plyvel.DB(target_path, create_if_missing=True, error_if_exists=True)
        try:
            batch = target.write_batch()
            pending = 0
            with snapshot.iterator() as entries:
                for key, value in entries:
                    batch.put(key, value)
                    pending += 1
                    report.entries += 1
                    if pending == _BATCH_ENTRIES:
                        batch.write()
                        batch, pending = target.write_batch(), 0
            batch.write()
            target.compact_range()  # the copy's data in sorted tables, its log empty
        finally:
            snapshot.close()
            target.close()

    return copy


def _sqlite_copier(source_path: str, destination: str, report: BackupReport) -> Callable[[], None]:
    def copy() -> None:
        import sqlite3

        target_path = os.path.join(destination, SQLITE_FILE)
        descriptor = os.open(target_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(descriptor)
        source = sqlite3.connect(source_path)
        target = sqlite3.connect(target_path)
        try:
            source.backup(target)  # pages=-1: one step, one read transaction
            target.execute("PRAGMA journal_mode=WAL")
            report.entries = sum(_sqlite_tree_counts(target).values())
        finally:
            source.close()
            target.close()

    return copy


def _copy_media(source: str, target: str, report: BackupReport) -> None:
    if not os.path.isdir(source):
        return
    for directory, _, names in os.walk(source):
        relative = os.path.relpath(directory, source)
        for name in names:
            if relative == "." and not _is_media_name(name):
                continue  # an upload still being written
            into = os.path.join(target, relative)
            os.makedirs(into, mode=0o700, exist_ok=True)
            from_path, to_path = os.path.join(directory, name), os.path.join(into, name)
            try:
                os.link(from_path, to_path)
                report.media_linked += 1
            except FileNotFoundError:
                continue  # deleted by an admin meanwhile
            except OSError:  # another filesystem, or links not allowed here
                try:
                    shutil.copy2(from_path, to_path)
                except FileNotFoundError:
                    continue
            report.media_files += 1


def _is_media_name(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _size_of(path: str) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, names in os.walk(path):
        for name in names:
            status = os.lstat(os.path.join(directory, name))
            if (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                total += status.st_size
    return total


def copy_offline(database_path: str, engine: str, destination: str) -> BackupReport:
    """Back up a database no server has open (takes its lock for the copy).

    Raises `DatabaseInUse` when a process holds it."""
    if not os.path.isdir(database_path):
        raise BackupError(f"database_path {database_path} does not exist: nothing to back up")
    owner = os.stat(database_path).st_uid
    if owner != os.getuid():
        raise BackupError(
            f"{database_path} belongs to uid {owner}: opening it as another user would leave "
            "files the server cannot write; run this as the server's user "
            "(e.g. sudo -u conduit matrix-conduit backup DEST)"
        )
    try:
        database = open_database(engine, database_path)
    except DatabaseInUse:
        raise
    except DatabaseError as error:
        raise BackupError(str(error)) from None
    try:
        return start_copy(database, database_path, destination)()
    finally:
        database.close()


def request_from_server(database_path: str, destination: str) -> BackupReport | None:
    """Ask the server running on `database_path` to make the backup; None if none answers."""
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return None
    with connection:
        try:
            connection.connect(socket_path(database_path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except PermissionError:
            raise BackupError(
                f"cannot connect to {socket_path(database_path)}: run this as the "
                "server's user (conduit) or root"
            ) from None
        connection.sendall(json.dumps({"destination": destination}).encode() + b"\n")
        answer = _read_line(connection)
    if not answer:
        raise BackupError("the server closed the backup connection without an answer")
    reply = json.loads(answer)
    if not reply.get("ok"):
        raise BackupError(reply.get("error", "the server refused the backup"))
    return BackupReport(**reply["report"])


def _read_line(connection: socket.socket) -> bytes:
    received = b""
    while not received.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def backup(database_path: str, engine: str, destination: str) -> BackupReport:
    """`matrix-conduit backup DEST`: through the running server, or directly if none runs."""
    destination = os.path.abspath(destination)
    report = request_from_server(database_path, destination)
    if report is not None:
        return report
    try:
        return copy_offline(database_path, engine, destination)
    except DatabaseInUse as error:
        raise BackupError(
            f"{error}; the server holds it but does not answer on "
            f"{socket_path(database_path)} (a version without online backup?)"
        ) from None


def report_as_json(report: BackupReport) -> dict[str, object]:
    return asdict(report)


# ---- verification ----------------------------------------------------------


def _sqlite_tree_counts(connection: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tree_%'"
        )
    ]
    return {
        name[len("tree_") :]: connection.execute(
            f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"'
        ).fetchone()[0]
        for name in names
    }


def _leveldb_tree_counts(database: Database) -> dict[str, int]:
    counts: dict[str, int] = {}
    with database._db.iterator(include_value=False) as keys:  # type: ignore[attr-defined]
        for key in keys:
            name = key.split(b"\x00", 1)[0].decode(errors="replace")
            counts[name] = counts.get(name, 0) + 1
    return counts


def _media_problems(media: str) -> Iterator[str]:
    for directory, _, names in os.walk(media):
        for name in names:
            if not _is_media_name(name):
                continue
            digest = hashlib.sha256()
            with open(os.path.join(directory, name), "rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
            if digest.hexdigest() != name:
                yield f"media file {name} does not hold what its name says (damaged)"


def verify(path: str, expected_server_name: str | None = None) -> Verification:
    """Open the backup at `path`, count its trees and events, check its server name."""
    path = os.path.abspath(path)
    backend = embedded_engine_in(path)
    if backend is None:
        raise BackupError(f"{path} holds no database (neither leveldb/ nor conduit.db)")
    try:
        database = open_database(backend, path)
    except DatabaseError as error:
        raise BackupError(f"cannot open the backup: {error}") from None
    try:
        recorded = database.tree("global").get(b"server_name")
        if backend == "sqlite":
            trees = _sqlite_tree_counts(database._connection)  # type: ignore[attr-defined]
        else:
            trees = _leveldb_tree_counts(database)
    finally:
        database.close()
    result = Verification(
        path,
        backend,
        recorded.decode() if recorded is not None else None,
        trees={name: count for name, count in sorted(trees.items()) if count},
        events=trees.get("pduid_pdu", 0),
    )
    if result.server_name is None:
        result.problems.append("the backup records no server_name (not a matrix-conduit database?)")
    elif expected_server_name is not None and result.server_name != expected_server_name:
        result.problems.append(
            f"the backup was made for server_name {result.server_name!r}, but the "
            f"configuration says {expected_server_name!r}: a server with this "
            "configuration would refuse it"
        )
    media = os.path.join(path, MEDIA_DIRECTORY)
    if os.path.isdir(media):
        result.media_files = sum(
            1 for _, _, names in os.walk(media) for name in names if _is_media_name(name)
        )
        result.problems += list(_media_problems(media))
    return result
