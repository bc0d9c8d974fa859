"""Server discovery: from a server name to the address, `Host` header and certificate name.

Spec: `content/server-server-api.md` § Resolving server names, steps 1–6 in
that order (IP literal; explicit port; `/.well-known/matrix/server` and its
five sub-steps; SRV `_matrix-fed._tcp`; deprecated SRV `_matrix._tcp`;
port 8448), and § `GET /.well-known/matrix/server`.

`.well-known` answers are cached as the spec recommends: for as long as
their `Cache-Control`/`Expires` say, 24 hours when they say nothing, never
more than 48 hours (nor less than 5 minutes, so a `no-cache` answer cannot
make every request fetch it again). Failures are cached for 2 minutes at
first, doubling with each further failure up to an hour.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ...core.digits import parse_decimal
from ...core.ids import InvalidIdentifier, parse_server_name
from ...lru import LRUCache
from ..clock import Clock, now_ms
from .connector import Connector, ResolvedServer, ip_literal
from .errors import FederationError
from .resolver import Resolver

DEFAULT_PORT = 8448
WELL_KNOWN_PATH = "/.well-known/matrix/server"
WELL_KNOWN_DEFAULT_SECONDS = 24 * 3600
WELL_KNOWN_MAX_SECONDS = 48 * 3600
WELL_KNOWN_MIN_SECONDS = 5 * 60
WELL_KNOWN_FAILURE_SECONDS = 2 * 60
WELL_KNOWN_MAX_FAILURE_SECONDS = 3600
WELL_KNOWN_TIMEOUT_SECONDS = 10.0
WELL_KNOWN_MAX_BYTES = 64 * 1024
WELL_KNOWN_MAX_REDIRECTS = 5
REMEMBERED_SERVERS = 10_000
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?([0-9]+)\"?\s*(?:,|$)", re.IGNORECASE)


def cache_seconds(headers: Mapping[str, str], now_seconds: float) -> int:
    """How long to keep a `.well-known` answer with these headers (bounded as above)."""
    cache_control = headers.get("cache-control", "")
    max_age = _MAX_AGE.search(cache_control)
    if re.search(r"no-store|no-cache", cache_control, re.IGNORECASE):
        seconds = 0
    elif max_age:
        # More digits than any sane age (`parse_decimal` gives None): the longest we keep.
        seconds = parse_decimal(max_age.group(1)) or WELL_KNOWN_MAX_SECONDS
    elif "expires" in headers:
        try:
            expires = email.utils.parsedate_to_datetime(headers["expires"]).timestamp()
        except (TypeError, ValueError):
            expires = now_seconds  # an invalid Expires means "already expired" (RFC 9111)
        seconds = int(expires - now_seconds)
    else:
        seconds = WELL_KNOWN_DEFAULT_SECONDS
    return max(WELL_KNOWN_MIN_SECONDS, min(seconds, WELL_KNOWN_MAX_SECONDS))


def delegated_server_name(body: bytes) -> str | None:
    """`m.server` of a `.well-known/matrix/server` body, if it is valid (else None: step 4)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    server = document.get("m.server") if isinstance(document, dict) else None
    try:
        parse_server_name(server)
    except InvalidIdentifier:
        return None
    return server


@dataclass(slots=True)
class _WellKnownEntry:
    delegated: str | None
    expires_ms: int
    failures: int


class ServerDiscovery:
    """`resolve(server_name)`: where to send that server's requests (spec order)."""

    def __init__(
        self,
        connector: Connector,
        resolver: Resolver,
        clock: Clock = now_ms,
        *,
        well_known_port: int = 443,
    ) -> None:
        self._connector = connector
        self._resolver = resolver
        self._clock = clock
        self._well_known_port = well_known_port
        """443 as the spec says; a test serving `.well-known` elsewhere changes it."""
        self._well_known: LRUCache[str, _WellKnownEntry] = LRUCache(REMEMBERED_SERVERS)
        """Bounded: server names come from whoever sends us events or requests."""

    async def resolve(self, server_name: str) -> ResolvedServer:
        """Steps 1–6 of "Resolving server names"; `InvalidIdentifier` for a bad name."""
        hostname, port = parse_server_name(server_name)
        literal = ip_literal(hostname)
        if literal is not None:  # step 1
            return ResolvedServer(literal, port or DEFAULT_PORT, server_name, literal)
        if port is not None:  # step 2
            return ResolvedServer(hostname, port, server_name, hostname)
        delegated = await self._delegated(server_name, hostname)
        if delegated is not None:  # step 3
            return await self._resolve_delegated(delegated)
        return await self._by_srv(hostname)  # steps 4-6

    async def _resolve_delegated(self, delegated: str) -> ResolvedServer:
        hostname, port = parse_server_name(delegated)
        literal = ip_literal(hostname)
        if literal is not None:  # 3.1
            return ResolvedServer(literal, port or DEFAULT_PORT, delegated, literal)
        if port is not None:  # 3.2
            return ResolvedServer(hostname, port, delegated, hostname)
        return await self._by_srv(hostname)  # 3.3-3.5

    async def _by_srv(self, hostname: str) -> ResolvedServer:
        """SRV `_matrix-fed._tcp`, then `_matrix._tcp`, then port 8448; Host and TLS: hostname."""
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            records = await self._resolver.srv(f"{service}.{hostname}")
            if records:
                target, port = records[0]
                return ResolvedServer(target, port, hostname, hostname)
        return ResolvedServer(hostname, DEFAULT_PORT, hostname, hostname)

    async def _delegated(self, server_name: str, hostname: str) -> str | None:
        """The cached or freshly fetched `m.server` of `hostname`, None if it has none."""
        now = self._clock()
        entry = self._well_known.get(hostname)
        if entry is not None and entry.expires_ms > now:
            return entry.delegated
        answer = await self._fetch_well_known(server_name, hostname)
        if answer is None:
            failures = entry.failures + 1 if entry is not None else 1
            seconds = min(
                WELL_KNOWN_FAILURE_SECONDS << min(failures - 1, 16),
                WELL_KNOWN_MAX_FAILURE_SECONDS,
            )
            delegated = None
        else:
            failures = 0
            delegated, seconds = answer
        self._well_known.put(hostname, _WellKnownEntry(delegated, now + seconds * 1000, failures))
        return delegated

    async def _fetch_well_known(self, server_name: str, hostname: str) -> tuple[str, int] | None:
        """(`m.server`, seconds to cache it), following redirects; None for any failure."""
        url = f"https://{hostname}{WELL_KNOWN_PATH}"
        seen = {url}
        for _ in range(WELL_KNOWN_MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port or self._well_known_port
            authority = parts.netloc.rpartition("@")[2]
            target = ResolvedServer(host, port, authority, ip_literal(host) or host)
            uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            try:
                answer = await self._connector.fetch(
                    server_name,
                    target,
                    "GET",
                    uri,
                    headers={"Accept": "application/json"},
                    content=None,
                    timeout=WELL_KNOWN_TIMEOUT_SECONDS,
                    max_bytes=WELL_KNOWN_MAX_BYTES,
                )
            except FederationError:
                return None
            location = answer.headers.get("location")
            if answer.status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if url in seen or urlsplit(url).scheme != "https":
                    return None
                seen.add(url)
                continue
            if answer.status != 200:
                return None
            delegated = delegated_server_name(answer.body)
            if delegated is None:
                return None
            return delegated, cache_seconds(answer.headers, self._clock() / 1000)
        return None
