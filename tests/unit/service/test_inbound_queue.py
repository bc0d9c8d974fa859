"""The inbound queue: a transaction's PDUs and answer in one batch, each room's PDUs in order.

Spec: `content/server-server-api.md` § Transactions (a retried transaction id
gets the same answer); `../shared/notes/federation-lessons.md` "Receiving
/send" (answers kept for a day, as Synapse keeps them).
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.federation.inbound_queue import ANSWER_KEPT_MS, InboundQueue
from matrix_conduit.service.globals import Globals
from matrix_conduit.storage import open_database


@pytest.fixture
def db(tmp_path):
    database = open_database("leveldb", str(tmp_path / "db"))
    yield database
    database.close()


def event(room_id: str, event_id: str) -> dict:
    return {"room_id": room_id, "event_id": event_id, "type": "m.room.message"}


def test_a_transactions_pdus_wait_per_room_in_arrival_order_until_deleted(db):
    queue = InboundQueue(db, Globals(db, "localhost"))
    queue.enqueue(
        "a.example", "t1", [("10", event("!r1:x", "$1")), ("10", event("!r2:x", "$2"))], {}
    )
    queue.enqueue("a.example", "t2", [("10", event("!r1:x", "$3"))], {})

    assert queue.rooms_with_work() == ["!r1:x", "!r2:x"]
    first = queue.first("!r1:x")
    assert first is not None
    assert (first.origin, first.room_version, first.event["event_id"]) == ("a.example", "10", "$1")
    with db.batch() as batch:
        queue.delete(first, batch)
    second = queue.first("!r1:x")
    assert second is not None and second.event["event_id"] == "$3"


def test_an_answer_is_kept_for_retries_and_forgotten_after_a_day(db):
    now = [1_000_000]
    queue = InboundQueue(db, Globals(db, "localhost"), clock=lambda: now[0])
    queue.enqueue("a.example", "t1", [], {"pdus": {"$1": {}}})
    now[0] += ANSWER_KEPT_MS // 2
    queue.enqueue("a.example", "t2", [], {"pdus": {}})

    queue.purge_expired()
    assert queue.answer("a.example", "t1") == {"pdus": {"$1": {}}}
    assert queue.answer("b.example", "t1") is None

    now[0] += ANSWER_KEPT_MS // 2 + 1
    queue.purge_expired()
    assert queue.answer("a.example", "t1") is None
    assert queue.answer("a.example", "t2") == {"pdus": {}}
