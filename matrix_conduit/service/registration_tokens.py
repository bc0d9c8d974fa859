"""Registration tokens an admin manages: multi-use, expiring, counted as Synapse counts them.

Spec: `content/client-server-api/_index.md`, "Token-authenticated
registration" (the `m.login.registration_token` stage), and Synapse's admin
API "Registration Tokens" (`/_synapse/admin/v1/registration_tokens`), whose
shapes and counting tools such as synapse-admin expect:

- a token has `uses_allowed` (None: unlimited), `expiry_time` (ms since the
  epoch, None: never), `pending` and `completed`;
- it is valid while it has not expired and `pending + completed <
  uses_allowed` (0 uses allowed: never valid);
- when a user-interactive auth session passes the token stage, `pending`
  goes up by one (once per session), so that someone else cannot use the
  last use meanwhile; the session is remembered with the token;
- when the registration of that session is written, `pending` goes down and
  `completed` up, in the account's batch;
- when the session expires unused, its `pending` use is given back (the
  periodic cleanup).

These tokens are valid at `/register` beside the configured
`registration_token` (`registration.py`). Trees:
- `registrationtoken_info`: token → JSON {uses_allowed, pending, completed,
  expiry_time}
- `uiaasession_registrationtoken`: UIA session id → JSON {token, expires_ts}
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from ..errors import MatrixError, invalid_param, not_found
from ..storage import Database, WriteBatch
from .clock import Clock, now_ms

TREES = ("registrationtoken_info", "uiaasession_registrationtoken")

TOKEN_ALPHABET = string.ascii_letters + string.digits + "._~-"
"""The characters of a token (Synapse's: URL-safe without escaping)."""
MAX_TOKEN_LENGTH = 64
DEFAULT_GENERATED_LENGTH = 16
SESSION_RESERVATION_MS = 30 * 60 * 1000
"""How long a session's pending use is held: the lifetime of a UIA session (`uiaa.py`)."""


@dataclass
class RegistrationToken:
    token: str
    uses_allowed: int | None
    pending: int
    completed: int
    expiry_time: int | None

    def is_valid(self, now: int) -> bool:
        if self.expiry_time is not None and self.expiry_time < now:
            return False
        return self.uses_allowed is None or self.pending + self.completed < self.uses_allowed

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "uses_allowed": self.uses_allowed,
            "pending": self.pending,
            "completed": self.completed,
            "expiry_time": self.expiry_time,
        }


_UNSET: Any = object()


class RegistrationTokens:
    def __init__(self, db: Database, *, clock: Clock = now_ms) -> None:
        self._db = db
        self._tokens = db.tree("registrationtoken_info")
        self._sessions = db.tree("uiaasession_registrationtoken")
        self.clock = clock

    # ------------------------------------------------------------ admin API

    def create(
        self,
        *,
        token: str | None = None,
        length: int = DEFAULT_GENERATED_LENGTH,
        uses_allowed: int | None = None,
        expiry_time: int | None = None,
    ) -> RegistrationToken:
        """A new token (`token`, or a random one of `length` characters).

        400 `M_INVALID_PARAM` for a malformed token or length, a negative
        `uses_allowed`, an expiry in the past, or a token that exists.
        """
        _check_uses_allowed(uses_allowed)
        self._check_expiry(expiry_time)
        if token is None:
            if not 0 < length <= MAX_TOKEN_LENGTH:
                raise invalid_param(
                    f"`length` must be greater than zero and at most {MAX_TOKEN_LENGTH}."
                )
            token = self._generated(length)
        else:
            _check_token(token)
            if self._get(token) is not None:
                raise invalid_param(f"Token already exists: {token}")
        created = RegistrationToken(token, uses_allowed, 0, 0, expiry_time)
        self._put(created)
        return created

    def all(self, *, valid: bool | None = None) -> list[RegistrationToken]:
        """Every token (`valid`: only those that are, or only those that are not)."""
        now = self.clock()
        tokens = [_from_json(key.decode(), raw) for key, raw in self._tokens.iter_prefix(b"")]
        if valid is None:
            return tokens
        return [token for token in tokens if token.is_valid(now) == valid]

    def get(self, token: str) -> RegistrationToken:
        """The token, or 404 `M_NOT_FOUND`."""
        found = self._get(token)
        if found is None:
            raise not_found(f"No such registration token: {token}")
        return found

    def update(
        self, token: str, *, uses_allowed: Any = _UNSET, expiry_time: Any = _UNSET
    ) -> RegistrationToken:
        """Change what is given (None: unlimited, never); the counts stay."""
        found = self.get(token)
        if uses_allowed is not _UNSET:
            _check_uses_allowed(uses_allowed)
            found.uses_allowed = uses_allowed
        if expiry_time is not _UNSET:
            self._check_expiry(expiry_time)
            found.expiry_time = expiry_time
        self._put(found)
        return found

    def delete(self, token: str) -> None:
        self.get(token)
        self._tokens.delete(token.encode())

    # ------------------------------------------------------------ registration

    def is_valid(self, token: str) -> bool:
        found = self._get(token)
        return found is not None and found.is_valid(self.clock())

    def exists(self, token: str) -> bool:
        return self._get(token) is not None

    def reserve(self, token: str, session_id: str) -> bool:
        """The UIA token stage of `session_id`: whether `token` is valid; a use is held.

        A session that already holds a use of this token holds no second one.
        """
        held = self._sessions.get(session_id.encode())
        if held is not None and json.loads(held)["token"] == token:
            return True
        found = self._get(token)
        now = self.clock()
        if found is None or not found.is_valid(now):
            return False
        found.pending += 1
        reservation = {"token": token, "expires_ts": now + SESSION_RESERVATION_MS}
        with self._db.batch() as batch:
            batch.put(self._tokens, token.encode(), _to_json(found))
            batch.put(self._sessions, session_id.encode(), json.dumps(reservation).encode())
        return True

    def complete(self, session_id: str | None, batch: WriteBatch) -> None:
        """Queue in the new account's `batch`: the session's held use is completed."""
        if session_id is None:
            return
        held = self._sessions.get(session_id.encode())
        if held is None:
            return
        found = self._get(json.loads(held)["token"])
        batch.delete(self._sessions, session_id.encode())
        if found is not None:  # deleted meanwhile: nothing to count
            found.pending = max(0, found.pending - 1)
            found.completed += 1
            batch.put(self._tokens, found.token.encode(), _to_json(found))

    def purge_expired(self) -> None:
        """Give back the uses held by sessions that expired without registering."""
        now = self.clock()
        for key, raw in list(self._sessions.iter_prefix(b"")):
            reservation = json.loads(raw)
            if reservation["expires_ts"] > now:
                continue
            with self._db.batch() as batch:
                batch.delete(self._sessions, key)
                found = self._get(reservation["token"])
                if found is not None:
                    found.pending = max(0, found.pending - 1)
                    batch.put(self._tokens, found.token.encode(), _to_json(found))

    # ------------------------------------------------------------ helpers

    def _get(self, token: str) -> RegistrationToken | None:
        raw = self._tokens.get(token.encode())
        return None if raw is None else _from_json(token, raw)

    def _put(self, token: RegistrationToken) -> None:
        self._tokens.put(token.token.encode(), _to_json(token))

    def _generated(self, length: int) -> str:
        while True:
            token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))
            if self._get(token) is None:
                return token

    def _check_expiry(self, expiry_time: object) -> None:
        if expiry_time is None:
            return
        if type(expiry_time) is not int:
            raise invalid_param("`expiry_time` must be an integer or null.")
        if expiry_time < self.clock():
            raise invalid_param("`expiry_time` must not be in the past.")


def _check_uses_allowed(uses_allowed: object) -> None:
    if uses_allowed is None:
        return
    if type(uses_allowed) is not int or uses_allowed < 0:
        raise invalid_param("`uses_allowed` must be a non-negative integer or null.")


def _check_token(token: object) -> None:
    if not isinstance(token, str):
        raise invalid_param("`token` must be a string.")
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise invalid_param(
            f"`token` must not be empty and must not be longer than {MAX_TOKEN_LENGTH} characters."
        )
    if not set(token) <= set(TOKEN_ALPHABET):
        raise MatrixError(
            400,
            "M_INVALID_PARAM",
            "`token` may only have the characters A-Z, a-z, 0-9 and '.', '_', '~', '-'.",
        )


def _from_json(token: str, raw: bytes) -> RegistrationToken:
    stored = json.loads(raw)
    return RegistrationToken(
        token,
        stored["uses_allowed"],
        stored["pending"],
        stored["completed"],
        stored["expiry_time"],
    )


def _to_json(token: RegistrationToken) -> bytes:
    stored = token.to_json()
    del stored["token"]
    return json.dumps(stored).encode()
