"""Outgoing HTTP (push gateways, federation): one place for proxies and limits.

`[global.proxy]` chooses a proxy per destination domain, and
`max_concurrent_requests` bounds how many requests are in flight at once, so
a busy queue cannot exhaust a small machine's sockets.

Federation requests (`fetch`) also verify TLS against the system's CAs
through `ssl.create_default_context()`, which honours `SSL_CERT_FILE`; they
ignore `HTTP_PROXY`-style environment variables (the config's `proxy` is the
one setting), never follow redirects by themselves, and stop reading an
answer that grows past the caller's limit.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
import trio

from ..config import Config
from ..core.digits import parse_decimal

DEFAULT_TIMEOUT_SECONDS = 30.0


class ResponseTooLarge(Exception):
    """The answer is larger than the caller's `max_bytes`; it was not read further."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A complete answer to `OutgoingHttp.fetch`."""

    status: int
    headers: httpx.Headers
    body: bytes


class OutgoingHttp:
    def __init__(self, config: Config) -> None:
        self._proxy = config.proxy
        self._limit = trio.Semaphore(config.max_concurrent_requests)
        self._clients: dict[str | None, httpx.AsyncClient] = {}
        self._verified_clients: dict[str | None, httpx.AsyncClient] = {}
        self._tls_context: ssl.SSLContext | None = None

    def proxy_for(self, domain: str) -> str | None:
        """The proxy URL requests to `domain` go through, or None for a direct connection."""
        return self._proxy.url_for(domain)

    def _client(self, url: str) -> httpx.AsyncClient:
        proxy = self._proxy.url_for(urlparse(url).hostname or "")
        client = self._clients.get(proxy)
        if client is None:
            client = httpx.AsyncClient(proxy=proxy, timeout=DEFAULT_TIMEOUT_SECONDS)
            self._clients[proxy] = client
        return client

    async def warm_up(self) -> None:
        """Build the direct federation client now, at startup: the CA store and httpx's
        transport (tens of milliseconds of CPU) are otherwise paid by the first federation
        request after a start, a user's remote join as often as not."""
        self._verified_client(None)

    def _verified_client(self, proxy: str | None) -> httpx.AsyncClient:
        client = self._verified_clients.get(proxy)
        if client is None:
            if self._tls_context is None:
                self._tls_context = ssl.create_default_context()
            client = httpx.AsyncClient(
                proxy=proxy,
                verify=self._tls_context,
                timeout=DEFAULT_TIMEOUT_SECONDS,
                trust_env=False,
                follow_redirects=False,
            )
            self._verified_clients[proxy] = client
        return client

    async def post_json(self, url: str, body: Any) -> httpx.Response:
        async with self._limit:
            return await self._client(url).post(url, json=body)

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        proxy: str | None,
        headers: Mapping[str, str],
        content: bytes | None = None,
        tls_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes: int,
    ) -> HttpAnswer:
        """One request with TLS verified for `tls_name` (default: the URL's host).

        `timeout` bounds the whole exchange, body included (`trio.TooSlowError`);
        `httpx.HTTPError` for transport failures, `ResponseTooLarge` past `max_bytes`.
        """
        client = self._verified_client(proxy)
        extensions = {"sni_hostname": tls_name} if tls_name else {}
        request = client.build_request(
            method, url, headers=dict(headers), content=content, extensions=extensions
        )
        async with self._limit:
            with trio.fail_after(timeout):
                response = await client.send(request, stream=True)
                try:
                    return HttpAnswer(
                        response.status_code, response.headers, await _read(response, max_bytes)
                    )
                finally:
                    await response.aclose()

    async def aclose(self) -> None:
        clients = [*self._clients.values(), *self._verified_clients.values()]
        self._clients, self._verified_clients = {}, {}
        for client in clients:
            await client.aclose()


async def _read(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body, refusing more than `max_bytes` (also after decompression)."""
    declared = response.headers.get("content-length", "")
    length = parse_decimal(declared, max_digits=30)
    if length is not None and length > max_bytes:
        raise ResponseTooLarge(f"the answer declares {declared} bytes, over {max_bytes}")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"the answer is larger than {max_bytes} bytes")
    return bytes(body)
