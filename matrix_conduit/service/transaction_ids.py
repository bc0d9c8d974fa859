"""Client transaction ids: the same request sent twice does its work once.

Spec: `content/client-server-api/_index.md`, "Transaction identifiers": a
`txnId` is scoped to the access token's device; repeating a request with the
same `txnId` returns the first result. Stored, so a retry after a restart is
still recognised.
"""

from __future__ import annotations

from ..storage import Database, WriteBatch
from ..storage.kv import join_key

TREES = ("userdevicetxnid_response", "eventid_txnid")


class TransactionIds:
    def __init__(self, db: Database) -> None:
        self._responses = db.tree("userdevicetxnid_response")
        self._event_txn = db.tree("eventid_txnid")

    @staticmethod
    def _key(user_id: str, device_id: str | None, txn_id: str) -> bytes:
        return join_key(user_id, device_id or "", txn_id)

    def existing(self, user_id: str, device_id: str | None, txn_id: str) -> bytes | None:
        """What the first request with this txnId answered (e.g. its event id)."""
        return self._responses.get(self._key(user_id, device_id, txn_id))

    def record(
        self,
        user_id: str,
        device_id: str | None,
        txn_id: str,
        response: bytes,
        batch: WriteBatch | None = None,
    ) -> None:
        key = self._key(user_id, device_id, txn_id)
        if batch is None:
            self._responses.put(key, response)
        else:
            batch.put(self._responses, key, response)

    def record_event(
        self,
        event_id: str,
        user_id: str,
        device_id: str | None,
        txn_id: str,
        batch: WriteBatch,
    ) -> None:
        """Record the event a txnId produced, in the batch that stores the event.

        Also remembers which device sent it, so that device's sync shows
        `unsigned.transaction_id`.
        """
        key = self._key(user_id, device_id, txn_id)
        batch.put(self._responses, key, event_id.encode())
        batch.put(self._event_txn, event_id.encode(), key)

    def transaction_id_for(self, event_id: str, user_id: str, device_id: str | None) -> str | None:
        """The txnId of `event_id` if this very device sent it."""
        stored = self._event_txn.get(event_id.encode())
        if stored is None:
            return None
        prefix = join_key(user_id, device_id or "", b"")
        return stored[len(prefix) :].decode() if stored.startswith(prefix) else None
