"""Helpers for the end-to-end key tests across servers (`tests/federation/test_*keys*`, `*e2ee*`).

- `record_requests`: every federation request a server of ours makes from
  now on (destination, method, path, body), still sent for real;
- `silent_peer` and `dead_server_name`: a server that accepts TLS
  connections and never answers, and one where nothing listens (the two ways
  a peer is down);
- `account_of`: one of our test users as an `Account` (its `/sync` stream
  through `Sync`, as the Synapse interop tests use);
- `nio_client`, `nio_sync`: a matrix-nio client with encryption on, logged in
  with an existing access token, and one sync followed by the key uploads and
  queries nio's own sync loop would make.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from nio import (
    AsyncClient,
    AsyncClientConfig,
    KeysQueryResponse,
    KeysUploadResponse,
    SyncResponse,
)

from tests.support.federation import FederatingServer, serve_https
from tests.support.federation_ca import FederationCa, free_port_on
from tests.support.matrix import User
from tests.support.synapse_rooms import Account


@dataclass
class SentRequest:
    destination: str
    method: str
    path: str
    body: Any


def record_requests(monkeypatch: pytest.MonkeyPatch, server: FederatingServer) -> list[SentRequest]:
    """Every request `server`'s federation client sends from now on, in order."""
    client = server.federation.client
    real_request = client.request
    sent: list[SentRequest] = []

    async def request(destination: str, method: str, path: str, **kwargs: Any) -> Any:
        sent.append(SentRequest(destination, method, path, kwargs.get("body")))
        return await real_request(destination, method, path, **kwargs)

    monkeypatch.setattr(client, "request", request)
    return sent


async def silent_peer(nursery: trio.Nursery, ca: FederationCa, address: str) -> str:
    """A server name whose server takes the request and never answers."""

    async def never(method: str, path: str, body: object) -> tuple[int, object]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    return await serve_https(nursery, ca, address, never)


def dead_server_name(address: str) -> str:
    """A server name on `address` with a port nothing listens on (connections are refused)."""
    return f"{address}:{free_port_on(address)}"


def account_of(user: User) -> Account:
    return Account(user.user_id, user.device_id, user.access_token, user.http, user.server_name)


def nio_client(base_url: str, store: Path, user_id: str, device_id: str, token: str) -> AsyncClient:
    """An encrypting matrix-nio client of an existing login (its own Olm account in `store`).

    TLS is not verified: our servers' certificates come from the test's CA,
    which aiohttp would need to be told about; what the test checks is the
    Matrix traffic, not the client's certificate checks.
    """
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(
        base_url,
        user_id,
        device_id=device_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
        ssl=False,
    )
    client.restore_login(user_id, device_id, token)
    assert client.olm is not None, "nio's encryption did not load"
    return client


async def nio_sync(client: AsyncClient, timeout_ms: int = 1000) -> SyncResponse:
    """One sync from the client's last token, then the key uploads and queries nio's sync
    loop would make."""
    response = await client.sync(timeout=timeout_ms, full_state=client.next_batch is None)
    assert isinstance(response, SyncResponse), response
    if client.should_upload_keys:
        uploaded = await client.keys_upload()
        assert isinstance(uploaded, KeysUploadResponse), uploaded
    if client.should_query_keys:
        queried = await client.keys_query()
        assert isinstance(queried, KeysQueryResponse), queried
    return response
