"""The durable inbound queue of other servers' PDUs, and the answers to their transactions.

Spec: `content/server-server-api.md` § Transactions (`PUT /send/{txnId}`:
the sender retries until it gets a 200, so a repeated transaction id must
get the same answer without being processed twice). What federation lessons
taught (`../shared/notes/federation-lessons.md`, "Receiving /send"):
Synapse and Dendrite stage received PDUs durably and answer before the slow
part (authorisation, fetching missing events), and a background drain per
room does the rest, surviving restarts.

So a transaction's PDUs and its answer are written here in ONE batch before
the 200: a `kill -9` after the answer loses nothing, and a retry after a
crash before it is processed as new. Each queued PDU is deleted in the batch
that persists it (`delete`), so it is handled exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, join_key, u64
from ..clock import Clock, now_ms
from ..globals import Globals

TREES = ("roomid_inboundpdu", "origintxnid_response")

ANSWER_KEPT_MS = 24 * 3600 * 1000
"""How long a transaction's answer is kept for retries (Synapse: a day)."""


@dataclass(frozen=True, slots=True)
class QueuedPdu:
    """A received PDU waiting for the room's worker: format, signatures and hash checked."""

    key: bytes
    origin: str
    room_version: str
    event: dict[str, Any]
    """The event as checked: with `event_id`, redacted if its content hash failed."""


class InboundQueue:
    def __init__(self, db: Database, globals_: Globals, clock: Clock = now_ms) -> None:
        self._db = db
        self._globals = globals_
        self._clock = clock
        self._queue = db.tree("roomid_inboundpdu")
        self._answers = db.tree("origintxnid_response")

    # ---- transactions

    def answer(self, origin: str, txn_id: str) -> dict[str, Any] | None:
        """The answer already given to this transaction (None: not seen, or forgotten)."""
        stored = self._answers.get(join_key(origin, txn_id))
        return json.loads(stored)["answer"] if stored is not None else None

    def enqueue(
        self,
        origin: str,
        txn_id: str,
        pdus: list[tuple[str, dict[str, Any]]],
        answer: Mapping[str, Any],
    ) -> None:
        """Queue `(room version, checked event)` pairs and the answer, in one atomic batch."""
        with self._db.batch() as batch:
            for room_version, event in pdus:
                key = join_key(event["room_id"], u64(self._globals.next_count()))
                record = {"origin": origin, "room_version": room_version, "event": event}
                batch.put(self._queue, key, json.dumps(record).encode())
            record = {"ts": self._clock(), "answer": answer}
            batch.put(self._answers, join_key(origin, txn_id), json.dumps(record).encode())

    def purge_expired(self) -> None:
        """Forget answers older than `ANSWER_KEPT_MS` (a periodic cleanup task)."""
        oldest = self._clock() - ANSWER_KEPT_MS
        expired = [
            key for key, value in self._answers.iter_prefix(b"") if json.loads(value)["ts"] < oldest
        ]
        if expired:
            with self._db.batch() as batch:
                for key in expired:
                    batch.delete(self._answers, key)

    # ---- the worker's side

    def rooms_with_work(self) -> list[str]:
        """Every room with queued PDUs."""
        rooms: list[str] = []
        for key in self._queue.keys_with_prefix(b""):
            room_id = key[: -len(SEPARATOR) - 8].decode()
            if not rooms or rooms[-1] != room_id:
                rooms.append(room_id)
        return rooms

    def first(self, room_id: str) -> QueuedPdu | None:
        """The room's oldest queued PDU."""
        for key, value in self._queue.iter_prefix(join_key(room_id, b"")):
            record = json.loads(value)
            return QueuedPdu(key, record["origin"], record["room_version"], record["event"])
        return None

    def delete(self, queued: QueuedPdu, batch: WriteBatch) -> None:
        """Take the PDU off the queue in `batch` (the one that persists it, or drops it)."""
        batch.delete(self._queue, queued.key)
