"""Reaching a discovered server: which address, through which proxy, checked for which name.

Spec: `content/server-server-api.md` § Resolving server names (the `Host`
header and certificate name of each step, carried in `ResolvedServer`).

Without a proxy the host is resolved here and every address is checked
against `federation_ip_range_denylist`/`_allowlist` before connecting to it;
the connection then goes to that very address, so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot slip through.
With a proxy the proxy resolves the name (it may be an `.onion` only the
proxy knows), and the proxy is trusted with where it goes. Through an HTTP
proxy, httpcore checks the certificate against the host it was asked to
CONNECT to: right for every step of discovery except the SRV ones, where
the spec wants the server name and this checks the SRV target.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import trio

from ...core.ip_ranges import IpRanges
from ..outgoing_http import HttpAnswer, OutgoingHttp, ResponseTooLarge
from .errors import AnswerTooLarge, DestinationForbidden, Unreachable
from .resolver import Resolver


@dataclass(frozen=True, slots=True)
class ResolvedServer:
    """Where a server name's requests go, and how they present themselves there."""

    host: str
    """An IP address (without brackets), or a host name still to resolve (AAAA/A)."""
    port: int
    host_header: str
    tls_name: str
    """The name (or IP address) the certificate must be valid for."""


def ip_literal(host: str) -> str | None:
    """`host` as a bare IP address if it is one (`[::1]` → `::1`), else None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class Connector:
    def __init__(self, http: OutgoingHttp, resolver: Resolver, ip_ranges: IpRanges) -> None:
        self._http = http
        self._resolver = resolver
        self._ip_ranges = ip_ranges

    async def _allowed_addresses(self, server_name: str, host: str, port: int) -> list[str]:
        literal = ip_literal(host)
        addresses = [literal] if literal else await self._resolver.addresses(host, port)
        if not addresses:
            raise Unreachable(server_name, f"{host} has no IP address")
        allowed = [address for address in addresses if self._ip_ranges.allows(address)]
        if not allowed:
            raise DestinationForbidden(
                server_name,
                f"{host} resolves to {', '.join(addresses)}, in federation_ip_range_denylist",
            )
        return allowed

    async def fetch(
        self,
        server_name: str,
        target: ResolvedServer,
        method: str,
        uri: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float,
        max_bytes: int,
    ) -> HttpAnswer:
        """Send one request to `target` for `server_name`; `Unreachable` if no answer came.

        Addresses are tried in order while connecting fails; once connected,
        a failure ends the attempt (the request may have been acted on).
        """
        proxy = self._http.proxy_for(target.host)
        if proxy is not None:
            hosts = [_url_host(target.host)]
        else:
            hosts = [
                _url_host(address)
                for address in await self._allowed_addresses(server_name, target.host, target.port)
            ]
        all_headers = {**headers, "Host": target.host_header}
        failures: list[str] = []
        for host in hosts:
            url = f"https://{host}:{target.port}{uri}"
            try:
                return await self._http.fetch(
                    method,
                    url,
                    proxy=proxy,
                    headers=all_headers,
                    content=content,
                    tls_name=target.tls_name,
                    timeout=timeout,
                    max_bytes=max_bytes,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                failures.append(f"{host}:{target.port}: {error or type(error).__name__}")
            except trio.TooSlowError:
                raise Unreachable(server_name, f"no answer within {timeout} s") from None
            except ResponseTooLarge as error:
                raise AnswerTooLarge(server_name, str(error)) from None
            except httpx.HTTPError as error:
                raise Unreachable(
                    server_name, f"{host}:{target.port}: {error or type(error).__name__}"
                ) from None
        raise Unreachable(server_name, "cannot connect: " + "; ".join(failures))
