"""The LevelDB backend (plyvel): the default, an embedded LSM store.

LevelDB has one keyspace, so each tree is a key prefix: the tree's name and a
0x00 byte (tree names never contain 0x00, so no tree's keys can run into
another's). A write batch is a LevelDB write batch across those prefixes,
which LevelDB applies atomically. Writes go to LevelDB's log before they are
acknowledged; without `sync` they survive the death of the process (kill -9),
which is the promise the server makes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import plyvel

from .kv import Database, DatabaseError, Tree, WriteBatch, prefix_upper_bound


class LevelDBTree(Tree):
    def __init__(self, db: plyvel.DB, name: str) -> None:
        self.name = name
        self._db = db
        self._prefix = name.encode() + b"\x00"

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(self._prefix + key)

    def put(self, key: bytes, value: bytes) -> None:
        self._db.put(self._prefix + key, value)

    def delete(self, key: bytes) -> None:
        self._db.delete(self._prefix + key)

    def iter_prefix(
        self, prefix: bytes = b"", *, reverse: bool = False, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        full_prefix = self._prefix + prefix
        lower = full_prefix
        upper = prefix_upper_bound(full_prefix)
        include_upper = False
        if start is not None:
            bounded = self._prefix + start
            if reverse:
                upper, include_upper = bounded, True
            else:
                lower = max(lower, bounded)
        # In reverse, plyvel 1.5.1 yields nothing when the first key it reaches
        # equals its `start` bound, so the lower bound is checked here instead.
        iterator = self._db.iterator(
            start=None if reverse else lower,
            stop=upper,
            include_stop=include_upper,
            reverse=reverse,
        )
        cut = len(self._prefix)
        with iterator:
            for key, value in iterator:
                if reverse and key < lower:
                    return
                if not key.startswith(full_prefix):
                    # Only reachable in reverse from a `start` outside the prefix.
                    continue
                yield key[cut:], value


class LevelDBBatch(WriteBatch):
    def __init__(self, db: plyvel.DB) -> None:
        self._batch = db.write_batch()

    def put(self, tree: Tree, key: bytes, value: bytes) -> None:
        self._batch.put(tree._prefix + key, value)  # type: ignore[attr-defined]

    def delete(self, tree: Tree, key: bytes) -> None:
        self._batch.delete(tree._prefix + key)  # type: ignore[attr-defined]

    def _write(self) -> None:
        self._batch.write()


class LevelDBDatabase(Database):
    def __init__(self, path: str, *, cache_capacity_mb: float, max_open_files: int) -> None:
        self.path = path
        self.release_on_close = []
        try:
            self._db = plyvel.DB(
                path,
                create_if_missing=True,
                lru_cache_size=max(int(cache_capacity_mb * 1024 * 1024), 8 * 1024 * 1024),
                max_open_files=max_open_files,
                bloom_filter_bits=10,
            )
        except plyvel.IOError as error:
            raise DatabaseError(f"cannot open the LevelDB database at {path}: {error}") from None
        except plyvel.CorruptionError as error:
            raise DatabaseError(f"the LevelDB database at {path} is corrupt: {error}") from None
        self._trees: dict[str, LevelDBTree] = {}

    def tree(self, name: str) -> LevelDBTree:
        if name not in self._trees:
            self._trees[name] = LevelDBTree(self._db, name)
        return self._trees[name]

    def batch(self) -> LevelDBBatch:
        return LevelDBBatch(self._db)

    def _close_store(self) -> None:
        if not self._db.closed:
            self._db.close()

    def memory_usage(self) -> dict[str, str]:
        """What LevelDB reports of its memory (memtables, block cache) and its levels."""
        report = {}
        for name in ("approximate-memory-usage", "stats"):
            value = self._db.get_property(f"leveldb.{name}".encode())
            if value is not None:
                report[name] = value.decode(errors="replace")
        return report

    def size_on_disk(self) -> int:
        return sum(entry.stat().st_size for entry in os.scandir(self.path) if entry.is_file())
