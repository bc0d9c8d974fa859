"""Per-destination backoff: doubling, capped, stored in the database, cleared on contact.

Spec: `content/server-server-api.md` leaves retrying to the sending server
(it asks for exponential backoff only for `.well-known` failures, § Resolving
server names); the rules are those of `service/federation/destinations.py`.
"""

from __future__ import annotations

from matrix_conduit.service.federation.destinations import (
    MAX_BACKOFF_MS,
    MIN_BACKOFF_MS,
    Destinations,
)
from matrix_conduit.storage import open_database
from tests.support.service_parts import FakeClock

PEER = "peer.example"


def test_each_failure_doubles_the_wait_up_to_the_cap(tmp_path):
    clock = FakeClock()
    with open_database("leveldb", str(tmp_path / "db")) as db:
        destinations = Destinations(db, clock)
        waits = [destinations.record_failure(PEER).retry_at_ms - clock() for _ in range(30)]

    assert waits[:3] == [MIN_BACKOFF_MS, 2 * MIN_BACKOFF_MS, 4 * MIN_BACKOFF_MS]
    assert waits[-1] == MAX_BACKOFF_MS


def test_a_backoff_ends_when_its_time_has_come(tmp_path):
    clock = FakeClock()
    with open_database("leveldb", str(tmp_path / "db")) as db:
        destinations = Destinations(db, clock)
        backoff = destinations.record_failure(PEER)
        during = destinations.retry_at_ms(PEER)
        clock.advance(MIN_BACKOFF_MS)
        after = destinations.retry_at_ms(PEER)

    assert during == backoff.retry_at_ms
    assert after is None


def test_backoff_is_kept_in_the_database_and_cleared_by_a_success(tmp_path):
    clock = FakeClock()
    path = str(tmp_path / "db")
    with open_database("leveldb", path) as db:
        Destinations(db, clock).record_failure(PEER)
        Destinations(db, clock).record_failure("other.example")
    with open_database("leveldb", path) as db:
        reopened = Destinations(db, clock)
        kept = reopened.backoff(PEER)
        reopened.record_success(PEER)
    with open_database("leveldb", path) as db:
        cleared = Destinations(db, clock)
        assert cleared.backoff(PEER) is None
        assert cleared.backoff("other.example").failures == 1

    assert kept.failures == 1
