"""User-interactive auth sessions over HTTP: binding, expiry, order, single use.

Spec: `content/client-server-api/_index.md`, "User-Interactive
Authentication API" (401 bodies with `flows`, `params`, `session`,
`completed`; failed attempts add `errcode`/`error`; stages follow a flow),
"Password-based", "Dummy Auth".
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.uiaa import SESSION_LIFETIME_MS
from tests.support.accounts import CLIENT_API, bearer, log_in, password_auth, register
from tests.support.server import TestServer, make_config, serving


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


@pytest.fixture
async def alice(open_server) -> dict:
    return await register(open_server.client, "alice")


async def delete_device(server: TestServer, user: dict, device_id: str, auth: dict | None):
    body = {} if auth is None else {"auth": auth}
    return await server.client.request(
        "DELETE",
        f"{CLIENT_API}/devices/{device_id}",
        headers=bearer(user["access_token"]),
        json=body,
    )


async def test_session_of_one_request_cannot_authorise_another(open_server, alice):
    tablet = (await log_in(open_server.client, "alice")).json()
    laptop = (await log_in(open_server.client, "alice")).json()
    started = await delete_device(open_server, alice, tablet["device_id"], None)
    session = started.json()["session"]

    response = await delete_device(
        open_server,
        alice,
        laptop["device_id"],
        password_auth("@alice:localhost", session=session),
    )

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert laptop["device_id"] in open_server.services.devices.device_ids("@alice:localhost")


async def test_session_of_one_user_cannot_be_used_by_another(open_server, alice):
    bob = await register(open_server.client, "bob")
    bob_laptop = (await log_in(open_server.client, "bob", device_id="SAME")).json()
    await log_in(open_server.client, "alice", device_id="SAME")
    started = await delete_device(open_server, alice, "SAME", None)

    response = await delete_device(
        open_server,
        bob,
        "SAME",
        password_auth("@bob:localhost", session=started.json()["session"]),
    )

    assert response.status_code == 403
    assert bob_laptop["device_id"] in open_server.services.devices.device_ids("@bob:localhost")


async def test_password_of_another_user_is_refused(open_server, alice):
    await register(open_server.client, "mallory")
    laptop = (await log_in(open_server.client, "alice")).json()

    response = await delete_device(
        open_server, alice, laptop["device_id"], password_auth("@mallory:localhost")
    )

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert laptop["device_id"] in open_server.services.devices.device_ids("@alice:localhost")


async def test_failed_attempt_keeps_the_session_for_another_try(open_server, alice):
    laptop = (await log_in(open_server.client, "alice")).json()
    failed = await delete_device(
        open_server, alice, laptop["device_id"], password_auth("@alice:localhost", "wrong")
    )
    session = failed.json()["session"]

    retried = await delete_device(
        open_server, alice, laptop["device_id"], password_auth("@alice:localhost", session=session)
    )

    assert retried.status_code == 200


async def test_unknown_session_gets_401_with_a_fresh_session(open_server, alice):
    response = await delete_device(
        open_server, alice, "ANY", password_auth("@alice:localhost", session="made-up")
    )

    assert response.status_code == 401
    assert response.json()["session"] != "made-up"
    assert response.json()["flows"] == [{"stages": ["m.login.password"]}]


async def test_expired_session_is_not_accepted(open_server, alice):
    laptop = (await log_in(open_server.client, "alice")).json()
    started = await delete_device(open_server, alice, laptop["device_id"], None)
    session = started.json()["session"]
    uiaa = open_server.services.uiaa
    real_clock = uiaa.clock
    uiaa.clock = lambda: real_clock() + SESSION_LIFETIME_MS

    response = await delete_device(
        open_server, alice, laptop["device_id"], password_auth("@alice:localhost", session=session)
    )

    assert response.status_code == 401
    assert response.json()["session"] != session
    assert laptop["device_id"] in open_server.services.devices.device_ids("@alice:localhost")


async def test_stage_outside_the_offered_flows_gets_401(open_server, alice):
    response = await delete_device(
        open_server, alice, alice["device_id"], {"type": "m.login.dummy"}
    )

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert alice["device_id"] in open_server.services.devices.device_ids("@alice:localhost")


async def test_a_completed_session_authorises_one_request_only(open_server, alice):
    tablet = (await log_in(open_server.client, "alice", device_id="TABLET")).json()
    started = await delete_device(open_server, alice, "TABLET", None)
    session = started.json()["session"]
    await delete_device(
        open_server, alice, "TABLET", password_auth("@alice:localhost", session=session)
    )
    await log_in(open_server.client, "alice", device_id="TABLET")

    replayed = await delete_device(open_server, alice, "TABLET", {"session": session})

    assert tablet["device_id"] == "TABLET"
    assert replayed.status_code == 401
    assert "TABLET" in open_server.services.devices.device_ids("@alice:localhost")


async def test_auth_that_is_not_an_object_gets_400(open_server, alice):
    response = await open_server.client.request(
        "DELETE",
        f"{CLIENT_API}/devices/{alice['device_id']}",
        headers=bearer(alice["access_token"]),
        json={"auth": "password"},
    )

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_BAD_JSON"
