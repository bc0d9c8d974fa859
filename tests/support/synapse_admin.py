"""Helpers for tests of Synapse's admin API: admins, their requests, the real script.

`admin_user` makes a server admin (through the registration service, as the
rooms tests make their users); `AdminApi` sends requests under
`/_synapse/admin` with a user's token; `register_new_matrix_user` runs
Synapse's own script from `.synapse-venv` against our server, as an admin
would (its exit status and output are the result).
"""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from tests.support.matrix import AnyServer, User, register
from tests.support.synapse import VENV, install_synapse

ADMIN_PREFIX = "/_synapse/admin"
_names = itertools.count(1)


async def admin_user(server: AnyServer) -> User:
    """A new server admin, logged in."""
    return await register(server, f"admin{next(_names)}", admin=True)


@dataclass
class AdminApi:
    """Requests to `/_synapse/admin/...` as `user` (an admin or, to test refusals, not)."""

    user: User

    async def request(
        self, method: str, path: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        return await self.user.request(
            method, path, body=body, params=params or None, prefix=ADMIN_PREFIX
        )

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("GET", path, **params)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PUT", path, body)

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.request("POST", path, {} if body is None else body)

    async def delete(self, path: str, body: Any = None) -> httpx.Response:
        return await self.request("DELETE", path, body)


@dataclass(frozen=True)
class ScriptResult:
    returncode: int
    output: str


async def register_new_matrix_user(
    base_url: str, secret: str, user: str, password: str, *, admin: bool
) -> ScriptResult:
    """Synapse's `register_new_matrix_user -k SECRET -u USER -p PASS --admin|--no-admin URL`."""
    await trio.to_thread.run_sync(install_synapse)
    script = VENV / "bin" / "register_new_matrix_user"
    command = [str(script), "-k", secret, "-u", user, "-p", password]
    command += ["--admin" if admin else "--no-admin", base_url]
    result = await trio.run_process(
        command, capture_stdout=True, stderr=subprocess.STDOUT, check=False
    )
    return ScriptResult(result.returncode, result.stdout.decode())
