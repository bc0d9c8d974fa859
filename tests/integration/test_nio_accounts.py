"""A real client library against the real server: matrix-nio's account calls end to end.

matrix-nio's `AsyncClient` registers (the one-request dummy flow, and its
registration-token dance), asks who it is, changes and reads its display
name, logs out and logs in again. nio runs on asyncio (aiohttp), so each
scenario runs in a worker thread with its own asyncio loop while the server
serves on this test's trio loop.
"""

from __future__ import annotations

from typing import Any

import pytest
from nio import (
    AsyncClient,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    WhoamiResponse,
)

from tests.support.nio import in_asyncio
from tests.support.server import TestServer, make_config, serving

TOKEN = "token-for-nio-0123"


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


async def test_nio_registers_whoamis_renames_logs_out_and_back_in(open_server):
    async def scenario() -> list:
        client = AsyncClient(open_server.base_url)
        try:
            registered = await client.register("nioalice", "nio password", device_name="nio")
            me = await client.whoami()
            renamed = await client.set_displayname("Alice via nio")
            name = await client.get_displayname()
            logged_out = await client.logout()
            after_logout = await client.whoami()
        finally:
            await client.close()
        client = AsyncClient(open_server.base_url, "nioalice")
        try:
            again = await client.login("nio password", device_name="nio again")
        finally:
            await client.close()
        return [registered, me, renamed, name, logged_out, after_logout, again]

    registered, me, renamed, name, logged_out, after_logout, again = await in_asyncio(scenario)

    assert isinstance(registered, RegisterResponse), registered
    assert registered.user_id == "@nioalice:localhost"
    assert isinstance(me, WhoamiResponse), me
    assert (me.user_id, me.device_id) == ("@nioalice:localhost", registered.device_id)
    assert isinstance(renamed, ProfileSetDisplayNameResponse), renamed
    assert isinstance(name, ProfileGetDisplayNameResponse), name
    assert name.displayname == "Alice via nio"
    assert isinstance(logged_out, LogoutResponse), logged_out
    assert not isinstance(after_logout, WhoamiResponse)
    assert isinstance(again, LoginResponse), again
    assert again.device_id != registered.device_id


async def test_nio_registers_with_a_registration_token(nursery, tmp_path):
    config = make_config(tmp_path / "db", allow_registration=True, registration_token=TOKEN)
    async with serving(nursery, config) as server:

        async def scenario() -> Any:
            client = AsyncClient(server.base_url)
            try:
                return await client.register_with_token("niobob", "nio password", TOKEN)
            finally:
                await client.close()

        registered = await in_asyncio(scenario)

    assert isinstance(registered, RegisterResponse), registered
    assert registered.user_id == "@niobob:localhost"
