"""Outgoing HTTP (push gateways now, federation later): one place for proxies and limits.

`[global.proxy]` chooses a proxy per destination domain, and
`max_concurrent_requests` bounds how many requests are in flight at once, so
a busy queue cannot exhaust a small machine's sockets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx
import trio

from ..config import Config

DEFAULT_TIMEOUT_SECONDS = 30.0


class OutgoingHttp:
    def __init__(self, config: Config) -> None:
        self._proxy = config.proxy
        self._limit = trio.Semaphore(config.max_concurrent_requests)
        self._clients: dict[str | None, httpx.AsyncClient] = {}

    def _client(self, url: str) -> httpx.AsyncClient:
        proxy = self._proxy.url_for(urlparse(url).hostname or "")
        client = self._clients.get(proxy)
        if client is None:
            client = httpx.AsyncClient(proxy=proxy, timeout=DEFAULT_TIMEOUT_SECONDS)
            self._clients[proxy] = client
        return client

    async def post_json(self, url: str, body: Any) -> httpx.Response:
        async with self._limit:
            return await self._client(url).post(url, json=body)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()
