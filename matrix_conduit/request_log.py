"""The request log: one line per request at `info`, 5xx at `error` (a peer's 502/504 at `warning`).

What an admin needs to see what the server is doing and to answer "who did
this": method, path, status, duration, the user (or the signing server of a
federation request) and the client's address (`api.rate_limits.client_address`,
which believes `X-Forwarded-For` only from `trusted_proxies`). Never
secrets: request bodies (passwords, keys) are not logged at all, and in
the query string the values of `access_token` and the other parameters that
carry credentials are replaced by `<redacted>`. Tracebacks of unexpected
exceptions are logged by the app's error handler (`app.py`), the line here
says which request it was.

The line costs one clock read when `info` is off for this logger.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, quote

from quart import Quart, Response, g, request

from .api.rate_limits import client_address
from .errors import log_level_for

log = logging.getLogger(__name__)

SECRET_PARAMETERS = frozenset(
    {
        "access_token",
        "token",
        "login_token",
        "loginToken",
        "refresh_token",
        "password",
        "client_secret",
        "session",
        "sid",
        "secret",
    }
)
"""Query parameters whose values are credentials (the registration token's
`validity?token=`, SSO's `loginToken`, UIA fallback's `session`...)."""

REDACTED = "<redacted>"
LINE = "%s %s %d %.1fms user=%s client=%s"


def redacted_query(query: bytes) -> str:
    """The query string with the value of every secret parameter replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return "&".join(
        f"{quote(name, safe='')}={REDACTED if name in SECRET_PARAMETERS else quote(value, safe='')}"
        for name, value in pairs
    )


def _target() -> str:
    raw_path = request.scope.get("raw_path") or request.path.encode()
    query = redacted_query(request.scope.get("query_string") or b"")
    path = raw_path.decode("latin-1")
    return f"{path}?{query}" if query else path


def _who() -> str:
    return g.get("user_id") or g.get("federation_origin") or "-"


def install_request_log(app: Quart) -> None:
    """Time every request and log it when it is answered."""

    @app.before_request
    async def start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    async def log_request(response: Response) -> Response:
        level = log_level_for(response.status_code)
        if log.isEnabledFor(level):
            started = g.get("request_started")
            duration_ms = 0.0 if started is None else (time.perf_counter() - started) * 1000
            arguments = (
                request.method,
                _target(),
                response.status_code,
                duration_ms,
                _who(),
                client_address(),
            )
            # The record is made here: `log.log` would walk the stack for the caller's
            # file and line, the same for every line, a fifth of the line's cost.
            log.handle(log.makeRecord(log.name, level, __file__, 0, LINE, arguments, None))
        return response
