"""User-interactive authentication: the `auth` dict, its stages, and their sessions.

Spec: `content/client-server-api/_index.md`, "User-Interactive
Authentication API" (the 401 body with `flows`, `params`, `session`,
`completed`; stages in order; a request without `auth` never succeeds) and
"Authentication types" (`m.login.password`, `m.login.dummy`,
`m.login.registration_token`).

A session belongs to the request that started it: the same method and path
(a session completed to delete device A cannot delete device B) and the same
authenticated user. It lives `SESSION_LIFETIME_MS`, and authorises exactly one
request: it is deleted once a flow is complete. Expired sessions are purged
when a new one starts, at most once a minute. An `auth` dict with a stage but no session starts
a session and attempts the stage at once (what matrix-nio's `register` does).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import MatrixError, bad_json
from ..storage import Database
from .clock import Clock, now_ms
from .registration import Registration
from .registration_tokens import RegistrationTokens
from .users import Users

TREES = ("sessionid_uiaainfo",)

SESSION_LIFETIME_MS = 30 * 60 * 1000
PURGE_INTERVAL_MS = 60 * 1000
"""Expired sessions are looked for at most this often (each look reads every session)."""

PASSWORD = "m.login.password"
DUMMY = "m.login.dummy"
REGISTRATION_TOKEN = "m.login.registration_token"

PASSWORD_FLOWS = ((PASSWORD,),)
"""The flows of endpoints that ask the user to confirm with their password."""

Flows = Sequence[Sequence[str]]


class AuthenticationRequired(MatrixError):
    """HTTP 401 with the UIA body; `errcode`/`error` only when an attempt failed."""

    def __init__(
        self,
        flows: Flows,
        session_id: str,
        completed: Sequence[str],
        failure: MatrixError | None = None,
    ) -> None:
        errcode = failure.errcode if failure else "M_FORBIDDEN"
        message = failure.message if failure else "Additional authentication is required."
        super().__init__(401, errcode, message)
        self.failure = failure
        self.flows = [list(flow) for flow in flows]
        self.session_id = session_id
        self.completed = list(completed)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.failure is not None:
            body = {"errcode": self.errcode, "error": self.message}
        body["flows"] = [{"stages": flow} for flow in self.flows]
        body["params"] = {}
        body["session"] = self.session_id
        if self.completed:
            body["completed"] = self.completed
        return body


@dataclass
class _Session:
    endpoint: str
    user_id: str | None
    expires_ts: int
    completed: list[str] = field(default_factory=list)
    proven_user_id: str | None = None


class UserInteractiveAuth:
    def __init__(
        self, db: Database, users: Users, registration: Registration, *, clock: Clock = now_ms
    ) -> None:
        self._sessions = db.tree("sessionid_uiaainfo")
        self._users = users
        self._registration = registration
        self.clock = clock
        self._next_purge_ts = 0
        self.registration_tokens: RegistrationTokens | None = None
        """Set by the wiring: the tokens an admin manages, valid at the token stage beside
        the configured one; passing the stage holds one of the token's uses for the
        session (`registration_tokens.py`)."""

    async def authenticate(
        self, auth: object, *, flows: Flows, endpoint: str, user_id: str | None
    ) -> str | None:
        """Run the request's `auth` through `flows`; return who is authenticated.

        `endpoint` is the request's method and path, `user_id` its
        authenticated user (None for `/register` and for password changes
        without an access token). The result is `user_id`, or the user an
        `m.login.password` stage proved when there was none. Until a flow is
        complete this raises `AuthenticationRequired` (401).
        """
        if auth is None:
            auth = {}
        if not isinstance(auth, dict):
            raise bad_json("`auth` must be an object.")
        session_id = auth.get("session")
        stage = auth.get("type")
        if session_id is None:
            session_id, session = self._start(endpoint, user_id)
            if stage is None:
                self._save(session_id, session)
                raise AuthenticationRequired(flows, session_id, [])
        else:
            session = self._load(session_id, endpoint, user_id, flows)
        if stage is not None and stage not in session.completed:
            failure = await self._attempt(stage, auth, session_id, session, flows)
            if failure is not None:
                self._save(session_id, session)
                raise AuthenticationRequired(flows, session_id, session.completed, failure)
            session.completed.append(stage)
        if any(list(flow) == session.completed for flow in flows):
            self._sessions.delete(session_id.encode())
            return session.user_id or session.proven_user_id
        self._save(session_id, session)
        raise AuthenticationRequired(flows, session_id, session.completed)

    def purge_expired(self) -> None:
        """Delete expired sessions (the periodic cleanup; also when sessions start)."""
        now = self.clock()
        self._next_purge_ts = now + PURGE_INTERVAL_MS
        for key, value in list(self._sessions.iter_prefix()):
            if json.loads(value)["expires_ts"] <= now:
                self._sessions.delete(key)

    def _start(self, endpoint: str, user_id: str | None) -> tuple[str, _Session]:
        now = self.clock()
        if now >= self._next_purge_ts:
            self.purge_expired()
        return secrets.token_urlsafe(24), _Session(endpoint, user_id, now + SESSION_LIFETIME_MS)

    def _load(
        self, session_id: object, endpoint: str, user_id: str | None, flows: Flows
    ) -> _Session:
        stored = self._sessions.get(session_id.encode()) if isinstance(session_id, str) else None
        session = None if stored is None else _Session(**json.loads(stored))
        if session is None or session.expires_ts <= self.clock():
            new_session_id, new_session = self._start(endpoint, user_id)
            self._save(new_session_id, new_session)
            raise AuthenticationRequired(
                flows,
                new_session_id,
                [],
                MatrixError(
                    401, "M_UNKNOWN", "Unknown or expired session; start again with this one."
                ),
            )
        if session.endpoint != endpoint or session.user_id != user_id:
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                "This authentication session was started for another request.",
            )
        return session

    def _save(self, session_id: str, session: _Session) -> None:
        self._sessions.put(session_id.encode(), json.dumps(asdict(session)).encode())

    async def _attempt(
        self,
        stage: object,
        auth: dict[str, Any],
        session_id: str,
        session: _Session,
        flows: Flows,
    ) -> MatrixError | None:
        """None when `stage` succeeds; otherwise why it failed."""
        completed = [*session.completed, stage]
        if not any(list(flow[: len(completed)]) == completed for flow in flows):
            return MatrixError(
                401, "M_FORBIDDEN", f"{stage!r} is not the next stage of any offered flow."
            )
        if stage == DUMMY:
            return None
        if stage == REGISTRATION_TOKEN:
            token = auth.get("token")
            managed = self.registration_tokens
            if managed is not None and isinstance(token, str) and managed.exists(token):
                if managed.reserve(token, session_id):  # a use held for this session
                    return None
                return MatrixError(
                    401, "M_FORBIDDEN", "This registration token has expired or is used up."
                )
            if self._registration.token_is_valid(token):
                return None
            return MatrixError(401, "M_FORBIDDEN", "Invalid registration token.")
        if stage == PASSWORD:
            return await self._attempt_password(auth, session)
        return MatrixError(401, "M_UNRECOGNIZED", f"Unsupported stage {stage!r}.")

    async def _attempt_password(
        self, auth: dict[str, Any], session: _Session
    ) -> MatrixError | None:
        claimed = self._users.user_id_from_identifier(auth)
        expected = session.user_id or claimed
        if claimed is None or claimed != expected:
            return MatrixError(401, "M_FORBIDDEN", "You can only authenticate as yourself.")
        if not await self._users.check_password(claimed, auth.get("password")):
            return MatrixError(401, "M_FORBIDDEN", "Invalid password.")
        session.proven_user_id = claimed
        return None
