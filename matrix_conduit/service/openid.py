"""OpenID tokens: let a third party learn who a user is (`/openid/request_token`).

Spec: `content/client-server-api/modules/openid.md`,
`data/api/client-server/openid.yaml`, and the server-server
`/_matrix/federation/v1/openid/userinfo`, which the third party calls with
the token. Tokens are random, stored hashed, and expire after an hour.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable

from ..storage import Database

TREES = ("openidtoken_expiresatuserid",)

TOKEN_LIFETIME_SECONDS = 3600


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class OpenId:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._tokens = db.tree("openidtoken_expiresatuserid")
        self._clock = clock

    def create_token(self, user_id: str) -> tuple[str, int]:
        """A new token for `user_id` and its lifetime in seconds."""
        token = secrets.token_urlsafe(32)
        expires_at = self._clock() + TOKEN_LIFETIME_SECONDS
        record = json.dumps({"user_id": user_id, "expires_at": expires_at})
        self._tokens.put(_key(token), record.encode())
        return token, TOKEN_LIFETIME_SECONDS

    def purge_expired(self) -> None:
        """Delete expired tokens (the periodic cleanup)."""
        now = self._clock()
        for key, value in list(self._tokens.iter_prefix()):
            if json.loads(value)["expires_at"] < now:
                self._tokens.delete(key)

    def user_for(self, token: str) -> str | None:
        stored = self._tokens.get(_key(token))
        if stored is None:
            return None
        record = json.loads(stored)
        if record["expires_at"] < self._clock():
            self._tokens.delete(_key(token))
            return None
        return record["user_id"]
