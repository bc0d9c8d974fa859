"""Who sent an incoming federation request: the `X-Matrix` signature, checked.

Spec: `content/server-server-api.md` § Request Authentication. The request
must be addressed to us (`destination`), and the origin's key named in the
header must verify the signature over method, URI, origin, destination and
body; otherwise 401 `M_UNAUTHORIZED` with the reason. A request that passes
is also proof that its origin is up: its backoff is cleared here.

One origin may have at most `max_in_progress_per_origin` requests in
progress here at once (`admit` when its signature holds, `release` when it is
answered); beyond that 429 `M_LIMIT_EXCEEDED` with `retry_after_ms` (spec §
Rate limiting, the client-server API's shape, which servers honour too), so a
flooding peer cannot hold every worker of the server.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...core.errors import SignatureError
from ...core.signing import XMatrixAuth, parse_x_matrix_header, verify_request
from ...errors import MatrixError
from ..clock import Clock, now_ms
from ..globals import Globals
from .destinations import Destinations
from .key_ring import KeyRing

MAX_SIGNATURES = 4
"""X-Matrix headers one request may carry (one per key; each may cost a key fetch)."""
DEFAULT_MAX_IN_PROGRESS_PER_ORIGIN = 50
RETRY_AFTER_MS = 1000


def _unauthorized(message: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", message)


class RequestAuth:
    def __init__(
        self,
        globals_: Globals,
        key_ring: KeyRing,
        destinations: Destinations,
        clock: Clock = now_ms,
        *,
        max_in_progress_per_origin: int = DEFAULT_MAX_IN_PROGRESS_PER_ORIGIN,
    ) -> None:
        self._globals = globals_
        self._key_ring = key_ring
        self._destinations = destinations
        self._clock = clock
        self._max_in_progress = max_in_progress_per_origin
        self._in_progress: dict[str, int] = {}
        """Origin → its requests being handled now (no entry: none)."""

    def admit(self, origin: str) -> None:
        """Count one more request of `origin` in progress, or 429 if it has too many."""
        count = self._in_progress.get(origin, 0)
        if count >= self._max_in_progress:
            raise MatrixError(
                429,
                "M_LIMIT_EXCEEDED",
                f"{origin} has {count} requests in progress here; at most "
                f"{self._max_in_progress} at once.",
                retry_after_ms=RETRY_AFTER_MS,
            )
        self._in_progress[origin] = count + 1

    def release(self, origin: str) -> None:
        """One request `admit` counted is answered."""
        count = self._in_progress.get(origin, 0) - 1
        if count > 0:
            self._in_progress[origin] = count
        else:
            self._in_progress.pop(origin, None)

    def in_progress(self, origin: str) -> int:
        """How many of `origin`'s requests are being handled now."""
        return self._in_progress.get(origin, 0)

    async def origin_of(
        self, authorizations: Sequence[str], method: str, uri: str, content: object | None
    ) -> str:
        """The server that signed this request, or 401 saying what is wrong.

        `authorizations` are the request's `Authorization` header values; each
        `X-Matrix` one must verify, and all must name the same origin. `uri`
        is the path and query exactly as received; `content` the parsed JSON
        body or None.
        """
        headers = [value for value in authorizations if value[:8].lower() == "x-matrix"]
        if not headers:
            raise _unauthorized("Missing Authorization: X-Matrix header (server signature).")
        if len(headers) > MAX_SIGNATURES:
            raise _unauthorized(f"More than {MAX_SIGNATURES} X-Matrix Authorization headers.")
        try:
            auths = [parse_x_matrix_header(value) for value in headers]
        except SignatureError as error:
            raise _unauthorized(f"Invalid X-Matrix Authorization header: {error}") from None
        origin = auths[0].origin
        if any(auth.origin != origin for auth in auths):
            raise _unauthorized("X-Matrix headers name different origins.")
        if origin == self._globals.server_name:
            raise _unauthorized(f"X-Matrix origin {origin} is this server itself.")
        for auth in auths:
            await self._verify(auth, method, uri, content)
        self._destinations.record_success(origin)
        return origin

    async def _verify(self, auth: XMatrixAuth, method: str, uri: str, content: object) -> None:
        server_name = self._globals.server_name
        if auth.destination is not None and auth.destination != server_name:
            raise _unauthorized(
                f"X-Matrix destination is {auth.destination}, but this server is {server_name}."
            )
        keys = await self._key_ring.verify_keys_for(auth.origin, [auth.key_id], self._clock())
        verify_key = keys.get(auth.key_id)
        if verify_key is None:
            raise _unauthorized(
                f"Unknown key {auth.key_id} of {auth.origin}: it could not be fetched, "
                "or it is not valid now."
            )
        try:
            verify_request(auth, method, uri, server_name, content, verify_key)
        except SignatureError as error:
            raise _unauthorized(
                f"X-Matrix signature of {auth.origin} is invalid: {error}."
            ) from None
