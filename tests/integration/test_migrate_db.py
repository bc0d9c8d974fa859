"""`matrix-conduit migrate-db`: a server's data moved LevelDB -> PostgreSQL -> SQLite.

A server with accounts, a room with history, an uploaded file and end-to-end
keys is stopped, copied to a real PostgreSQL (tests/support/postgres.py),
started there (log in, `/sync`, send, the file and the keys are there), then
copied on to SQLite and started again. An interrupted copy resumes where it
stopped; a destination that holds another server's data is refused.
(Client-server API: "Login", "Syncing", "Content repository",
"End-to-end encryption": `/keys/query`.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from matrix_conduit import migrate_db
from matrix_conduit.cli import main
from matrix_conduit.migrate_db import MigrationError, migrate
from matrix_conduit.storage import open_database
from tests.support import postgres
from tests.support.accounts import PASSWORD, log_in
from tests.support.e2ee import query_keys, upload_device_keys
from tests.support.matrix import User, bodies, ok, register
from tests.support.postgres import PostgresServer
from tests.support.remote_media import download, upload
from tests.support.server import TestServer, make_config, serving

postgres_server = postgres.postgres_server


def write_config(path: Path, backend: str, directory: Path, **extra: str) -> str:
    lines = [
        "[global]",
        'server_name = "localhost"',
        f'database_backend = "{backend}"',
        f'database_path = "{directory}"',
        *(f'{key} = "{value}"' for key, value in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def postgres_config_values(server: PostgresServer) -> dict[str, str]:
    return {"database_url": server.fresh_database(), "database_password_file": server.password_file}


@asynccontextmanager
async def served(config) -> AsyncIterator[TestServer]:
    """A server for the block, stopped and its database closed when the block ends."""
    async with trio.open_nursery() as nursery, serving(nursery, config) as server:
        yield server


async def logged_in(server: TestServer, localpart: str) -> User:
    body = ok(await log_in(server.client, localpart, PASSWORD))
    return User(
        body["user_id"], body["device_id"], body["access_token"], server.client, "localhost"
    )


async def check_everything_is_there(
    server: TestServer, room_id: str, media: str, texts: list[str], device_id: str
) -> None:
    alice, bob = await logged_in(server, "alice"), await logged_in(server, "bob")
    joined = ok(await bob.get("/sync"))["rooms"]["join"]
    assert room_id in joined
    assert bodies(await alice.timeline(room_id))[-len(texts) :] == texts
    keys = await query_keys(bob, alice)
    assert device_id in keys["device_keys"][alice.user_id]
    downloaded = await download(alice, media)
    assert (downloaded.status_code, downloaded.content) == (200, b"the file's bytes")


async def test_leveldb_to_postgresql_and_on_to_sqlite_keeps_accounts_rooms_media_and_keys(
    tmp_path, postgres_server, capsys
):
    async with served(make_config(tmp_path / "leveldb")) as server:
        alice = await register(server, "alice", password=PASSWORD)
        bob = await register(server, "bob", password=PASSWORD)
        room_id = await alice.create_room(name="Moving house")
        await alice.invite(room_id, bob)
        await bob.join(room_id)
        await alice.send(room_id, "before the move")
        media = await upload(alice, b"the file's bytes", "text/plain")
        await upload_device_keys(alice)
        device_id = alice.device_id

    pg_values = postgres_config_values(postgres_server)
    pg_toml = write_config(tmp_path / "pg.toml", "postgresql", tmp_path / "pg-media", **pg_values)
    assert main(["migrate-db", "--from", str(tmp_path / "leveldb"), "--to", pg_toml]) == 0
    printed = capsys.readouterr().out
    assert "verified: all match" in printed
    assert "media: 1 files copied" in printed

    pg_config = make_config(tmp_path / "pg-media", database_backend="postgresql", **pg_values)
    async with served(pg_config) as server:
        await check_everything_is_there(server, room_id, media, ["before the move"], device_id)
        alice = await logged_in(server, "alice")
        await alice.send(room_id, "on postgresql")

    sqlite_toml = write_config(tmp_path / "sqlite.toml", "sqlite", tmp_path / "sqlite")
    report = migrate(pg_toml, sqlite_toml)
    assert report.ok, report.summary()
    assert report.media_copied == 1
    assert {tree.name for tree in report.trees} >= {"userid_password", "pduid_pdu"}

    sqlite_config = make_config(tmp_path / "sqlite", database_backend="sqlite")
    async with served(sqlite_config) as server:
        texts = ["before the move", "on postgresql"]
        await check_everything_is_there(server, room_id, media, texts, device_id)
        # The counter went on from PostgreSQL's sequence: a new message sorts last.
        alice = await logged_in(server, "alice")
        await alice.send(room_id, "on sqlite")
        assert bodies(await alice.timeline(room_id))[-3:] == [*texts, "on sqlite"]


def make_leveldb(directory: Path, trees: dict[str, int]) -> None:
    with open_database("leveldb", str(directory)) as db:
        for name, count in trees.items():
            with db.batch() as batch:
                for n in range(count):
                    batch.put(db.tree(name), n.to_bytes(4, "big"), f"{name} {n}".encode())


def test_an_interrupted_migration_resumes_after_the_last_batch_that_landed(
    tmp_path, postgres_server, monkeypatch
):
    make_leveldb(tmp_path / "src", {"alpha": 25, "beta": 7, "gamma": 3})
    destination = write_config(
        tmp_path / "pg.toml",
        "postgresql",
        tmp_path / "pg",
        **postgres_config_values(postgres_server),
    )
    monkeypatch.setattr(migrate_db, "BATCH", 10)
    copy_tree = migrate_db._copy_tree
    calls = []

    def copy_then_fail(source, dest, name, progress):
        calls.append(name)
        if name == "beta" and calls.count("beta") == 1:
            raise KeyboardInterrupt  # the admin's Ctrl-C, after alpha landed
        return copy_tree(source, dest, name, progress)

    monkeypatch.setattr(migrate_db, "_copy_tree", copy_then_fail)
    with pytest.raises(KeyboardInterrupt):
        migrate(str(tmp_path / "src"), destination)

    report = migrate(str(tmp_path / "src"), destination)

    assert report.ok, report.summary()
    by_name = {tree.name: tree for tree in report.trees}
    assert by_name["alpha"].skipped and by_name["alpha"].count == 25
    assert (by_name["beta"].copied, by_name["gamma"].copied) == (7, 3)


def test_a_tree_cut_off_mid_copy_continues_after_its_marker(tmp_path):
    make_leveldb(tmp_path / "src", {"alpha": 25})
    with (
        open_database("leveldb", str(tmp_path / "src")) as source,
        open_database("sqlite", str(tmp_path / "dst")) as destination,
    ):
        for n in range(11):  # what an interrupted run had written, with its marker
            destination.tree("alpha").put(n.to_bytes(4, "big"), f"alpha {n}".encode())
        progress = destination.tree(migrate_db.PROGRESS_TREE)
        progress.put(b"alpha", b"upto:" + (10).to_bytes(4, "big"))

        report = migrate_db._copy_tree(source, destination, "alpha", progress)

        assert report.copied == 14
        assert migrate_db.digest_tree(source.tree("alpha")) == migrate_db.digest_tree(
            destination.tree("alpha")
        )


def test_a_destination_holding_another_servers_data_is_refused(tmp_path):
    make_leveldb(tmp_path / "src", {"alpha": 2})
    make_leveldb(tmp_path / "other", {"beta": 1})
    with pytest.raises(MigrationError, match="already holds data"):
        migrate(str(tmp_path / "src"), str(tmp_path / "other"))


def test_a_source_that_is_no_database_is_refused_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(["migrate-db", "--from", str(tmp_path / "empty"), "--to", "postgresql://h/db"]) == 1
