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
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import psycopg.conninfo
import psycopg.errors
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from .kv import Database, DatabaseError, DatabaseInUse, Tree, WriteBatch, key_range

_FIRST_PAGE = 16
_LARGEST_PAGE = 1024
_LOCK_KEY = 0x636F6E64756974  # "conduit": the one-process-per-database advisory lock
_CONNECT_TIMEOUT = 10
_BYTEA_OID = 17

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


class Statement:
    """One SQL text, run as a named prepared statement, prepared once per connection."""

    def __init__(self, sql: str) -> None:
        self.sql = sql.encode()
        self.name = b"conduit_" + hashlib.sha256(self.sql).hexdigest()[:24].encode()


def _binary_array(items: list[bytes]) -> bytes:
    """`items` as a one-dimensional bytea[] in PostgreSQL's binary format."""
    header = struct.pack(">iiiii", 1, 0, _BYTEA_OID, len(items), 1)
    return header + b"".join(struct.pack(">i", len(item)) + item for item in items)


def _check(connection: psycopg.Connection, result: pq.abc.PGresult) -> pq.abc.PGresult:
    """`result` if its statement succeeded, else the error psycopg would raise
    (OperationalError when the connection was lost, which `run` retries)."""
    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        return result
    if connection.broken:
        raise psycopg.OperationalError(result.get_error_message(connection.info.encoding))
    raise psycopg.errors.error_from_result(result, encoding=connection.info.encoding)


def _key_values(result: pq.abc.PGresult) -> list[tuple[bytes, bytes]]:
    return [(result.get_value(row, 0), result.get_value(row, 1)) for row in range(result.ntuples)]


class PostgreSQLTree(Tree):
    def __init__(self, database: PostgreSQLDatabase, name: str) -> None:
        self.name = name
        self._database = database
        self.table = table_name(name)
        self._get = Statement(f"SELECT value FROM {self.table} WHERE key = $1")
        self._put = Statement(
            f"INSERT INTO {self.table} (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        self._delete = Statement(f"DELETE FROM {self.table} WHERE key = $1")
        self._pages: dict[tuple[str, str | None, bool], Statement] = {}

    def upsert_many(self, keys: int) -> str:
        """Upserts the keys in array parameter `keys` with the values in the next one."""
        return (
            f"INSERT INTO {self.table} (key, value) "
            f"SELECT * FROM unnest(${keys}::bytea[], ${keys + 1}::bytea[]) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )

    def delete_many(self, keys: int) -> str:
        """Deletes the keys in array parameter `keys`."""
        return f"DELETE FROM {self.table} WHERE key = ANY(${keys}::bytea[])"

    def get(self, key: bytes) -> bytes | None:
        result = self._database.execute(self._get, [key])
        return result.get_value(0, 0) if result.ntuples else None

    def put(self, key: bytes, value: bytes) -> None:
        self._database.execute(self._put, [key, value])

    def delete(self, key: bytes) -> None:
        self._database.execute(self._delete, [key])

    def _page(self, lower_op: str, upper_op: str | None, reverse: bool) -> Statement:
        """The page query of one shape of bounds: a few per tree, each prepared once."""
        shape = (lower_op, upper_op, reverse)
        if shape not in self._pages:
            upper = f"AND key {upper_op} $2 " if upper_op else ""
            limit = "$3" if upper_op else "$2"
            self._pages[shape] = Statement(
                f"SELECT key, value FROM {self.table} WHERE key {lower_op} $1 {upper}"
                f"ORDER BY key {'DESC' if reverse else 'ASC'} LIMIT {limit}"
            )
        return self._pages[shape]

    def iter_prefix(
        self, prefix: bytes = b"", *, reverse: bool = False, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        lower, lower_op, upper, upper_op = key_range(prefix, reverse=reverse, start=start)
        page = _FIRST_PAGE
        while True:
            bounds = [lower] if upper is None else [lower, upper]
            statement = self._page(lower_op, upper_op if upper is not None else None, reverse)
            result = self._database.execute(statement, [*bounds, struct.pack(">q", page)])
            rows = _key_values(result)
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
        # Trees in name order, so that batches writing the same trees the same way
        # (every message, every receipt...) share one statement text, prepared once.
        shape: list[tuple[str, bool, bool]] = []
        arrays: list[bytes] = []
        for name in sorted(grouped):
            tree, put_keys, put_values, deletes = grouped[name]
            shape.append((name, bool(deletes), bool(put_keys)))
            if deletes:
                arrays.append(_binary_array(deletes))
            if put_keys:
                arrays += [_binary_array(put_keys), _binary_array(put_values)]
        statement = self._database.batch_statement(tuple(shape))
        self._database.execute(statement, arrays, retry=False)


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
        self._prepared: weakref.WeakKeyDictionary[psycopg.Connection, set[bytes]] = (
            weakref.WeakKeyDictionary()
        )
        """The statements each connection has prepared (a new connection has none)."""
        self._batch_statements: dict[tuple[tuple[str, bool, bool], ...], Statement] = {}
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

    def execute(
        self, statement: Statement, params: list[bytes], *, retry: bool = True
    ) -> pq.abc.PGresult:
        """`statement` with binary `params` on this thread's connection, straight
        through libpq: prepared on first use, binary results (bytea as is)."""
        return self.run(lambda c: self._execute(c, statement, params), retry=retry)

    def _execute(
        self, connection: psycopg.Connection, statement: Statement, params: list[bytes]
    ) -> pq.abc.PGresult:
        pgconn = connection.pgconn
        prepared = self._prepared.setdefault(connection, set())
        if statement.name not in prepared:
            _check(connection, pgconn.prepare(statement.name, statement.sql))
            prepared.add(statement.name)
        formats = [pq.Format.BINARY] * len(params)
        result = pgconn.exec_prepared(statement.name, params, formats, pq.Format.BINARY)
        return _check(connection, result)

    def batch_statement(self, shape: tuple[tuple[str, bool, bool], ...]) -> Statement:
        """The one statement of a batch that deletes and/or upserts in these trees
        (name, deletes, puts), its array parameters numbered in that order."""
        if shape not in self._batch_statements:
            parts: list[str] = []
            number = 1  # of the next parameter
            for name, deletes, puts in shape:
                tree = self.tree(name)
                if deletes:
                    parts.append(f"d{len(parts)} AS ({tree.delete_many(number)})")
                    number += 1
                if puts:
                    parts.append(f"u{len(parts)} AS ({tree.upsert_many(number)})")
                    number += 2
            self._batch_statements[shape] = Statement("WITH " + ", ".join(parts) + " SELECT 1")
        return self._batch_statements[shape]

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
