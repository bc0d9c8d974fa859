"""The storage interface, one suite run against all three backends.

LevelDB, SQLite, and PostgreSQL on a real server the suite starts itself
(`tests/support/postgres.py`, one cluster per pytest process, a fresh
database per test).

Every service relies on exactly these promises: ordered trees of bytes,
prefix iteration in both directions from any start, trees that never see
each other's keys, batches that land across trees all together or not at all,
data that survives a reopen, and one process per database
(`matrix_conduit/storage/`). Durability under `kill -9` is in
`tests/integration/test_durability.py`.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from matrix_conduit.storage import Database, DatabaseError, DatabaseInUse, open_database
from matrix_conduit.storage.kv import from_u64, join_key, prefix_upper_bound, u64
from tests.support import postgres
from tests.support.postgres import PostgresServer

postgres_server = postgres.postgres_server

ENGINES = ["leveldb", "sqlite", "postgresql"]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def open_kwargs(engine: str, request) -> dict[str, str]:
    """What open_database needs beyond the directory: a fresh PostgreSQL database."""
    if engine != "postgresql":
        return {}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return postgres_kwargs(server)


def postgres_kwargs(server: PostgresServer) -> dict[str, str]:
    with open(server.password_file, encoding="utf-8") as file:
        return {"url": server.fresh_database(), "password": file.read().strip()}


@pytest.fixture
def database(engine: str, db_path: Path, open_kwargs) -> Database:
    with open_database(engine, str(db_path), **open_kwargs) as db:
        yield db


def fill(tree, keys: list[bytes]) -> None:
    for key in keys:
        tree.put(key, b"value of " + key)


def keys_of(items) -> list[bytes]:
    return [key for key, _ in items]


# ------------------------------------------------------------ key helpers


def test_u64_keys_sort_in_numeric_order():
    numbers = [0, 1, 255, 256, 2**32, 2**64 - 1]
    assert sorted(u64(n) for n in numbers) == [u64(n) for n in numbers]
    assert [from_u64(u64(n)) for n in numbers] == numbers


def test_compound_keys_are_joined_with_0xff():
    assert join_key("!room:example.org", b"\x00\x01", "x") == b"!room:example.org\xff\x00\x01\xffx"


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [(b"a", b"b"), (b"a\xff", b"b"), (b"a\xfe", b"a\xff"), (b"\xff\xff", None), (b"", None)],
)
def test_prefix_upper_bound_is_the_first_key_after_the_prefix(prefix, bound):
    assert prefix_upper_bound(prefix) == bound


# ------------------------------------------------------------ single keys


def test_get_of_a_missing_key_is_none(database):
    assert database.tree("t").get(b"missing") is None
    assert b"missing" not in database.tree("t")


def test_put_then_get_returns_the_value(database):
    tree = database.tree("t")
    tree.put(b"key", b"value")
    assert tree.get(b"key") == b"value"
    assert b"key" in tree


def test_put_overwrites(database):
    tree = database.tree("t")
    tree.put(b"key", b"one")
    tree.put(b"key", b"two")
    assert tree.get(b"key") == b"two"
    assert list(tree.iter_prefix()) == [(b"key", b"two")]


def test_empty_value_is_stored_and_differs_from_missing(database):
    tree = database.tree("t")
    tree.put(b"key", b"")
    assert tree.get(b"key") == b""
    assert b"key" in tree


def test_keys_and_values_may_hold_any_bytes(database):
    tree = database.tree("t")
    key, value = b"\x00\xff\x00\xfe", bytes(range(256))
    tree.put(key, value)
    assert tree.get(key) == value


def test_delete_removes_the_key_and_ignores_missing_keys(database):
    tree = database.tree("t")
    tree.put(b"key", b"value")
    tree.delete(b"key")
    tree.delete(b"never there")
    assert tree.get(b"key") is None
    assert list(tree.iter_prefix()) == []


# ------------------------------------------------------------ iteration

KEYS = [b"a", b"a\x00", b"a\xff", b"a\xff\x01", b"a\xff\xff", b"ab", b"b", b"\xff", b"\xff\xff\x00"]


@pytest.fixture
def filled(database):
    tree = database.tree("t")
    fill(tree, list(reversed(KEYS)))
    return tree


def test_iteration_is_in_key_order_with_values(filled):
    assert list(filled.iter_prefix()) == [(key, b"value of " + key) for key in sorted(KEYS)]


def test_reverse_iteration_is_in_descending_key_order(filled):
    assert keys_of(filled.iter_prefix(reverse=True)) == sorted(KEYS, reverse=True)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"a", [b"a", b"a\x00", b"ab", b"a\xff", b"a\xff\x01", b"a\xff\xff"]),
        (b"a\xff", [b"a\xff", b"a\xff\x01", b"a\xff\xff"]),
        (b"a\xff\xff", [b"a\xff\xff"]),
        (b"\xff", [b"\xff", b"\xff\xff\x00"]),
        (b"\xff\xff", [b"\xff\xff\x00"]),
        (b"c", []),
    ],
)
def test_prefix_selects_exactly_the_keys_that_start_with_it(filled, prefix, expected):
    assert keys_of(filled.iter_prefix(prefix)) == expected
    assert keys_of(filled.iter_prefix(prefix, reverse=True)) == expected[::-1]
    assert list(filled.keys_with_prefix(prefix)) == expected


@pytest.mark.parametrize(
    ("prefix", "start", "forward", "reverse"),
    [
        (b"a", b"ab", [b"ab", b"a\xff", b"a\xff\x01", b"a\xff\xff"], [b"ab", b"a\x00", b"a"]),
        (b"a", b"a\x01", [b"ab", b"a\xff", b"a\xff\x01", b"a\xff\xff"], [b"a\x00", b"a"]),
        (b"a\xff", b"a\xff\x02", [b"a\xff\xff"], [b"a\xff\x01", b"a\xff"]),
        # start before the prefix: forward begins at the prefix, reverse finds nothing
        (b"a\xff", b"a", [b"a\xff", b"a\xff\x01", b"a\xff\xff"], []),
        # start after the prefix: forward finds nothing, reverse begins at its last key
        (b"a\xff", b"b", [], [b"a\xff\xff", b"a\xff\x01", b"a\xff"]),
        (b"", b"b", [b"b", b"\xff", b"\xff\xff\x00"], [b"b", *sorted(KEYS)[:6][::-1]]),
        (b"\xff", b"\xff\xff", [b"\xff\xff\x00"], [b"\xff"]),
    ],
    ids=[
        "on-a-key",
        "between-keys",
        "in-ff-prefix",
        "before-prefix",
        "after-prefix",
        "empty-prefix",
        "ff-prefix",
    ],
)
def test_start_is_inclusive_in_both_directions(filled, prefix, start, forward, reverse):
    assert keys_of(filled.iter_prefix(prefix, start=start)) == forward
    assert keys_of(filled.iter_prefix(prefix, reverse=True, start=start)) == reverse


def test_last_is_the_greatest_key_under_the_prefix(filled):
    assert filled.last(b"a") == (b"a\xff\xff", b"value of a\xff\xff")
    assert filled.last(b"ab") == (b"ab", b"value of ab")
    assert filled.last(b"a\xff") == (b"a\xff\xff", b"value of a\xff\xff")
    assert filled.last(b"c") is None


def test_reverse_iteration_includes_a_key_equal_to_the_prefix(database):
    tree = database.tree("t")
    fill(tree, [b"!room", b"!room\xff\x01", b"!roomz"])

    assert tree.last(b"!roomz") == (b"!roomz", b"value of !roomz")
    assert keys_of(tree.iter_prefix(b"!room", reverse=True, start=b"!room\x00")) == [b"!room"]


def test_iteration_over_many_keys_sees_each_once(database):
    tree = database.tree("t")
    fill(tree, [u64(n) for n in range(1000)])

    assert keys_of(tree.iter_prefix()) == [u64(n) for n in range(1000)]
    assert keys_of(tree.iter_prefix(reverse=True)) == [u64(n) for n in reversed(range(1000))]
    assert keys_of(tree.iter_prefix(start=u64(300))) == [u64(n) for n in range(300, 1000)]
    assert keys_of(tree.iter_prefix(reverse=True, start=u64(700))) == [
        u64(n) for n in reversed(range(701))
    ]


def test_writes_during_iteration_do_not_break_it(database):
    tree = database.tree("t")
    fill(tree, [u64(n) for n in range(600)])

    seen = []
    for key, _ in tree.iter_prefix():
        seen.append(key)
        tree.delete(key)

    assert seen == [u64(n) for n in range(600)]
    assert list(tree.iter_prefix()) == []


# ------------------------------------------------------------ trees


def test_trees_do_not_see_each_others_keys(database):
    names = ["a", "ab", "a_b", "userid_password", "userid_password_extra"]
    for name in names:
        database.tree(name).put(b"key", name.encode())
        database.tree(name).put(name.encode(), b"")

    for name in names:
        tree = database.tree(name)
        assert tree.get(b"key") == name.encode()
        assert sorted(tree.keys_with_prefix()) == sorted([b"key", name.encode()])
        assert keys_of(tree.iter_prefix(reverse=True, start=b"\xff\xff")) == sorted(
            [b"key", name.encode()], reverse=True
        )


def test_deleting_in_one_tree_leaves_the_same_key_in_another(database):
    database.tree("one").put(b"key", b"1")
    database.tree("two").put(b"key", b"2")
    database.tree("one").delete(b"key")
    assert database.tree("two").get(b"key") == b"2"


# ------------------------------------------------------------ batches


def test_batch_writes_across_trees_when_the_block_ends(database):
    users, devices = database.tree("users"), database.tree("devices")
    devices.put(b"old", b"x")

    with database.batch() as batch:
        batch.put(users, b"@alice", b"1")
        batch.put(devices, b"@alice\xffDEVICE", b"2")
        batch.delete(devices, b"old")
        assert users.get(b"@alice") is None, "a batch is invisible until it commits"

    assert users.get(b"@alice") == b"1"
    assert devices.get(b"@alice\xffDEVICE") == b"2"
    assert devices.get(b"old") is None


def test_batch_that_raises_inside_the_block_writes_nothing(database):
    users, devices = database.tree("users"), database.tree("devices")
    devices.put(b"kept", b"x")

    with pytest.raises(RuntimeError, match="handler failed"), database.batch() as batch:
        batch.put(users, b"@alice", b"1")
        batch.delete(devices, b"kept")
        raise RuntimeError("handler failed")

    assert users.get(b"@alice") is None
    assert devices.get(b"kept") == b"x"


def test_later_operations_in_a_batch_win(database):
    tree = database.tree("t")
    with database.batch() as batch:
        batch.put(tree, b"k", b"first")
        batch.put(tree, b"k", b"second")
        batch.put(tree, b"gone", b"x")
        batch.delete(tree, b"gone")
    assert (tree.get(b"k"), tree.get(b"gone")) == (b"second", None)


# ------------------------------------------------------------ opening


def test_reopened_database_keeps_its_data(engine, db_path, open_kwargs):
    with open_database(engine, str(db_path), **open_kwargs) as db:
        db.tree("t").put(b"single", b"1")
        with db.batch() as batch:
            batch.put(db.tree("u"), b"batched", b"2")

    with open_database(engine, str(db_path), **open_kwargs) as db:
        assert db.tree("t").get(b"single") == b"1"
        assert db.tree("u").get(b"batched") == b"2"
        assert db.size_on_disk() > 0


def test_second_open_of_an_open_database_is_refused_as_in_use(
    database, engine, db_path, open_kwargs
):
    with pytest.raises(DatabaseInUse) as caught:
        open_database(engine, str(db_path), **open_kwargs)
    assert str(caught.value).startswith(f"database at {db_path} is in use by another process")


def test_closing_lets_the_database_be_opened_again(engine, db_path, open_kwargs):
    open_database(engine, str(db_path), **open_kwargs).close()
    open_database(engine, str(db_path), **open_kwargs).close()


def test_second_process_on_one_postgresql_database_is_refused(postgres_server, tmp_path):
    """Two processes on one PostgreSQL database (other directories) would split the counter."""
    kwargs = postgres_kwargs(postgres_server)
    with (
        open_database("postgresql", str(tmp_path / "one"), **kwargs),
        pytest.raises(DatabaseInUse) as caught,
    ):
        open_database("postgresql", str(tmp_path / "two"), **kwargs)
    assert "is in use by another process" in str(caught.value)
    assert kwargs["password"] not in str(caught.value)
    open_database("postgresql", str(tmp_path / "two"), **kwargs).close()


def test_postgresql_lists_its_trees_and_keeps_long_names_apart(postgres_server, tmp_path):
    long_a, long_b = "x" * 70 + "a", "x" * 70 + "b"
    with open_database("postgresql", str(tmp_path), **postgres_kwargs(postgres_server)) as db:
        db.tree(long_a).put(b"k", b"a")
        db.tree(long_b).put(b"k", b"b")
        db.tree("short").put(b"k", b"s")
        assert (db.tree(long_a).get(b"k"), db.tree(long_b).get(b"k")) == (b"a", b"b")
        assert db.tree_names() == sorted([long_a, long_b, "short"])


def test_postgresql_wrong_password_is_refused_without_showing_it(postgres_server, tmp_path):
    kwargs = {**postgres_kwargs(postgres_server), "password": "wrong-secret-123"}
    with pytest.raises(DatabaseError) as caught:
        open_database("postgresql", str(tmp_path), **kwargs)
    message = str(caught.value)
    assert "cannot connect to the PostgreSQL database postgresql://conduit@127.0.0.1" in message
    assert "password authentication failed" in message
    assert "wrong-secret-123" not in message


def test_database_directory_is_created_private(database, db_path):
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o700
    for path in db_path.rglob("*"):
        if path.is_dir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


def test_sqlite_files_and_lock_are_private(db_path):
    with open_database("sqlite", str(db_path)) as db:
        db.tree("t").put(b"k", b"v")
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in db_path.iterdir()}
    assert modes == dict.fromkeys(modes, 0o600)
    assert {"conduit.db", "conduit.lock"} <= set(modes)


@pytest.mark.parametrize("embedded", ["leveldb", "sqlite"])
def test_directory_holding_rocksdb_is_refused_with_an_explanation(embedded, db_path):
    db_path.mkdir()
    (db_path / "OPTIONS-000007").write_text("[Version]\n")
    (db_path / "CURRENT").write_text("MANIFEST-000005\n")

    with pytest.raises(DatabaseError) as caught:
        open_database(embedded, str(db_path))

    message = str(caught.value)
    assert "holds a RocksDB database" in message
    assert "new, empty directory" in message


@pytest.mark.parametrize(
    ("made_with", "opened_with", "advice"),
    [
        ("sqlite", "leveldb", 'Set database_backend = "sqlite"'),
        ("leveldb", "sqlite", 'Set database_backend = "leveldb"'),
    ],
)
def test_directory_holding_the_other_backend_is_refused(db_path, made_with, opened_with, advice):
    with open_database(made_with, str(db_path)) as db:
        db.tree("t").put(b"k", b"v")

    with pytest.raises(DatabaseError, match=advice):
        open_database(opened_with, str(db_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_database_path_is_refused_naming_it(engine, tmp_path, open_kwargs):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(DatabaseError, match=f"cannot create database_path {tmp_path}/db"):
            open_database(engine, str(tmp_path / "db"), **open_kwargs)
    finally:
        tmp_path.chmod(0o700)


# ------------------------------------------------------------ a model of a tree

KEY_ALPHABET = [b"\x00", b"a", b"b", b"\xfe", b"\xff"]
"""Few symbols, many collisions and prefixes; 0xFF is the compound-key separator."""

short_keys = st.lists(st.sampled_from(KEY_ALPHABET), max_size=3).map(b"".join)
tree_names = st.sampled_from(["tree", "tree_b"])
values = st.binary(max_size=3)
batch_operations = st.lists(
    st.tuples(tree_names, short_keys, st.none() | values), min_size=1, max_size=5
)
"""(tree, key, value) triples; a None value is a delete."""


def model_items(model: dict[bytes, bytes], prefix: bytes, reverse: bool, start: bytes | None):
    items = sorted(item for item in model.items() if item[0].startswith(prefix))
    if start is not None:
        items = [item for item in items if (item[0] <= start if reverse else item[0] >= start)]
    return items[::-1] if reverse else items


class TreeModel(RuleBasedStateMachine):
    """Random puts, deletes, batches (some failing) and reopens, checked against dicts."""

    engine: str

    def __init__(self) -> None:
        super().__init__()
        self.open_kwargs: dict[str, str] = {}
        self.directory = tempfile.mkdtemp(prefix="conduit-model-")
        self.path = os.path.join(self.directory, "db")
        if self.engine == "postgresql":
            self.open_kwargs = postgres_kwargs(PostgreSQLTreeModel.server)
        self.db = open_database(self.engine, self.path, **self.open_kwargs)
        self.models: dict[str, dict[bytes, bytes]] = {"tree": {}, "tree_b": {}}
        self.reopens = 0

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.directory)

    @rule(name=tree_names, key=short_keys, value=values)
    def put(self, name, key, value):
        self.db.tree(name).put(key, value)
        self.models[name][key] = value

    @rule(name=tree_names, key=short_keys)
    def delete(self, name, key):
        self.db.tree(name).delete(key)
        self.models[name].pop(key, None)

    @rule(operations=batch_operations, fails=st.booleans())
    def batch(self, operations, fails):
        try:
            with self.db.batch() as batch:
                for name, key, value in operations:
                    if value is None:
                        batch.delete(self.db.tree(name), key)
                    else:
                        batch.put(self.db.tree(name), key, value)
                if fails:
                    raise KeyError("abandon the batch")
        except KeyError:
            return
        for name, key, value in operations:
            if value is None:
                self.models[name].pop(key, None)
            else:
                self.models[name][key] = value

    @precondition(lambda self: self.reopens < 2)
    @rule()
    def reopen(self):
        self.db.close()
        self.db = open_database(self.engine, self.path, **self.open_kwargs)
        self.reopens += 1

    @rule(name=tree_names, key=short_keys)
    def get_agrees(self, name, key):
        assert self.db.tree(name).get(key) == self.models[name].get(key)

    @rule(
        name=tree_names,
        prefix=short_keys,
        reverse=st.booleans(),
        start=st.none() | short_keys,
    )
    def iteration_agrees(self, name, prefix, reverse, start):
        actual = list(self.db.tree(name).iter_prefix(prefix, reverse=reverse, start=start))
        assert actual == model_items(self.models[name], prefix, reverse, start)


MODEL_SETTINGS = settings(max_examples=15, stateful_step_count=20, deadline=None)


class LevelDBTreeModel(TreeModel):
    engine = "leveldb"


class SQLiteTreeModel(TreeModel):
    engine = "sqlite"


class PostgreSQLTreeModel(TreeModel):
    engine = "postgresql"
    server: PostgresServer


TestLevelDBAgainstAModel = LevelDBTreeModel.TestCase
TestLevelDBAgainstAModel.settings = MODEL_SETTINGS
TestSQLiteAgainstAModel = SQLiteTreeModel.TestCase
TestSQLiteAgainstAModel.settings = MODEL_SETTINGS
TestPostgreSQLAgainstAModel = PostgreSQLTreeModel.TestCase
TestPostgreSQLAgainstAModel.settings = MODEL_SETTINGS


@pytest.fixture(autouse=True)
def _postgres_for_the_model(request):
    """The PostgreSQL model test gets the session's server (state machines take no fixtures)."""
    if request.cls is TestPostgreSQLAgainstAModel:
        PostgreSQLTreeModel.server = request.getfixturevalue("postgres_server")
