"""Server-wide facts kept in the database: its server name, the global counter.

The counter (DESIGN.md, "one counter for sync") orders everything `/sync`
delivers: events, account data, receipts, to-device messages, key changes.
Each new value is written before it is handed out, so a restart never hands
out a value twice.

The server's ed25519 signing key is generated on first start and kept here:
every event and federation request this server sends is signed with it. A
rotated key is kept too (with the time it stopped being used): other servers
still verify old events against it, through `old_verify_keys` in
`/_matrix/key/v2/server`.

The server name is recorded when the database is created: user ids, room ids
and signatures all contain it, so a database made for one name must never be
served under another.
"""

from __future__ import annotations

import json

from nacl.signing import SigningKey

from ..core.ids import is_on_server
from ..core.signing import (
    decode_signing_key,
    encode_signing_key,
    generate_signing_key,
    key_id_of,
    verify_key_base64,
)
from ..storage import Database, DatabaseError
from ..storage.kv import from_u64, u64
from .cluster import Cluster

TREES = ("global",)

_SERVER_NAME = b"server_name"
_COUNTER = b"counter"
_SIGNING_KEY = b"signing_key"
_OLD_VERIFY_KEYS = b"old_verify_keys"


class WrongServerName(DatabaseError):
    def __init__(self, path: str, recorded: str, configured: str) -> None:
        super().__init__(
            f"the database at {path} was created for server_name {recorded!r}, but the "
            f"configuration says {configured!r}. Every user id, room and signature in it "
            f"belongs to {recorded!r}, so it cannot be served under another name. Set "
            f'server_name = "{recorded}" again, or point database_path at a new directory '
            "to start a new server."
        )


class Globals:
    def __init__(self, db: Database, server_name: str, cluster: Cluster | None = None) -> None:
        self._db = db
        self._tree = db.tree("global")
        self.server_name = server_name
        self._claim_server_name(db.path)
        self._counter = self.stored_counter(db)
        self._cluster = cluster if cluster is not None and cluster.shared else None
        """Several processes on this database: positions and the mark are theirs."""
        self.cluster = self._cluster
        """The other processes of this database (None when alone): what services that
        keep things in memory tell of their changes (`coherence.Invalidations`)."""
        self.signing_key = self._load_or_create_signing_key()
        self.signing_key_id = key_id_of(self.signing_key)
        stored_old = self._tree.get(_OLD_VERIFY_KEYS)
        self.old_verify_keys: dict[str, dict[str, object]] = (
            json.loads(stored_old) if stored_old else {}
        )
        """Rotated-out keys: key id → `{"key": base64, "expired_ts": ms}` (spec's shape)."""

    @staticmethod
    def stored_counter(db: Database) -> int:
        """The counter as this database's `global` tree holds it (0 when new)."""
        stored = db.tree("global").get(_COUNTER)
        return from_u64(stored) if stored else 0

    @staticmethod
    def store_shared_counter(db: Database) -> None:
        """Write the counter of several processes (PostgreSQL's sequence) into the
        `global` tree, where every backend finds it: before a copy to another
        backend, which would otherwise hand out positions already used."""
        stored = Globals.stored_counter(db)
        link = db.cluster_link(stored)
        if link is None:
            return
        try:
            shared = link.last_position()
        finally:
            link.close()
        if shared > stored:
            db.tree("global").put(_COUNTER, u64(shared))

    def is_ours(self, identifier: str) -> bool:
        """Whether a user id, room alias, room or event id, or server name is this server's."""
        return is_on_server(identifier, self.server_name)

    def _claim_server_name(self, path: str) -> None:
        recorded = self._tree.get(_SERVER_NAME)
        if recorded is None:
            self._tree.put(_SERVER_NAME, self.server_name.encode())
        elif recorded.decode() != self.server_name:
            raise WrongServerName(path, recorded.decode(), self.server_name)

    def _load_or_create_signing_key(self) -> SigningKey:
        stored = self._tree.get(_SIGNING_KEY)
        if stored is not None:
            return decode_signing_key(stored.decode())
        key = generate_signing_key()
        self._tree.put(_SIGNING_KEY, encode_signing_key(key).encode())
        return key

    def rotate_signing_key(self, now_ms: int) -> None:
        """Sign with a new key from now on; the current one becomes an old verify key.

        The new key and the old key's public half (with `expired_ts`) are
        written in one batch: no crash can lose a key anyone has seen.
        """
        old_verify_keys = {
            **self.old_verify_keys,
            self.signing_key_id: {
                "key": verify_key_base64(self.signing_key),
                "expired_ts": now_ms,
            },
        }
        key = generate_signing_key()
        with self._db.batch() as batch:
            batch.put(self._tree, _OLD_VERIFY_KEYS, json.dumps(old_verify_keys).encode())
            batch.put(self._tree, _SIGNING_KEY, encode_signing_key(key).encode())
        self.old_verify_keys = old_verify_keys
        self.signing_key, self.signing_key_id = key, key_id_of(key)

    def next_count(self) -> int:
        """A new position on the global counter, already persisted.

        Whoever takes a position must write what it orders in the same
        synchronous stretch of code (no `await` in between): `/sync` treats
        every position up to `current_count()` as written.
        """
        if self._cluster is not None:
            return self._cluster.take_position()
        self._counter += 1
        self._tree.put(_COUNTER, u64(self._counter))
        return self._counter

    def current_count(self) -> int:
        """The last position handed out (with other processes: the committed mark,
        so that nothing at or below it can still appear)."""
        if self._cluster is not None:
            return self._cluster.mark
        return self._counter
