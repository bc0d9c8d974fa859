"""An acknowledged write survives `kill -9` of the process that made it, on both backends.

DESIGN.md: "A request is answered only after its write is in the database: a
`kill -9` after a 200 must not lose it." Here the storage layer alone: a
child process (`tests/support/durability_writer.py`) writes single keys and
batches across trees and acknowledges each on stdout; the test kills it at an
arbitrary moment and reopens the database.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from matrix_conduit.storage import open_database
from matrix_conduit.storage.kv import u64
from tests.support import durability_writer
from tests.support.durability_writer import BATCH_TREES, SINGLE_TREE, value_for

pytestmark = pytest.mark.slow

ACKNOWLEDGEMENTS_BEFORE_KILL = 500


def write_until_killed(engine: str, path: str) -> list[int]:
    """The numbers of the writes the writer acknowledged before SIGKILL hit it."""
    writer = subprocess.Popen(
        [sys.executable, durability_writer.__file__, engine, path],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in writer.stdout:
        lines.append(line)
        if len(lines) == ACKNOWLEDGEMENTS_BEFORE_KILL:
            break
    writer.kill()
    writer.wait()
    lines += writer.stdout.readlines()  # acknowledged before it died, not read yet
    writer.stdout.close()
    assert writer.returncode == -9
    return [int(line) for line in lines if line.endswith("\n")]


@pytest.mark.parametrize("engine", ["leveldb", "sqlite"])
def test_every_acknowledged_write_survives_kill_9(engine, tmp_path):
    path = str(tmp_path / "db")

    acknowledged = write_until_killed(engine, path)

    assert acknowledged == list(range(len(acknowledged)))
    assert len(acknowledged) >= ACKNOWLEDGEMENTS_BEFORE_KILL
    with open_database(engine, path) as db:
        lost = []
        for number in acknowledged:
            trees = BATCH_TREES if number % 2 else (SINGLE_TREE,)
            for name in trees:
                if db.tree(name).get(u64(number)) != value_for(name, number):
                    lost.append((name, number))
        assert lost == []
        batch_a, batch_b = (list(db.tree(name).keys_with_prefix()) for name in BATCH_TREES)
        assert batch_a == batch_b, "a batch landed in one tree but not the other"
