"""The PostgreSQL backend (psycopg 3): the same trees, one table each, over the network.

For admins whose database lives on another machine, is backed up and
replicated with PostgreSQL's tools, or will later be shared by several server
processes (issue #18). Layout: each tree is a table `t_<name>` (`key bytea
PRIMARY KEY, value bytea NOT NULL`; bytea compares byte by byte, so the
primary key's order is the tree's order), and `conduit_trees` lists the trees
(for `migrate-db`). Table per tree rather than one table with a tree column:
measured on loopback here (20 trees, 20 000 keys of 100 bytes), a 64-row
prefix scan ran 1 200-1 800/s per tree table against 500-560/s in one table,
gets were close (1 600-3 700/s against 2 200-2 900/s) and single puts
somewhat slower (1 100-2 000/s against 2 000-2 600/s); `/sync` and the
timeline are scans, so scans decide.

- A single `put`/`delete` is its own autocommit statement (an upsert).
- A batch is one statement, so one transaction and one round trip however
  many keys and trees it writes: its operations collapse to the last one per
  key, then data-modifying CTEs, one `INSERT ... SELECT FROM unnest() ON
  CONFLICT DO UPDATE` and one `DELETE ... = ANY()` per tree (a key appears
  once per table, as one statement requires). Measured here under load, a
  batch over two trees took 3.4 ms this way, 7.0 ms as BEGIN, three
  statements, COMMIT, and more in psycopg's pipeline mode.
- Iteration pages by key (keyset paging, as the SQLite backend does): no
  cursor stays open between pages, so iterating never holds a transaction or
  a connection across the caller's writes and never loads a whole tree. Pages
  start at 16 rows (most callers want the first or last item) and double to
  1024.
- Connections come from a psycopg_pool pool; each thread keeps the one it
  took (the server's trio thread uses one connection for everything, in
  order), and a connection the server lost is replaced and the statement
  retried once, for reads and single writes (a batch whose commit was cut
  off raises: it may or may not have landed).
- A session advisory lock, held on its own connection while the database is
  open: exclusive for the offline tools (`migrate-db`, `create-user`,
  backups), shared for server processes (`shared=True`), which may run
  several at once on one database (what they share beyond the trees is in
  `postgresql_cluster.py`), and never while an offline tool holds it.

The password never appears in `path`, in errors or in logs: it is taken from
`password` (the config's `database_password_file`), from `PGPASSWORD` or a
libpq password file, or from the URL itself, and removed from every message.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import psycopg.conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from .kv import Database, DatabaseError, DatabaseInUse, Tree, WriteBatch, key_range

_FIRST_PAGE = 16
_LARGEST_PAGE = 1024
_LOCK_KEY = 0x636F6E64756974  # "conduit": the one-process-per-database advisory lock
_CONNECT_TIMEOUT = 10

T = TypeVar("T")


def redact_url(url: str) -> str:
    """`url` with any password removed (for messages and `Database.path`)."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<an unparsable database_url>"
    host = parts.get("host", "")
    port = parts.get("port")
    user = parts.get("user")
    database = parts.get("dbname", "")
    where = f"{user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
    return f"postgresql://{where}/{database}"


def check_url(url: str) -> str | None:
    """Why `url` is not a usable libpq URI, or None if it is."""
    if not url.startswith(("postgresql://", "postgres://")):
        return "must be a libpq URI starting with postgresql:// (postgresql://user@host:port/db)"
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        return f"is not a valid libpq URI: {str(error).replace(url, redact_url(url))}"
    ports = str(parts.get("port") or "5432").split(",")
    if not all(port.isdigit() and 1 <= int(port) <= 65535 for port in ports):
        return "has a port that is not a number from 1 to 65535"
    if not parts.get("dbname"):
        return "names no database (postgresql://user@host:port/DATABASE)"
    return None


def table_name(tree: str) -> str:
    """The quoted table of `tree`: `t_<name>`, hashed past PostgreSQL's 63-byte names."""
    name = "t_" + tree
    if len(name.encode()) > 60:
        digest = hashlib.sha256(tree.encode()).hexdigest()[:16]
        name = "t_" + tree.encode()[:40].decode(errors="ignore") + "_" + digest
    return '"' + name.replace('"', '""') + '"'


class PostgreSQLTree(Tree):
    def __init__(self, database: PostgreSQLDatabase, name: str) -> None:
        self.name = name
        self._database = database
        self.table = table_name(name)
        self.upsert = (
            f"INSERT INTO {self.table} (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        self.upsert_many = (
            f"INSERT INTO {self.table} (key, value) "
            "SELECT * FROM unnest(%s::bytea[], %s::bytea[]) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        self.delete_one = f"DELETE FROM {self.table} WHERE key = %s"
        self.delete_many = f"DELETE FROM {self.table} WHERE key = ANY(%s::bytea[])"
        self._select = f"SELECT value FROM {self.table} WHERE key = %s"

    def get(self, key: bytes) -> bytes | None:
        row = self._database.run(lambda c: c.execute(self._select, (key,)).fetchone())
        return row[0] if row else None

    def put(self, key: bytes, value: bytes) -> None:
        self._database.run(lambda c: c.execute(self.upsert, (key, value)))

    def delete(self, key: bytes) -> None:
        self._database.run(lambda c: c.execute(self.delete_one, (key,)))

    def iter_prefix(
        self, prefix: bytes = b"", *, reverse: bool = False, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        lower, lower_op, upper, upper_op = key_range(prefix, reverse=reverse, start=start)
        order = "DESC" if reverse else "ASC"
        page = _FIRST_PAGE
        while True:
            conditions = [f"key {lower_op} %s"]
            params: list[bytes] = [lower]
            if upper is not None:
                conditions.append(f"key {upper_op} %s")
                params.append(upper)
            query = (
                f"SELECT key, value FROM {self.table} WHERE {' AND '.join(conditions)} "
                f"ORDER BY key {order} LIMIT {page}"
            )
            rows = self._database.run(lambda c, q=query, p=params: c.execute(q, p).fetchall())
            for key, value in rows:
                if key.startswith(prefix):
                    yield key, value
            if len(rows) < page:
                return
            last = rows[-1][0]
            if reverse:
                upper, upper_op = last, "<"
            else:
                lower, lower_op = last, ">"
            page = min(page * 2, _LARGEST_PAGE)


class PostgreSQLBatch(WriteBatch):
    def __init__(self, database: PostgreSQLDatabase) -> None:
        self._database = database
        self._operations: dict[tuple[str, bytes], tuple[PostgreSQLTree, bytes | None]] = {}

    def put(self, tree: Tree, key: bytes, value: bytes) -> None:
        self._operations.pop((tree.name, key), None)
        self._operations[(tree.name, key)] = (tree, value)  # type: ignore[assignment]

    def delete(self, tree: Tree, key: bytes) -> None:
        self._operations.pop((tree.name, key), None)
        self._operations[(tree.name, key)] = (tree, None)  # type: ignore[assignment]

    def _write(self) -> None:
        if not self._operations:
            return
        grouped: dict[str, tuple[PostgreSQLTree, list[bytes], list[bytes], list[bytes]]] = {}
        for (name, key), (tree, value) in self._operations.items():
            _, put_keys, put_values, deletes = grouped.setdefault(name, (tree, [], [], []))
            if value is None:
                deletes.append(key)
            else:
                put_keys.append(key)
                put_values.append(value)

        parts: list[str] = []
        params: list[list[bytes]] = []
        for tree, put_keys, put_values, deletes in grouped.values():
            if deletes:
                parts.append(f"d{len(parts)} AS ({tree.delete_many})")
                params.append(deletes)
            if put_keys:
                parts.append(f"u{len(parts)} AS ({tree.upsert_many})")
                params += [put_keys, put_values]
        statement = "WITH " + ", ".join(parts) + " SELECT 1"

        def write(connection: psycopg.Connection) -> None:
            connection.execute(statement, params)

        self._database.run(write, retry=False)


class PostgreSQLDatabase(Database):
    """Trees in one PostgreSQL database, reached through a connection pool."""

    def __init__(
        self, url: str, *, password: str | None = None, pool_size: int = 4, shared: bool = False
    ) -> None:
        self.path = redact_url(url)
        self.release_on_close = []
        self._url = url
        extra: dict[str, object] = {"connect_timeout": _CONNECT_TIMEOUT}
        if password is not None:
            extra["password"] = password
        self._connect_arguments = extra
        self._lock_connection = self._connect_first()
        self._take_lock(shared)
        self._pool = ConnectionPool(
            url,
            kwargs={**extra, "autocommit": True},
            min_size=1,
            max_size=max(pool_size, 1),
            open=False,
            timeout=_CONNECT_TIMEOUT,
            name="conduit",
        )
        try:
            self._pool.open(wait=True, timeout=_CONNECT_TIMEOUT)
        except PoolTimeout:
            self._lock_connection.close()
            raise DatabaseError(f"cannot connect to the PostgreSQL database {self.path}") from None
        self._local = threading.local()
        self._trees: dict[str, PostgreSQLTree] = {}
        self.run(
            lambda c: c.execute(
                "CREATE TABLE IF NOT EXISTS conduit_trees "
                "(name text PRIMARY KEY, table_name text NOT NULL)"
            )
        )

    def _message(self, error: Exception) -> str:
        return str(error).replace(self._url, self.path).strip()

    def connect(self) -> psycopg.Connection:
        """A new autocommit connection of its own (outside the pool), for a caller
        that keeps session state on it: LISTEN, session advisory locks."""
        return self._connect_first()

    def _connect_first(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._url, autocommit=True, **self._connect_arguments)
        except psycopg.Error as error:
            raise DatabaseError(
                f"cannot connect to the PostgreSQL database {self.path}: {self._message(error)}"
            ) from None

    def _take_lock(self, shared: bool) -> None:
        function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        row = self._lock_connection.execute(f"SELECT {function}(%s)", (_LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            self._lock_connection.close()
            raise DatabaseInUse(self.path)

    def _connection(self) -> psycopg.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._pool.getconn()
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            self._pool.putconn(connection)  # the pool discards a broken connection

    def run(self, operation: Callable[[psycopg.Connection], T], *, retry: bool = True) -> T:
        """`operation` on this thread's connection; once more on a fresh one if it was lost."""
        for attempt in (1, 2):
            connection = self._connection()
            try:
                return operation(connection)
            except psycopg.OperationalError:
                if not connection.broken:
                    raise
                self._drop_connection()
                if not retry or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def tree(self, name: str) -> PostgreSQLTree:
        if name not in self._trees:
            tree = PostgreSQLTree(self, name)

            def create(connection: psycopg.Connection) -> None:
                with connection.transaction():
                    connection.execute(
                        f"CREATE TABLE IF NOT EXISTS {tree.table} "
                        "(key bytea PRIMARY KEY, value bytea NOT NULL)"
                    )
                    connection.execute(
                        "INSERT INTO conduit_trees (name, table_name) VALUES (%s, %s) "
                        "ON CONFLICT (name) DO NOTHING",
                        (name, tree.table),
                    )

            self.run(create)
            self._trees[name] = tree
        return self._trees[name]

    def tree_names(self) -> list[str]:
        """Every tree this database holds, by name, sorted."""
        rows = self.run(
            lambda c: c.execute("SELECT name FROM conduit_trees ORDER BY name").fetchall()
        )
        return [row[0] for row in rows]

    def batch(self) -> PostgreSQLBatch:
        return PostgreSQLBatch(self)

    def _close_store(self) -> None:
        self._pool.close()
        # Unlock explicitly: a closed connection's session ends (and drops its
        # lock) only when the server gets to it, after an immediate reopen may ask.
        with contextlib.suppress(psycopg.Error):  # gone already, and with it the lock
            self._lock_connection.execute("SELECT pg_advisory_unlock_all()")
        self._lock_connection.close()

    def cluster_link(self, stored_counter: int) -> Any:
        from .postgresql_cluster import ClusterLink

        return ClusterLink(self, stored_counter)

    def size_on_disk(self) -> int:
        row = self.run(
            lambda c: c.execute("SELECT pg_database_size(current_database())").fetchone()
        )
        return int(row[0]) if row else 0
