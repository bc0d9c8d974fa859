"""Opening the database: the right backend, in the right place, by one process only.

Layout of `database_path` (created mode 0700):
- `leveldb/`   the LevelDB store (backends "leveldb" and "rocksdb")
- `conduit.db` the SQLite store (backend "sqlite")
- `conduit.lock` held (flock) while a process has the database open
- `media/`     uploaded files (the media service)

Backend "postgresql" keeps its trees in the PostgreSQL database of `url`
(`storage/postgresql.py`); `database_path` still holds the lock and media.

Conduit configs say `database_backend = "rocksdb"`; we run those on LevelDB,
but refuse a directory that really holds a RocksDB database (its `OPTIONS-*`
files) or the other backend's data, rather than silently starting empty.
"""

from __future__ import annotations

import fcntl
import logging
import os
from typing import TYPE_CHECKING

from .kv import Database, DatabaseError, DatabaseInUse, Tree, WriteBatch

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseInUse",
    "Tree",
    "WriteBatch",
    "open_configured_database",
    "open_database",
]

log = logging.getLogger(__name__)

LEVELDB_DIRECTORY = "leveldb"
LOCK_FILE = "conduit.lock"
# Named here, not only in `sqlite.py`, so that checking a LevelDB directory for it
# does not import sqlite3 (0.8 MiB of RSS in every LevelDB server).
SQLITE_FILE = "conduit.db"


def _holds_rocksdb(directory: str) -> bool:
    return any(name.startswith("OPTIONS-") for name in os.listdir(directory))


def _holds_leveldb(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, LEVELDB_DIRECTORY, "CURRENT"))


def _holds_sqlite(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, SQLITE_FILE))


def embedded_engine_in(directory: str) -> str | None:
    """The embedded database `directory` holds ("leveldb" or "sqlite"), if any: what
    offline tools (backup verify, migrate-db) open a bare directory as."""
    if _holds_leveldb(directory):
        return "leveldb"
    if _holds_sqlite(directory):
        return "sqlite"
    return None


def _check_contents(directory: str, engine: str) -> None:
    if _holds_rocksdb(directory):
        raise DatabaseError(
            f"{directory} holds a RocksDB database (probably from Conduit). matrix-conduit "
            "cannot read RocksDB; it would start with an empty database and lose every "
            "account and room. Point database_path at a new, empty directory."
        )
    if engine == "leveldb" and _holds_sqlite(directory):
        raise DatabaseError(
            f"{directory} holds an SQLite database (conduit.db) but database_backend "
            'is not "sqlite". Set database_backend = "sqlite" to use it.'
        )
    if engine == "sqlite" and _holds_leveldb(directory):
        raise DatabaseError(
            f"{directory} holds a LevelDB database (leveldb/) but database_backend is "
            '"sqlite". Set database_backend = "leveldb" to use it.'
        )


class _DirectoryLock:
    """A flock on `conduit.lock`: exclusive (one process per database), or shared
    by the server processes of one PostgreSQL database (none while an offline
    tool holds it exclusively)."""

    def __init__(self, directory: str, *, shared: bool = False) -> None:
        path = os.path.join(directory, LOCK_FILE)
        self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            fcntl.flock(self._descriptor, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._descriptor)
            raise DatabaseInUse(directory) from None

    def release(self) -> None:
        os.close(self._descriptor)


def open_database(
    engine: str,
    directory: str,
    *,
    cache_capacity_mb: float = 300.0,
    max_open_files: int = 1000,
    url: str | None = None,
    password: str | None = None,
    shared: bool = False,
) -> Database:
    """Open (creating if needed) the `engine` ("leveldb"/"sqlite") database in `directory`.

    Engine "postgresql" opens the database at `url` (a libpq URI; `password`
    if given, else libpq's PGPASSWORD or password file) and keeps only the
    lock and media in `directory`; with `shared` (the server does so) other
    server processes may open it at the same time, offline tools may not.
    """
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as error:
        raise DatabaseError(f"cannot create database_path {directory}: {error.strerror}") from None
    if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
        raise DatabaseError(
            f"database_path {directory} is not writable by this user (uid {os.getuid()})"
        )
    if engine != "postgresql":
        _check_contents(directory, engine)
    shared = shared and engine == "postgresql"
    lock = _DirectoryLock(directory, shared=shared)
    try:
        if engine == "sqlite":
            from .sqlite import SQLiteDatabase

            database: Database = SQLiteDatabase(directory, cache_capacity_mb=cache_capacity_mb)
        elif engine == "postgresql":
            if not url:
                raise DatabaseError('database_backend "postgresql" needs database_url')
            from .postgresql import PostgreSQLDatabase

            database = PostgreSQLDatabase(url, password=password, shared=shared)
        elif engine == "leveldb":
            from .leveldb import LevelDBDatabase

            leveldb_path = os.path.join(directory, LEVELDB_DIRECTORY)
            os.makedirs(leveldb_path, mode=0o700, exist_ok=True)
            database = LevelDBDatabase(
                leveldb_path, cache_capacity_mb=cache_capacity_mb, max_open_files=max_open_files
            )
        else:
            raise DatabaseError(f"unknown database engine {engine!r}")
    except BaseException:
        lock.release()
        raise
    database.release_on_close.append(lock.release)
    return database


def open_configured_database(config: Config, *, shared: bool = False) -> Database:
    """The database `config` names, with its tuning and PostgreSQL login.

    One place for `serve` (`shared`) and the offline commands (create-user,
    reset-password, keys: exclusive, refused while a server runs), so that both
    open the same database whatever the backend.
    """
    return open_database(
        config.storage_engine,
        config.database_path,
        cache_capacity_mb=config.db_cache_capacity_mb,
        max_open_files=config.rocksdb_max_open_files,
        url=config.database_url,
        password=config.database_password,
        shared=shared,
    )
