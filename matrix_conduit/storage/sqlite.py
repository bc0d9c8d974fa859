"""The SQLite backend: the same trees, one table each, in WAL mode.

For admins who want one file they can inspect with `sqlite3`. Autocommit mode
gives each single `put` its own transaction; a batch is one explicit
transaction. With `synchronous=NORMAL` in WAL mode a committed transaction
survives the death of the process (kill -9), which is the promise the server
makes (it may lose the last transactions on power loss, as LevelDB without
sync does).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

from . import SQLITE_FILE
from .kv import Database, DatabaseError, Tree, WriteBatch, key_range

_PAGE = 256
"""Rows fetched per query while iterating, so iterating never holds a cursor
open across writes and never loads a whole tree."""


class SQLiteTree(Tree):
    def __init__(self, connection: sqlite3.Connection, name: str) -> None:
        self.name = name
        self._connection = connection
        self.table = '"tree_' + name.replace('"', '""') + '"'
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
        )

    def get(self, key: bytes) -> bytes | None:
        row = self._connection.execute(
            f"SELECT value FROM {self.table} WHERE key = ?", (key,)
        ).fetchone()
        return row[0] if row else None

    def put(self, key: bytes, value: bytes) -> None:
        self._connection.execute(
            f"INSERT OR REPLACE INTO {self.table} (key, value) VALUES (?, ?)", (key, value)
        )

    def delete(self, key: bytes) -> None:
        self._connection.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))

    def iter_prefix(
        self, prefix: bytes = b"", *, reverse: bool = False, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        lower, lower_op, upper, upper_op = key_range(prefix, reverse=reverse, start=start)
        order = "DESC" if reverse else "ASC"
        while True:
            conditions = [f"key {lower_op} ?"]
            params: list[bytes] = [lower]
            if upper is not None:
                conditions.append(f"key {upper_op} ?")
                params.append(upper)
            rows = self._connection.execute(
                f"SELECT key, value FROM {self.table} WHERE {' AND '.join(conditions)} "
                f"ORDER BY key {order} LIMIT {_PAGE}",
                params,
            ).fetchall()
            for key, value in rows:
                if key.startswith(prefix):
                    yield bytes(key), bytes(value)
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]
            if reverse:
                upper, upper_op = last, "<"
            else:
                lower, lower_op = last, ">"


class SQLiteBatch(WriteBatch):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._operations: list[tuple[str, tuple[bytes, ...]]] = []

    def put(self, tree: Tree, key: bytes, value: bytes) -> None:
        table = tree.table  # type: ignore[attr-defined]
        self._operations.append(
            (f"INSERT OR REPLACE INTO {table} (key, value) VALUES (?, ?)", (key, value))
        )

    def delete(self, tree: Tree, key: bytes) -> None:
        table = tree.table  # type: ignore[attr-defined]
        self._operations.append((f"DELETE FROM {table} WHERE key = ?", (key,)))

    def _write(self) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement, params in self._operations:
                connection.execute(statement, params)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


class SQLiteDatabase(Database):
    def __init__(self, directory: str, *, cache_capacity_mb: float) -> None:
        self.path = os.path.join(directory, SQLITE_FILE)
        self.release_on_close = []
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(descriptor)
            self._connection = sqlite3.connect(self.path, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute(f"PRAGMA cache_size=-{int(cache_capacity_mb * 1024)}")
        except sqlite3.DatabaseError as error:
            raise DatabaseError(
                f"cannot open the SQLite database at {self.path}: {error}"
            ) from None
        self._trees: dict[str, SQLiteTree] = {}

    def tree(self, name: str) -> SQLiteTree:
        if name not in self._trees:
            self._trees[name] = SQLiteTree(self._connection, name)
        return self._trees[name]

    def batch(self) -> SQLiteBatch:
        return SQLiteBatch(self._connection)

    def _close_store(self) -> None:
        self._connection.close()

    def size_on_disk(self) -> int:
        return sum(
            os.path.getsize(self.path + suffix)
            for suffix in ("", "-wal", "-shm")
            if os.path.exists(self.path + suffix)
        )
