"""Outgoing HTTP to URLs that users choose (URL previews, identity servers), kept off our network.

A user who can make the server fetch a URL could make it reach the server's
own LAN, its cloud metadata service or its loopback admin ports (server-side
request forgery). So each request resolves the URL's host here, checks every
address against an `IpRanges` (a denylist with an allowlist of exceptions,
`core/ip_ranges.py`) and connects to that very address, with the host name
in the `Host` header and as the TLS name: a DNS answer that changes between
the check and the connection (DNS rebinding) cannot slip through.
Redirects are followed here, hop by hop, each hop checked the same way, so a
redirect to a denied address is refused too. As in
`federation/connector.py`, a host the config's `proxy` covers is left to
that proxy, which is trusted with where it goes.

Bounded: the whole exchange, redirects included, within `timeout` seconds,
at most `max_bytes` of body (after decompression), at most `MAX_REDIRECTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import httpx
import trio

from ..core.ip_ranges import IpRanges
from .federation.connector import ip_literal
from .federation.resolver import Resolver
from .outgoing_http import OutgoingHttp, ResponseTooLarge

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """The URL could not be fetched; the message says why, for the client's error."""


class FetchForbidden(FetchError):
    """The URL's host resolves only to denied addresses (or the URL is not http/https)."""


class FetchTooLarge(FetchError):
    """The answer is larger than allowed."""


class FetchTimedOut(FetchError):
    """No complete answer within the time allowed."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """The final answer, after redirects."""

    url: str
    """The URL that answered (the last redirect's target)."""
    status: int
    headers: httpx.Headers
    body: bytes


class GuardedHttp:
    def __init__(
        self,
        http: OutgoingHttp,
        resolver: Resolver,
        ip_ranges: IpRanges,
        *,
        denylist_name: str,
        user_agent: str = "matrix-conduit",
    ) -> None:
        """`denylist_name` is the config key named in refusals, so an admin knows what to change."""
        self._http = http
        self._resolver = resolver
        self._ip_ranges = ip_ranges
        self._denylist_name = denylist_name
        self._user_agent = user_agent

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = True,
    ) -> Fetched:
        """One request (and its redirects, if following); a `FetchError` when it cannot be had."""
        try:
            with trio.fail_after(timeout):
                for _hop in range(MAX_REDIRECTS + 1):
                    answer = await self._fetch_once(
                        method, url, headers or {}, content, timeout, max_bytes
                    )
                    location = answer.headers.get("location")
                    if not (follow_redirects and answer.status in _REDIRECTS and location):
                        return answer
                    url = urljoin(url, location)
                    if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                        method, content = "GET", None
                raise FetchError(f"more than {MAX_REDIRECTS} redirects")
        except trio.TooSlowError:
            raise FetchTimedOut(f"no complete answer within {timeout:g} s") from None

    async def _fetch_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float,
        max_bytes: int,
    ) -> Fetched:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchForbidden(f"{url!r} is not an http or https URL")
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"{url!r} has an invalid port") from None
        host_header = parts.netloc.rpartition("@")[2]  # never send userinfo
        all_headers = {"User-Agent": self._user_agent, **headers, "Host": host_header}
        proxy = self._http.proxy_for(host)
        if proxy is not None:
            targets = [url]
        else:
            targets = [
                _with_host(parts, address, port)
                for address in await self._allowed_addresses(host, port)
            ]
        failures: list[str] = []
        for target in targets:
            try:
                answer = await self._http.fetch(
                    method,
                    target,
                    proxy=proxy,
                    headers=all_headers,
                    content=content,
                    tls_name=host if parts.scheme == "https" else None,
                    timeout=timeout,
                    max_bytes=max_bytes,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                failures.append(f"{urlsplit(target).netloc}: {error or type(error).__name__}")
                continue
            except ResponseTooLarge as error:
                raise FetchTooLarge(str(error)) from None
            except httpx.HTTPError as error:
                raise FetchError(f"{host}: {error or type(error).__name__}") from None
            return Fetched(url, answer.status, answer.headers, answer.body)
        raise FetchError("cannot connect: " + "; ".join(failures))

    async def _allowed_addresses(self, host: str, port: int) -> list[str]:
        literal = ip_literal(host)
        addresses = [literal] if literal else await self._resolver.addresses(host, port)
        if not addresses:
            raise FetchError(f"{host} has no IP address")
        allowed = [address for address in addresses if self._ip_ranges.allows(address)]
        if not allowed:
            raise FetchForbidden(
                f"{host} resolves to {', '.join(addresses)}, in {self._denylist_name}"
            )
        return allowed


def _with_host(parts: SplitResult, address: str, port: int) -> str:
    """The URL of `parts` with its host replaced by the IP address to connect to."""
    host = f"[{address}]" if ":" in address else address
    return urlunsplit(parts._replace(netloc=f"{host}:{port}", fragment=""))
