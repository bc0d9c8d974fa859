"""State snapshots as layered diffs: exact round trips, short chains, small writes.

Spec: none directly — this is how the server stores what
`content/server-server-api.md` calls "the state of the room before/after an
event" (and `content/client-server-api/_index.md`, "Room state"). The design
is Conduit's state compressor (`service/rooms/state_compressor.py`): a
snapshot is a set of 16-byte entries (short state key + short event id)
saved as a diff against a parent, merged upwards when the diff is large next
to its parent's and when a chain would pass four layers.

What it must guarantee, checked here on a real LevelDB database:
- any sequence of state changes (including forks: several children of one
  snapshot, as state resolution produces) loads back exactly, also by a new
  process (a compressor with an empty cache);
- no snapshot is more than `MAX_LAYERS` (4) layers deep;
- a membership change in a room whose state has 10,000 entries writes a
  diff of a few entries — measured in bytes written to the tree, not time.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.service.globals import Globals
from matrix_conduit.service.rooms.state_compressor import (
    MAX_LAYERS,
    Entry,
    StateCompressor,
    entry,
)
from matrix_conduit.storage import Database, Tree, WriteBatch, open_database

TREE = "shortstatehash_statediff"
ENTRY_BYTES = 16
HEADER_BYTES = 16  # parent shortstatehash + number of added entries


class CountingBatch(WriteBatch):
    """A real batch that also counts the bytes put into each tree."""

    def __init__(self, inner: WriteBatch) -> None:
        self._inner = inner
        self.bytes_by_tree: dict[str, int] = {}

    def put(self, tree: Tree, key: bytes, value: bytes) -> None:
        self.bytes_by_tree[tree.name] = self.bytes_by_tree.get(tree.name, 0) + len(key) + len(value)
        self._inner.put(tree, key, value)

    def delete(self, tree: Tree, key: bytes) -> None:
        self._inner.delete(tree, key)

    def _write(self) -> None:
        self._inner.commit()


def save(
    compressor: StateCompressor, db: Database, full: frozenset[Entry], parent: int | None
) -> tuple[int, int]:
    """Save a snapshot in its own batch; returns (shortstatehash, bytes written to the tree)."""
    batch = CountingBatch(db.batch())
    shortstatehash = compressor.save(full, parent, batch)
    batch.commit()
    return shortstatehash, batch.bytes_by_tree.get(TREE, 0)


class Store:
    """A database, its counter and a compressor; `reopened()` is one with an empty cache."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.globals = Globals(db, "example.org")
        self.compressor = StateCompressor(db, self.globals, cache_capacity=1000)

    def reopened(self) -> StateCompressor:
        return StateCompressor(self.db, self.globals, cache_capacity=1000)


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    with open_database("leveldb", str(tmp_path / "db")) as db:
        yield Store(db)


@pytest.fixture
def big_room(store: Store) -> tuple[int, dict[int, int]]:
    """A saved snapshot of 10,000 members (state keys 1..10000) and its mapping."""
    mapping = {key: 1_000_000 + key for key in range(1, 10_001)}
    root, _ = save(store.compressor, store.db, as_entries(mapping), None)
    return root, mapping


def as_entries(mapping: dict[int, int]) -> frozenset[Entry]:
    return frozenset(entry(key, event) for key, event in mapping.items())


# ---- round trips


# Each step: (which earlier snapshot to branch from, changes as (state key, event or None)).
steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10**6),
        st.lists(
            st.tuples(st.integers(1, 40), st.one_of(st.none(), st.integers(1, 10**9))),
            min_size=0,
            max_size=12,
        ),
    ),
    min_size=1,
    max_size=40,
)


@pytest.fixture(scope="module")
def shared_store() -> Iterator[Store]:
    """One database for every generated example (snapshots never collide: the counter)."""
    with tempfile.TemporaryDirectory() as directory, open_database("leveldb", directory) as db:
        yield Store(db)


@settings(max_examples=50, deadline=None)
@given(initial=st.dictionaries(st.integers(1, 40), st.integers(1, 10**9), max_size=30), steps=steps)
def test_any_sequence_of_state_changes_loads_back_exactly(shared_store: Store, initial, steps):
    store = shared_store
    db = store.db
    root, _ = save(store.compressor, db, as_entries(initial), None)
    snapshots = [(root, dict(initial))]
    for branch_from, changes in steps:
        parent, parent_mapping = snapshots[branch_from % len(snapshots)]
        mapping = dict(parent_mapping)
        for key, event in changes:
            if event is None:
                mapping.pop(key, None)
            else:
                mapping[key] = event
        shortstatehash, _ = save(store.compressor, db, as_entries(mapping), parent)
        snapshots.append((shortstatehash, mapping))

    for compressor in (store.compressor, store.reopened()):
        for shortstatehash, mapping in snapshots:
            layers = compressor.layers(shortstatehash)
            assert len(layers) <= MAX_LAYERS
            assert layers[-1].full == as_entries(mapping)
            assert dict(layers[-1].mapping()) == mapping


def test_a_long_linear_history_keeps_chains_short_and_exact(store: Store):
    rng = random.Random(4711)
    mapping: dict[int, int] = {}
    parent = None
    saved = []
    for step in range(500):
        for _ in range(rng.randint(1, 5)):
            mapping[rng.randint(1, 300)] = step * 10 + rng.randint(0, 9)
        parent, _ = save(store.compressor, store.db, as_entries(mapping), parent)
        saved.append((parent, dict(mapping)))
    reopened = store.reopened()
    depths = {len(reopened.layers(shortstatehash)) for shortstatehash, _ in saved}
    assert max(depths) <= MAX_LAYERS
    assert depths != {1}  # diffs are used, not full copies
    for shortstatehash, expected in saved:
        assert dict(reopened.full_state(shortstatehash).mapping()) == expected


def test_unknown_snapshot_is_a_key_error(store: Store):
    with pytest.raises(KeyError):
        store.reopened().layers(999_999)


# ---- bytes written


def test_membership_change_in_a_10000_entry_state_writes_a_diff_of_a_few_entries(
    store: Store, big_room
):
    root, mapping = big_room
    changed = dict(mapping)
    changed[5_000] = 2_000_000  # one member's join replaced by their leave
    shortstatehash, written = save(store.compressor, store.db, as_entries(changed), root)
    key_bytes = 8
    # one added entry and one removed entry, not 10,000
    assert written == key_bytes + HEADER_BYTES + 2 * ENTRY_BYTES
    assert dict(store.reopened().full_state(shortstatehash).mapping()) == changed


def test_new_member_in_a_10000_entry_state_writes_one_entry(store: Store, big_room):
    root, mapping = big_room
    joined = dict(mapping)
    joined[20_000] = 3_000_000
    _, written = save(store.compressor, store.db, as_entries(joined), root)
    assert written == 8 + HEADER_BYTES + ENTRY_BYTES


def test_many_membership_changes_never_rewrite_the_big_state(store: Store, big_room):
    root, mapping = big_room
    full_state_bytes = len(mapping) * ENTRY_BYTES
    rng = random.Random(99)
    parent, full = root, as_entries(mapping)
    writes = []
    for change in range(60):
        key = rng.randint(1, 10_000)
        full = (full - {entry(key, mapping[key])}) | {entry(key, 5_000_000 + change)}
        mapping[key] = 5_000_000 + change
        parent, written = save(store.compressor, store.db, full, parent)
        writes.append(written)
    assert max(writes) < full_state_bytes / 20
    assert sum(writes) / len(writes) < 20 * ENTRY_BYTES
    assert dict(store.reopened().full_state(parent).mapping()) == mapping
    assert len(store.reopened().layers(parent)) <= MAX_LAYERS
