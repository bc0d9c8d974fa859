"""Client transaction ids: the same request sent twice does its work once.

Spec: `content/client-server-api/_index.md`, "Transaction identifiers": a
`txnId` is scoped to the access token's device and to the request's path, so
the same txnId used for a message in one room and a message in another (or
for a redaction) names two different requests. Repeating a request with the
same txnId and path returns the first result. Stored, so a retry after a
restart is still recognised.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..storage import Database, WriteBatch
from ..storage.kv import join_key

TREES = ("userdevicetxnid_response", "eventid_txnid")


class TransactionIds:
    def __init__(self, db: Database) -> None:
        self._responses = db.tree("userdevicetxnid_response")
        self._event_txn = db.tree("eventid_txnid")

    @staticmethod
    def _key(user_id: str, device_id: str | None, txn_id: str, path: Sequence[str]) -> bytes:
        return join_key(user_id, device_id or "", txn_id, *path)

    def existing(
        self, user_id: str, device_id: str | None, txn_id: str, path: Sequence[str]
    ) -> bytes | None:
        """What the first request with this txnId on this `path` answered (its event id).

        `path` is what identifies the endpoint and its path parameters (room
        id, event type, redacted event id...).
        """
        return self._responses.get(self._key(user_id, device_id, txn_id, path))

    def record_event(
        self,
        event_id: str,
        user_id: str,
        device_id: str | None,
        txn_id: str,
        path: Sequence[str],
        batch: WriteBatch,
    ) -> None:
        """Record the event a txnId produced, in the batch that stores the event.

        Also remembers which device sent it, so that device's sync shows
        `unsigned.transaction_id`.
        """
        batch.put(self._responses, self._key(user_id, device_id, txn_id, path), event_id.encode())
        batch.put(self._event_txn, event_id.encode(), join_key(user_id, device_id or "", txn_id))

    def transaction_id_for(self, event_id: str, user_id: str, device_id: str | None) -> str | None:
        """The txnId of `event_id` if this very device sent it."""
        stored = self._event_txn.get(event_id.encode())
        if stored is None:
            return None
        prefix = join_key(user_id, device_id or "", b"")
        return stored[len(prefix) :].decode() if stored.startswith(prefix) else None
