"""Requests to other servers: discovered, signed, limited, and backed off when they fail.

Spec: `content/server-server-api.md` § Request Authentication (every request
carries `Authorization: X-Matrix` signed with our key over method, URI,
origin, destination and body), § Resolving server names (`ServerDiscovery`),
§ TLS (certificates verified against the system's CAs, `SSL_CERT_FILE`
honoured; see `OutgoingHttp.fetch`).

`request` is the one verb. It refuses before any I/O when federation is
disabled, when the destination is this server, or while the destination is
backed off (`Destinations`); it counts as failures only what says the server
is down (no connection, timeout, 5xx) and resets the backoff on any answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx

from ... import __version__
from ...config import Config
from ...core.canonical_json import decode_json, encode_canonical_json
from ...core.errors import CanonicalJsonError
from ...core.ids import InvalidIdentifier, parse_server_name
from ...core.signing import sign_request
from ..globals import Globals
from ..outgoing_http import HttpAnswer
from .connector import Connector
from .destinations import Destinations
from .discovery import ServerDiscovery
from .errors import (
    AnswerTooLarge,
    DestinationForbidden,
    FederationDisabled,
    NotReadyForRetry,
    RemoteError,
    Unreachable,
)

DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_TIMEOUT_SECONDS = 600.0
"""No request waits longer, whatever its caller asks: a peer that never answers costs
at most this much of one task."""
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""What any answer may hold unless it carries a room's whole state (`/state_ids` of the
biggest public rooms, ~200k ids, fits in it)."""
ROOM_STATE_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
"""`send_join` (and `/state`) answers: 49 MB and 106 MB are on record for big rooms."""
ROOM_STATE_PATHS = (
    "/_matrix/federation/v1/send_join/",
    "/_matrix/federation/v2/send_join/",
    "/_matrix/federation/v1/state/",
)
USER_AGENT = f"matrix-conduit/{__version__}"

Query = Mapping[str, str | int | Sequence[str]]


class FederationClient:
    def __init__(
        self,
        config: Config,
        globals_: Globals,
        discovery: ServerDiscovery,
        connector: Connector,
        destinations: Destinations,
    ) -> None:
        self._enabled = config.allow_federation
        self._globals = globals_
        self._discovery = discovery
        self._connector = connector
        self._destinations = destinations

    async def request(
        self,
        destination: str,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes: int | None = None,
        ignore_backoff: bool = False,
    ) -> Any:
        """Send a signed request to `destination` and return its JSON answer.

        `path` is already percent-encoded (`/_matrix/federation/v1/...`);
        `query` values are encoded here (sequences repeat the name). Raises a
        `FederationError`: `FederationDisabled`, `DestinationForbidden`,
        `NotReadyForRetry` (unless `ignore_backoff`), `Unreachable` (also for an
        answer larger than `max_bytes`, by default `DEFAULT_MAX_RESPONSE_BYTES`, or
        `ROOM_STATE_MAX_RESPONSE_BYTES` for the answers that carry a room's state:
        it is not read further), or `RemoteError` for a non-2xx answer. The whole
        exchange takes at most `timeout` seconds (capped at `MAX_TIMEOUT_SECONDS`).
        """
        if max_bytes is None:
            max_bytes = (
                ROOM_STATE_MAX_RESPONSE_BYTES
                if path.startswith(ROOM_STATE_PATHS)
                else DEFAULT_MAX_RESPONSE_BYTES
            )
        answer = await self.request_raw(
            destination,
            method,
            path,
            query=query,
            body=body,
            timeout=timeout,
            max_bytes=max_bytes,
            ignore_backoff=ignore_backoff,
        )
        try:
            parsed = decode_json(answer.body) if answer.body else None
        except CanonicalJsonError as error:
            if 200 <= answer.status < 300:
                raise Unreachable(destination, f"the answer is not JSON: {error}") from None
            parsed = None
        if not 200 <= answer.status < 300:
            raise remote_error(destination, answer.status, parsed)
        return parsed

    async def request_raw(
        self,
        destination: str,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ignore_backoff: bool = False,
        accept: str = "application/json",
    ) -> HttpAnswer:
        """`request`, with the answer as it came: any status, its headers and bytes.

        For answers that are not JSON (media). Raises the same
        `FederationError`s as `request`, except `RemoteError`. An answer
        larger than `max_bytes` raises `AnswerTooLarge` and does not count
        against the destination (it is up; the caller's limit refused it).
        """
        if not self._enabled:
            raise FederationDisabled(destination)
        self._check_destination(destination)
        timeout = min(timeout, MAX_TIMEOUT_SECONDS)
        retry_at = self._destinations.retry_at_ms(destination)
        if retry_at is not None and not ignore_backoff:
            raise NotReadyForRetry(destination, retry_at)
        # Signed exactly as httpx will send it (it percent-encodes what needs it).
        uri = httpx.URL(path + (f"?{urlencode(query, doseq=True)}" if query else "")).raw_path
        uri = uri.decode("ascii")
        content = encode_canonical_json(body) if body is not None else None
        origin = self._globals.server_name
        headers = {
            "Authorization": sign_request(
                method, uri, origin, destination, body, self._globals.signing_key
            ),
            "User-Agent": USER_AGENT,
            "Accept": accept,
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            target = await self._discovery.resolve(destination)
            answer = await self._connector.fetch(
                destination,
                target,
                method,
                uri,
                headers=headers,
                content=content,
                timeout=timeout,
                max_bytes=max_bytes,
            )
        except AnswerTooLarge:
            raise
        except Unreachable:
            self._destinations.record_failure(destination)
            raise
        if answer.status >= 500:
            self._destinations.record_failure(destination)
        else:
            self._destinations.record_success(destination)
        return answer

    def _check_destination(self, destination: str) -> None:
        if destination == self._globals.server_name:
            raise DestinationForbidden(destination, "is this server")
        try:
            parse_server_name(destination)
        except InvalidIdentifier as error:
            raise DestinationForbidden(destination, str(error)) from None


def remote_error(destination: str, status: int, parsed: Any) -> RemoteError:
    """The `RemoteError` of a non-2xx answer whose body was `parsed` (JSON, or None)."""
    errcode, message = "M_UNKNOWN", f"HTTP {status}"
    if isinstance(parsed, dict):
        errcode = str(parsed.get("errcode", errcode))[:100]
        message = str(parsed.get("error", message))[:500]
    return RemoteError(destination, status, errcode, message)
