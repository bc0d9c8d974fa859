"""Test helpers for accounts: register and log in over HTTP, authorise requests.

Every helper goes through the real endpoints, so a test that uses them also
relies on registration and login doing what `test_register.py` and
`test_login.py` show.
"""

from __future__ import annotations

from typing import Any

import httpx

CLIENT_API = "/_matrix/client/v3"
PASSWORD = "correct horse battery staple"


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def register(
    client: httpx.AsyncClient,
    username: str | None,
    password: str | None = PASSWORD,
    **fields: Any,
) -> dict[str, Any]:
    """Register through the dummy flow (the server must allow open registration)."""
    body: dict[str, Any] = {"auth": {"type": "m.login.dummy"}, **fields}
    if username is not None:
        body["username"] = username
    if password is not None:
        body["password"] = password
    response = await client.post(f"{CLIENT_API}/register", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def log_in(
    client: httpx.AsyncClient, user: str, password: str = PASSWORD, **fields: Any
) -> httpx.Response:
    return await client.post(
        f"{CLIENT_API}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            **fields,
        },
    )


async def whoami(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get(f"{CLIENT_API}/account/whoami", headers=bearer(access_token))


def password_auth(user_id: str, password: str = PASSWORD, **fields: Any) -> dict[str, Any]:
    """An `m.login.password` auth dict for user-interactive auth."""
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
        **fields,
    }
