"""`matrix-conduit migrate-db`: copy a stopped server's database to another backend.

From LevelDB or SQLite to PostgreSQL and back (any backend to any other): every
tree, key for key, in key order, in batches of `BATCH` keys. Each batch also
writes how far its tree got into the destination's `_migrate_db_progress`
tree, in the same atomic batch, so an interrupted run (Ctrl-C, a lost
connection, a full disk) started again with the same arguments goes on after
the last key that landed, and skips the trees already done. A destination
that holds data but no progress marker is refused: it is another server's.

Then a verification pass reads both sides again: per tree, the number of
keys and a SHA-256 over every (key, value) in order must agree, or the
command fails and names the trees that differ. Only then is the progress
tree emptied. Media files live in `database_path/media` on every backend;
when the destination has another `database_path`, they are copied there
too (files already there with the same size are skipped, so this resumes too).

Each side is a config file (its backend, `database_path`, `database_url`
and password), a database directory (LevelDB or SQLite, found by what it
holds), or for PostgreSQL a `postgresql://` URL (password from libpq:
`PGPASSWORD` or `~/.pgpass`). Both are opened with their locks, so a server
still running on either refuses the copy. A PostgreSQL source that served
several processes keeps its counter in a sequence: it is written into the
source's `global` tree first, so the copy continues from it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .service.globals import Globals
from .storage import Database, DatabaseError, open_database
from .storage.kv import Tree

BATCH = 1000
PROGRESS_TREE = "_migrate_db_progress"
_DONE = b"done"
_UP_TO = b"upto:"


class MigrationError(Exception):
    """The copy cannot start or did not verify; the message says why and what to do."""


@dataclass(frozen=True)
class Endpoint:
    """One side of the copy: what to open and where its media are."""

    engine: str
    directory: str | None
    url: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        if self.engine == "postgresql":
            from .storage.postgresql import redact_url

            return f"postgresql {redact_url(self.url or '')}"
        return f"{self.engine} {self.directory}"

    def open(self) -> Database:
        if self.engine == "postgresql" and self.directory is None:
            from .storage.postgresql import PostgreSQLDatabase

            return PostgreSQLDatabase(self.url or "", password=self.password)
        return open_database(
            self.engine, self.directory or "", url=self.url, password=self.password
        )


def resolve(spec: str) -> Endpoint:
    """An endpoint from a config file, a database directory or a postgresql:// URL."""
    from .config import ConfigError, load_config
    from .storage import embedded_engine_in

    if spec.startswith(("postgresql://", "postgres://")):
        from .storage.postgresql import check_url

        reason = check_url(spec)
        if reason:
            raise MigrationError(f"the database URL {reason}")
        return Endpoint("postgresql", None, url=spec)
    if os.path.isdir(spec):
        engine = embedded_engine_in(spec)
        if engine is not None:
            return Endpoint(engine, spec)
        raise MigrationError(
            f"{spec} holds no LevelDB (leveldb/) or SQLite (conduit.db) database; "
            "name a config file to migrate into a new directory"
        )
    if os.path.isfile(spec):
        try:
            config = load_config(spec, {})
        except ConfigError as error:
            raise MigrationError(f"{spec}: " + "; ".join(error.problems)) from None
        return Endpoint(
            config.storage_engine,
            config.database_path,
            url=config.database_url,
            password=config.database_password,
        )
    raise MigrationError(f"{spec} is neither a config file, a database directory nor a URL")


def tree_names(database: Database) -> list[str]:
    """Every tree a database holds (the storage interface itself has no listing)."""
    from .storage.leveldb import LevelDBDatabase
    from .storage.postgresql import PostgreSQLDatabase
    from .storage.sqlite import SQLiteDatabase

    if isinstance(database, PostgreSQLDatabase):
        names = database.tree_names()
    elif isinstance(database, SQLiteDatabase):
        rows = database._connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tree\\_%' "
            "ESCAPE '\\'"
        ).fetchall()
        names = [row[0].removeprefix("tree_") for row in rows]
    elif isinstance(database, LevelDBDatabase):
        names = []
        raw = database._db
        cursor = b""
        while True:  # each tree is a prefix "name\0": jump from one to the next
            first = next(raw.iterator(start=cursor, include_value=False), None)
            if first is None:
                break
            name, _, _ = first.partition(b"\x00")
            names.append(name.decode())
            cursor = name + b"\x01"
    else:
        raise MigrationError(f"cannot list the trees of {type(database).__name__}")
    return sorted(name for name in names if name != PROGRESS_TREE)


def digest_tree(tree: Tree) -> tuple[int, str]:
    """(number of keys, SHA-256 of every length-prefixed key and value in order)."""
    digest = hashlib.sha256()
    count = 0
    for key, value in tree.iter_prefix():
        digest.update(struct.pack(">II", len(key), len(value)))
        digest.update(key)
        digest.update(value)
        count += 1
    return count, digest.hexdigest()


@dataclass
class TreeReport:
    name: str
    copied: int = 0
    skipped: bool = False
    count: int = 0
    digest: str = ""
    matches: bool = False


@dataclass
class MigrationReport:
    source: str
    destination: str
    trees: list[TreeReport] = field(default_factory=list)
    media_copied: int = 0
    media_note: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(tree.matches for tree in self.trees)

    def summary(self) -> str:
        lines = [f"migrated {self.source} -> {self.destination}"]
        width = max((len(tree.name) for tree in self.trees), default=4)
        for tree in self.trees:
            state = "OK" if tree.matches else "DIFFERS"
            how = "done before" if tree.skipped else f"{tree.copied} copied"
            lines.append(
                f"  {tree.name:<{width}}  {tree.count:>9} keys  {how:>14}  "
                f"sha256 {tree.digest[:16]}  {state}"
            )
        total = sum(tree.count for tree in self.trees)
        lines.append(
            f"{len(self.trees)} trees, {total} keys, verified: "
            + ("all match" if self.ok else "MISMATCH")
        )
        lines.append(self.media_note or f"media: {self.media_copied} files copied")
        lines.append(f"{self.seconds:.1f} s")
        return "\n".join(lines)


def _copy_tree(source: Database, destination: Database, name: str, progress: Tree) -> TreeReport:
    report = TreeReport(name)
    marker = progress.get(name.encode())
    if marker == _DONE:
        report.skipped = True
        return report
    start = marker[len(_UP_TO) :] if marker else None
    source_tree, destination_tree = source.tree(name), destination.tree(name)
    pending: list[tuple[bytes, bytes]] = []

    def flush() -> None:
        with destination.batch() as batch:
            for key, value in pending:
                batch.put(destination_tree, key, value)
            batch.put(progress, name.encode(), _UP_TO + pending[-1][0])
        report.copied += len(pending)
        pending.clear()

    for key, value in source_tree.iter_prefix(start=start):
        if key == start:
            continue  # landed in the last batch of an interrupted run
        pending.append((key, value))
        if len(pending) >= BATCH:
            flush()
    if pending:
        flush()
    progress.put(name.encode(), _DONE)
    return report


def _check_destination_is_ours(destination: Database, progress: Tree) -> None:
    if next(progress.iter_prefix(), None) is not None:
        return  # resuming
    for name in tree_names(destination):
        if next(destination.tree(name).iter_prefix(), None) is not None:
            raise MigrationError(
                f"the destination already holds data (tree {name}) and no progress of an "
                "earlier migrate-db: migrate into an empty database"
            )


def _copy_media(source: Endpoint, destination: Endpoint) -> tuple[int, str]:
    if source.directory is None:
        return 0, "media: the source is a URL; copy database_path/media yourself"
    media = os.path.join(source.directory, "media")
    if not os.path.isdir(media):
        return 0, "media: none"
    if destination.directory is None:
        return 0, f"media: left in {media}; keep database_path = {source.directory!r}"
    if os.path.realpath(source.directory) == os.path.realpath(destination.directory):
        return 0, f"media: stay in {media} (same database_path)"
    target = os.path.join(destination.directory, "media")
    copied = 0
    for root, _, files in os.walk(media):
        relative = os.path.relpath(root, media)
        os.makedirs(os.path.join(target, relative), mode=0o700, exist_ok=True)
        for file in files:
            source_file = os.path.join(root, file)
            target_file = os.path.join(target, relative, file)
            if os.path.exists(target_file) and os.path.getsize(target_file) == os.path.getsize(
                source_file
            ):
                continue
            shutil.copy2(source_file, target_file + ".partial")
            os.replace(target_file + ".partial", target_file)
            copied += 1
    return copied, ""


def migrate(
    source_spec: str,
    destination_spec: str,
    *,
    progress_callback: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Copy every tree (and the media) from source to destination, then verify both."""
    started = time.monotonic()
    source, destination = resolve(source_spec), resolve(destination_spec)
    if source == destination:
        raise MigrationError("--from and --to name the same database")
    report = MigrationReport(source.describe(), destination.describe())
    say = progress_callback or (lambda _: None)
    try:
        source_db = source.open()
    except DatabaseError as error:
        raise MigrationError(f"cannot open the source: {error}") from None
    try:
        Globals.store_shared_counter(source_db)
        try:
            destination_db = destination.open()
        except DatabaseError as error:
            raise MigrationError(f"cannot open the destination: {error}") from None
        try:
            progress = destination_db.tree(PROGRESS_TREE)
            _check_destination_is_ours(destination_db, progress)
            for name in tree_names(source_db):
                say(f"copying {name}")
                report.trees.append(_copy_tree(source_db, destination_db, name, progress))
            for tree in _verify(source_db, destination_db, report.trees, say):
                say(f"differs: {tree}")
            if report.ok:
                with destination_db.batch() as batch:
                    for key in list(progress.keys_with_prefix()):
                        batch.delete(progress, key)
        finally:
            destination_db.close()
    finally:
        source_db.close()
    report.media_copied, report.media_note = _copy_media(source, destination)
    report.seconds = time.monotonic() - started
    return report


def _verify(
    source: Database, destination: Database, trees: list[TreeReport], say: Callable[[str], None]
) -> Iterator[str]:
    extra = set(tree_names(destination)) - {tree.name for tree in trees}
    for name in sorted(extra):
        if next(destination.tree(name).iter_prefix(), None) is not None:
            trees.append(TreeReport(name, count=0, digest="only in the destination"))
            yield name
    for tree in trees:
        if tree.digest == "only in the destination":
            continue
        say(f"verifying {tree.name}")
        tree.count, tree.digest = digest_tree(source.tree(tree.name))
        tree.matches = digest_tree(destination.tree(tree.name)) == (tree.count, tree.digest)
        if not tree.matches:
            yield tree.name
