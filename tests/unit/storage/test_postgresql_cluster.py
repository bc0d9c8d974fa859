"""The committed mark of several processes on one PostgreSQL database (issue #18).

Positions are taken from one sequence by several processes and land in any
order; `/sync` reads up to the committed mark, which must never pass a
position still in flight elsewhere ("a sync token must never skip an event
committed later with a smaller position"). Each `ClusterLink` here stands for
one server process (its own session).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from matrix_conduit.storage import open_database
from matrix_conduit.storage.postgresql_cluster import ClusterLink
from tests.support import postgres

postgres_server = postgres.postgres_server


@pytest.fixture
def database(tmp_path, postgres_server):
    url = postgres_server.fresh_database()
    password = Path(postgres_server.password_file).read_text().strip()
    db = open_database("postgresql", str(tmp_path / "db"), url=url, password=password, shared=True)
    yield db
    db.close()


def test_the_sequence_continues_from_the_counter_the_database_held(database):
    link = ClusterLink(database, stored_counter=41)
    assert link.take_position() == 42


def test_the_mark_stops_below_a_position_still_in_flight_in_another_process(database):
    first, second, reader = (ClusterLink(database, 0) for _ in range(3))
    early = first.take_position()
    late = second.take_position()
    second.settle([late], [])
    assert reader.committed_mark() == early - 1
    first.settle([early], [])
    assert reader.committed_mark() == late


def test_a_process_is_not_held_back_by_its_own_positions(database):
    writer, reader = ClusterLink(database, 0), ClusterLink(database, 0)
    position = writer.take_position()
    assert writer.committed_mark() == position
    assert reader.committed_mark() == position - 1


def test_positions_of_a_process_that_died_stop_holding_the_mark_back(database):
    dead, alive = ClusterLink(database, 0), ClusterLink(database, 0)
    stuck = dead.take_position()
    after = alive.take_position()
    alive.settle([after], [])
    dead.close()  # its session ends, as when the process is killed
    assert alive.committed_mark() == stuck - 1
    cleared = 0
    for _ in range(500):  # PostgreSQL ends the closed session within moments
        cleared += alive.clear_dead_processes()
        if cleared:
            break
        time.sleep(0.01)
    assert cleared == 1
    assert alive.committed_mark() == after


def test_settled_messages_reach_every_listener_in_commit_order(database):
    sender, listener = ClusterLink(database, 0), ClusterLink(database, 0)
    listener.listen()
    sender.settle([], ['{"c": "x", "d": 1}', '{"c": "x", "d": 2}'])
    sender.settle([], ['{"c": "x", "d": 3}'])
    received: list = []
    for _ in range(100):
        received += listener.received()
        if len(received) == 3:
            break
        time.sleep(0.01)
    assert [message["d"] for message in received] == [1, 2, 3]


def test_an_advisory_lock_is_held_by_one_process_at_a_time(database):
    first, second = ClusterLink(database, 0), ClusterLink(database, 0)
    assert first.try_lock(2, "federation:example.org")
    assert not second.try_lock(2, "federation:example.org")
    first.close()  # its session ends a moment later, and its locks with it
    for _ in range(500):
        if second.try_lock(2, "federation:example.org"):
            break
        time.sleep(0.01)
    else:
        pytest.fail("the lock of a closed session was never released")
