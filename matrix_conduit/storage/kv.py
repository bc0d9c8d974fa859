"""The one storage interface every service uses: a database of named trees.

A tree is an ordered map of bytes to bytes (Conduit's design: `eventid_pduid`,
`userid_password`, ...). The database gives each service its trees and an
atomic write batch that spans several of them, so that everything one request
changes lands together or not at all. Nothing here knows about Matrix.

Key conventions (DESIGN.md): parts of a compound key are joined with `0xFF`,
integers are 8-byte big-endian so that byte order is numeric order.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Self

SEPARATOR = b"\xff"


def join_key(*parts: bytes | str) -> bytes:
    """A compound key: the parts (str as UTF-8) joined with 0xFF."""
    return SEPARATOR.join(p.encode() if isinstance(p, str) else p for p in parts)


def u64(number: int) -> bytes:
    """An integer as 8 big-endian bytes, so byte order equals numeric order."""
    return struct.pack(">Q", number)


def from_u64(data: bytes) -> int:
    return struct.unpack(">Q", data)[:1][0]


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def key_range(
    prefix: bytes, *, reverse: bool, start: bytes | None
) -> tuple[bytes, str, bytes | None, str]:
    """The SQL bounds `(lower, lower_op, upper, upper_op)` of an `iter_prefix` scan.

    `start` moves the near end of the scan (the upper end, inclusively, when
    reversed); `upper` is None when nothing bounds the prefix from above."""
    lower: bytes = prefix
    upper = prefix_upper_bound(prefix)
    lower_op, upper_op = ">=", "<"
    if start is not None:
        if reverse:
            if upper is None or start < upper:
                upper, upper_op = start, "<="
        else:
            lower = max(lower, start)
    return lower, lower_op, upper, upper_op


class DatabaseError(Exception):
    """The database cannot be opened or used; the message says why and what to do."""


class DatabaseInUse(DatabaseError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"database at {path} is in use by another process "
            "(is the server already running? stop it first)"
        )


class Tree(ABC):
    """An ordered map of bytes to bytes within a database."""

    name: str

    @abstractmethod
    def get(self, key: bytes) -> bytes | None: ...

    @abstractmethod
    def put(self, key: bytes, value: bytes) -> None:
        """Write one key at once (its own atomic write)."""

    @abstractmethod
    def delete(self, key: bytes) -> None: ...

    @abstractmethod
    def iter_prefix(
        self, prefix: bytes = b"", *, reverse: bool = False, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key starts with `prefix`, in key order (or reversed).

        With `start`, iteration begins at that key (inclusive): the first key
        >= start going forward, the first key <= start going in reverse.
        """

    def keys_with_prefix(self, prefix: bytes = b"") -> Iterator[bytes]:
        return (key for key, _ in self.iter_prefix(prefix))

    def last(self, prefix: bytes = b"") -> tuple[bytes, bytes] | None:
        """The item with the greatest key under `prefix`, if any."""
        return next(self.iter_prefix(prefix, reverse=True), None)

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None


class WriteBatch(ABC):
    """Writes to any trees of one database that commit together, atomically.

    Used as a context manager: the batch commits when the block ends without
    an exception and is dropped otherwise. In-memory caches that mirror what
    the batch writes register `after_commit` callbacks, so they change only
    once the data is on disk.
    """

    _after_commit: list[Callable[[], None]] | None = None

    @abstractmethod
    def put(self, tree: Tree, key: bytes, value: bytes) -> None: ...

    @abstractmethod
    def delete(self, tree: Tree, key: bytes) -> None: ...

    @abstractmethod
    def _write(self) -> None:
        """Apply every queued operation atomically."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._after_commit is None:
            self._after_commit = []
        self._after_commit.append(callback)

    def commit(self) -> None:
        self._write()
        for callback in self._after_commit or ():
            callback()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.commit()


class Database(ABC):
    """A set of named trees with atomic batches across them."""

    path: str
    release_on_close: list[Callable[[], None]]
    """What else to let go of when the database closes (its directory lock)."""

    @abstractmethod
    def tree(self, name: str) -> Tree:
        """The tree called `name`, created empty if it does not exist yet."""

    @abstractmethod
    def batch(self) -> WriteBatch: ...

    @abstractmethod
    def _close_store(self) -> None: ...

    def close(self) -> None:
        self._close_store()
        while self.release_on_close:
            self.release_on_close.pop()()

    def cluster_link(self, stored_counter: int) -> Any:
        """Ties to the other server processes of this database (`ClusterLink`,
        `storage/postgresql_cluster.py`), whose counter continues from
        `stored_counter`; None for a database only one process can open."""
        return None

    @abstractmethod
    def size_on_disk(self) -> int:
        """Bytes the database occupies on disk (for benchmarks and the admin)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
