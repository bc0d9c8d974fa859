"""Server-wide facts kept in the database: its server name, the global counter.

The counter (DESIGN.md, "one counter for sync") orders everything `/sync`
delivers: events, account data, receipts, to-device messages, key changes.
Each new value is written before it is handed out, so a restart never hands
out a value twice.

The server's ed25519 signing key is generated on first start and kept here:
every event and federation request this server sends is signed with it.

The server name is recorded when the database is created: user ids, room ids
and signatures all contain it, so a database made for one name must never be
served under another.
"""

from __future__ import annotations

from nacl.signing import SigningKey

from ..core.signing import decode_signing_key, encode_signing_key, generate_signing_key, key_id_of
from ..storage import Database, DatabaseError
from ..storage.kv import from_u64, u64

TREES = ("global",)

_SERVER_NAME = b"server_name"
_COUNTER = b"counter"
_SIGNING_KEY = b"signing_key"


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
    def __init__(self, db: Database, server_name: str) -> None:
        self._tree = db.tree("global")
        self.server_name = server_name
        self._claim_server_name(db.path)
        stored = self._tree.get(_COUNTER)
        self._counter = from_u64(stored) if stored else 0
        self.signing_key = self._load_or_create_signing_key()
        self.signing_key_id = key_id_of(self.signing_key)

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

    def next_count(self) -> int:
        """A new position on the global counter, already persisted.

        Whoever takes a position must write what it orders in the same
        synchronous stretch of code (no `await` in between): `/sync` treats
        every position up to `current_count()` as written.
        """
        self._counter += 1
        self._tree.put(_COUNTER, u64(self._counter))
        return self._counter

    def current_count(self) -> int:
        """The last position handed out."""
        return self._counter
