"""A child process for the durability test: write forever, acknowledge each write.

    python tests/support/durability_writer.py ENGINE DATABASE_PATH

Each write is either a single `put` or a batch across two trees; once it has
returned, the writer prints its number on stdout. The test kills the writer
with SIGKILL at an arbitrary moment and checks that every printed number is
in the database: an acknowledged write is never lost when the process dies.
"""

from __future__ import annotations

import itertools
import sys

from matrix_conduit.storage import open_database
from matrix_conduit.storage.kv import u64

SINGLE_TREE, BATCH_TREES = "single", ("batch_a", "batch_b")
VALUE_PADDING = b"x" * 200
"""Makes the log grow quickly, so a kill often lands in the middle of a write."""


def value_for(tree: str, number: int) -> bytes:
    return f"{tree}:{number}:".encode() + VALUE_PADDING


def write_forever(engine: str, path: str) -> None:
    db = open_database(engine, path)
    single = db.tree(SINGLE_TREE)
    batched = [db.tree(name) for name in BATCH_TREES]
    for number in itertools.count():
        key = u64(number)
        if number % 2:
            with db.batch() as batch:
                for tree in batched:
                    batch.put(tree, key, value_for(tree.name, number))
        else:
            single.put(key, value_for(single.name, number))
        print(number, flush=True)


if __name__ == "__main__":
    write_forever(*sys.argv[1:3])
