"""`Cluster`: messages between server processes of one PostgreSQL database (issue #18).

Two `Cluster`s over one database here stand for two processes: each has its
own PostgreSQL sessions (the process identity), as two `matrix-conduit`
processes would; tests/integration/test_cluster.py runs real processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from matrix_conduit.service.cluster import Cluster
from matrix_conduit.storage import open_database
from tests.support import postgres

postgres_server = postgres.postgres_server

LIMIT_SECONDS = 20
"""Turns a message that never comes into a failure (nothing is timed)."""


@pytest.fixture
def database(tmp_path, postgres_server):
    url = postgres_server.fresh_database()
    password = Path(postgres_server.password_file).read_text().strip()
    db = open_database("postgresql", str(tmp_path / "db"), url=url, password=password, shared=True)
    yield db
    db.close()


async def wait_for(condition) -> None:
    with trio.fail_after(LIMIT_SECONDS):
        while not condition():
            await trio.sleep(0.01)


async def test_a_message_published_by_one_process_reaches_the_others_not_itself(database):
    one, two = Cluster(database, 0), Cluster(database, 0)
    heard_by_one: list = []
    heard_by_two: list = []
    one.subscribe("topic", heard_by_one.append)
    two.subscribe("topic", heard_by_two.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one.run)
        nursery.start_soon(two.run)
        await wait_for(lambda: one._listening and two._listening)
        one.publish("topic", {"room": "!a:localhost"})
        await wait_for(lambda: heard_by_two)
        await one.catch_up()  # its own message has come back to it by now, unhandled
        nursery.cancel_scope.cancel()
    assert heard_by_two == [{"room": "!a:localhost"}]
    assert heard_by_one == []


async def test_a_message_too_big_to_send_arrives_as_none(database):
    one, two = Cluster(database, 0), Cluster(database, 0)
    heard: list = []
    two.subscribe("topic", heard.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one.run)
        nursery.start_soon(two.run)
        await wait_for(lambda: two._listening)
        one.publish("topic", [f"@user{n}:localhost" for n in range(2000)])
        await wait_for(lambda: heard)
        nursery.cancel_scope.cancel()
    assert heard == [None]


async def test_after_losing_its_listening_connection_a_process_assumes_everything_changed(
    database,
):
    one, two = Cluster(database, 0), Cluster(database, 0)
    heard: list = []
    two.subscribe("topic", heard.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one.run)
        nursery.start_soon(two.run)
        await wait_for(lambda: two._listening)
        lost = two._link.listener_process
        database.run(lambda c: c.execute("SELECT pg_terminate_backend(%s)", (lost,)))
        await wait_for(lambda: heard == [None])  # listening again; caches must go
        assert two._link.listener_process != lost
        one.publish("topic", 2)
        await wait_for(lambda: heard == [None, 2])
        nursery.cancel_scope.cancel()


async def test_the_mark_reaches_a_position_once_the_process_that_took_it_settles(database):
    one, two = Cluster(database, 0), Cluster(database, 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one.run)
        nursery.start_soon(two.run)
        position = one.take_position()
        assert two.mark < position  # in flight in the other process
        await wait_for(lambda: two.mark >= position)
        nursery.cancel_scope.cancel()
