"""The few services a unit test of typing or presence needs, over a real database.

Typing and presence depend only on the global counter, the notifier and the
membership cache, so their tests build just those (no HTTP, no rooms module)
and set memberships directly, and move time with a `FakeClock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from matrix_conduit.service.globals import Globals
from matrix_conduit.service.notifier import Notifier
from matrix_conduit.service.rooms.state_cache import StateCache
from matrix_conduit.storage import Database, open_database

START_MS = 1_700_000_000_000

ROOM = "!room:localhost"
ALICE = "@alice:localhost"
BOB = "@bob:localhost"
OUTSIDER = "@outsider:localhost"


class FakeClock:
    """Milliseconds since the epoch that move only when the test says so."""

    def __init__(self, now_ms: int = START_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class ServiceParts:
    db: Database
    globals: Globals
    notifier: Notifier
    state_cache: StateCache

    def join(self, user_id: str, room_id: str) -> None:
        self._set_membership(user_id, room_id, "join")

    def leave(self, user_id: str, room_id: str) -> None:
        self._set_membership(user_id, room_id, "leave")

    def _set_membership(self, user_id: str, room_id: str, membership: str) -> None:
        with self.db.batch() as batch:
            self.state_cache.update_membership(
                batch, room_id, user_id, membership, self.globals.next_count()
            )


def open_service_parts(directory: Path) -> ServiceParts:
    """The parts over a LevelDB database in `directory` (opened again: same data)."""
    db = open_database("leveldb", str(directory))
    return ServiceParts(db, Globals(db, "localhost"), Notifier(), StateCache(db))


@contextmanager
def alice_and_bob_in_a_room(directory: Path) -> Iterator[ServiceParts]:
    """The parts, with ALICE and BOB joined to ROOM (OUTSIDER in no room); closed after."""
    parts = open_service_parts(directory)
    parts.join(ALICE, ROOM)
    parts.join(BOB, ROOM)
    try:
        yield parts
    finally:
        parts.db.close()
