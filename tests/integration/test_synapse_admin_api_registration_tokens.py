"""Synapse's registration token admin API, and those tokens at `/register`.

Synapse's admin API "Registration Tokens" (`/_synapse/admin/v1/
registration_tokens`: create, list with `valid`, get, update, delete) and the
spec's "Token-authenticated registration" (`m.login.registration_token`,
`GET /_matrix/client/v1/register/m.login.registration_token/validity`):
managed tokens register beside the configured `registration_token`, limited
to `uses_allowed` and `expiry_time`, with `pending` while a session holds a
use and `completed` once its account is made, as Synapse counts them.
"""

from __future__ import annotations

import time

import httpx
import pytest

from matrix_conduit.service.clock import now_ms
from tests.support.matrix import assert_error, ok, register
from tests.support.shared_server import shared_server_fixtures
from tests.support.synapse_admin import AdminApi, admin_user

running_server, server = shared_server_fixtures(
    allow_registration=True, registration_token="the configured token"
)
running_tokens_only, tokens_only = shared_server_fixtures(
    "tokens_only", allow_registration=True, registration_requires_token=True
)

REGISTER = "/_matrix/client/v3/register"
VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"


@pytest.fixture
async def api(server) -> AdminApi:
    return AdminApi(await admin_user(server))


async def token_stage(client: httpx.AsyncClient, username: str, token: str) -> httpx.Response:
    """Start registering `username` and pass the token stage; the 401 naming the session."""
    body = {"username": username, "password": "pw"}
    started = await client.post(REGISTER, json=body)
    assert started.status_code == 401, started.text
    auth = {"type": "m.login.registration_token", "token": token}
    auth["session"] = started.json()["session"]
    return await client.post(REGISTER, json={**body, "auth": auth})


async def finish(client: httpx.AsyncClient, username: str, session: str) -> httpx.Response:
    auth = {"type": "m.login.dummy", "session": session}
    return await client.post(REGISTER, json={"username": username, "password": "pw", "auth": auth})


async def register_with(client: httpx.AsyncClient, username: str, token: str) -> httpx.Response:
    stage = await token_stage(client, username, token)
    if stage.status_code != 401 or "m.login.registration_token" not in stage.json().get(
        "completed", []
    ):
        return stage
    return await finish(client, username, stage.json()["session"])


async def test_create_with_defaults_makes_a_random_unlimited_token(api):
    token = ok(await api.post("/v1/registration_tokens/new", {}))
    assert len(token["token"]) == 16
    assert token["uses_allowed"] is None and token["expiry_time"] is None
    assert (token["pending"], token["completed"]) == (0, 0)
    assert ok(await api.get(f"/v1/registration_tokens/{token['token']}")) == token


async def test_a_single_use_token_registers_once_and_is_counted(server, api):
    ok(await api.post("/v1/registration_tokens/new", {"token": "once-only", "uses_allowed": 1}))
    assert ok(await server.client.get(VALIDITY, params={"token": "once-only"})) == {"valid": True}

    stage = await token_stage(server.client, "tokenuser1", "once-only")
    assert "m.login.registration_token" in stage.json()["completed"]
    held = ok(await api.get("/v1/registration_tokens/once-only"))
    assert (held["pending"], held["completed"]) == (1, 0)
    # The held use makes the token invalid for anybody else meanwhile.
    assert ok(await server.client.get(VALIDITY, params={"token": "once-only"})) == {"valid": False}
    other = await token_stage(server.client, "tokenuser2", "once-only")
    assert other.status_code == 401 and "completed" not in other.json()
    assert other.json()["errcode"] == "M_FORBIDDEN"

    done = ok(await finish(server.client, "tokenuser1", stage.json()["session"]))
    assert done["user_id"] == "@tokenuser1:localhost"
    used = ok(await api.get("/v1/registration_tokens/once-only"))
    assert (used["pending"], used["completed"]) == (0, 1)
    listed = ok(await api.get("/v1/registration_tokens", valid="false"))["registration_tokens"]
    assert "once-only" in [t["token"] for t in listed]


async def test_a_multi_use_token_registers_as_many_times_as_allowed(server, api):
    ok(await api.post("/v1/registration_tokens/new", {"token": "twice", "uses_allowed": 2}))
    ok(await register_with(server.client, "multi1", "twice"))
    ok(await register_with(server.client, "multi2", "twice"))
    third = await register_with(server.client, "multi3", "twice")
    assert_error(third, 401, "M_FORBIDDEN")
    assert ok(await api.get("/v1/registration_tokens/twice"))["completed"] == 2


async def test_the_configured_token_still_registers_beside_managed_ones(server, api):
    ok(await register_with(server.client, "configured1", "the configured token"))
    assert_error(await register_with(server.client, "guess1", "a guess"), 401, "M_FORBIDDEN")


async def test_an_expired_token_is_refused(server, api):
    soon = int(time.time() * 1000) + 60_000
    ok(await api.post("/v1/registration_tokens/new", {"token": "expiring", "expiry_time": soon}))
    ok(await register_with(server.client, "beforeexpiry", "expiring"))
    registration_tokens = server.services.registration_tokens
    registration_tokens.clock = lambda: soon + 1
    try:
        assert_error(
            await register_with(server.client, "afterexpiry", "expiring"), 401, "M_FORBIDDEN"
        )
        valid = ok(await api.get("/v1/registration_tokens", valid="true"))["registration_tokens"]
        assert "expiring" not in [t["token"] for t in valid]
    finally:
        registration_tokens.clock = now_ms


async def test_an_abandoned_session_gives_its_use_back_when_it_expires(server, api):
    ok(await api.post("/v1/registration_tokens/new", {"token": "abandoned", "uses_allowed": 1}))
    await token_stage(server.client, "abandoner", "abandoned")
    assert ok(await api.get("/v1/registration_tokens/abandoned"))["pending"] == 1
    registration_tokens = server.services.registration_tokens
    registration_tokens.clock = lambda: now_ms() + 31 * 60 * 1000
    try:
        registration_tokens.purge_expired()
    finally:
        registration_tokens.clock = now_ms
    assert ok(await api.get("/v1/registration_tokens/abandoned"))["pending"] == 0
    ok(await register_with(server.client, "secondchance", "abandoned"))


async def test_update_and_delete(server, api):
    ok(await api.post("/v1/registration_tokens/new", {"token": "editable", "uses_allowed": 0}))
    assert_error(await register_with(server.client, "edit1", "editable"), 401, "M_FORBIDDEN")
    updated = ok(await api.put("/v1/registration_tokens/editable", {"uses_allowed": None}))
    assert updated["uses_allowed"] is None
    ok(await register_with(server.client, "edit2", "editable"))
    assert ok(await api.delete("/v1/registration_tokens/editable")) == {}
    assert_error(await api.get("/v1/registration_tokens/editable"), 404, "M_NOT_FOUND")
    assert_error(await api.delete("/v1/registration_tokens/editable"), 404, "M_NOT_FOUND")
    assert_error(await register_with(server.client, "edit3", "editable"), 401, "M_FORBIDDEN")


@pytest.mark.parametrize(
    "body",
    [
        {"token": ""},
        {"token": "x" * 65},
        {"token": "has space"},
        {"token": 5},
        {"token": None},
        {"length": 0},
        {"length": 65},
        {"length": "16"},
        {"uses_allowed": -1},
        {"uses_allowed": 1.5},
        {"expiry_time": 1},
        {"expiry_time": "tomorrow"},
    ],
)
async def test_bad_new_tokens_are_m_invalid_param(api, body):
    assert_error(await api.post("/v1/registration_tokens/new", body), 400, "M_INVALID_PARAM")


async def test_token_admin_errors(api):
    ok(await api.post("/v1/registration_tokens/new", {"token": "taken"}))
    assert_error(
        await api.post("/v1/registration_tokens/new", {"token": "taken"}), 400, "M_INVALID_PARAM"
    )
    assert_error(
        await api.put("/v1/registration_tokens/taken", {"uses_allowed": -2}),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(await api.put("/v1/registration_tokens/absent", {}), 404, "M_NOT_FOUND")
    assert_error(await api.get("/v1/registration_tokens", valid="perhaps"), 400, "M_INVALID_PARAM")


async def test_with_registration_requires_token_only_managed_tokens_open_registration(
    tokens_only,
):
    api = AdminApi(await admin_user(tokens_only))
    stage = await tokens_only.client.post(REGISTER, json={"username": "notoken", "password": "pw"})
    assert [f["stages"] for f in stage.json()["flows"]] == [
        ["m.login.registration_token", "m.login.dummy"]
    ]
    assert_error(await register_with(tokens_only.client, "notoken", "anything"), 401, "M_FORBIDDEN")
    ok(await api.post("/v1/registration_tokens/new", {"token": "invited"}))
    ok(await register_with(tokens_only.client, "invitee", "invited"))
    guest = await tokens_only.client.post(REGISTER, params={"kind": "guest"}, json={})
    assert_error(guest, 403, "M_FORBIDDEN")
    assert (await register(tokens_only)).user_id  # the service path still makes users
