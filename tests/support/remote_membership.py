"""Helpers for the membership tests between two of our servers (`tests/federation/`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import trio

from matrix_conduit.service.federation.errors import RemoteError
from tests.support.federation import FederatingServer
from tests.support.matrix import User, path_part


async def join(user: User, room: str, **params: str) -> httpx.Response:
    """`POST /join/{roomIdOrAlias}` with query parameters (`via`, `server_name`)."""
    return await user.request("POST", f"/join/{path_part(room)}", body={}, params=params)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """`check()`'s first truthy answer, asked every 50 ms until `timeout`."""
    with trio.fail_after(timeout):
        while not (answer := await check()):
            await trio.sleep(0.05)
    return answer


def refuse_v2(monkeypatch: pytest.MonkeyPatch, server: FederatingServer) -> list[str]:
    """`server`'s requests to `/_matrix/federation/v2/...` get the 404 of an older
    server; returns every path it requests from now on."""
    client = server.federation.client
    real_request = client.request
    paths: list[str] = []

    async def request(destination: str, method: str, path: str, **kwargs: Any) -> Any:
        paths.append(path)
        if path.startswith("/_matrix/federation/v2/"):
            raise RemoteError(destination, 404, "M_UNRECOGNIZED", "Unrecognized request")
        return await real_request(destination, method, path, **kwargs)

    monkeypatch.setattr(client, "request", request)
    return paths
