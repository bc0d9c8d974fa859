"""Account management over HTTP: whoami, password change, deactivation, 3PIDs.

Spec: `data/api/client-server/whoami.yaml`, `password_management.yaml`
(`logout_devices`, default true), `account_deactivation.yaml`,
`administrative_contact.yaml` and the `requestToken` endpoints, and
`content/client-server-api/_index.md`, "Account management" and "Other error
codes" (`M_THREEPID_*`).
"""

from __future__ import annotations

import pytest

from tests.support.accounts import (
    CLIENT_API,
    bearer,
    log_in,
    password_auth,
    register,
    whoami,
)
from tests.support.server import TestServer, make_config, serving

NEW_PASSWORD = "a different passphrase 93"


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


@pytest.fixture
async def alice(open_server) -> dict:
    return await register(open_server.client, "alice")


async def test_whoami_names_the_user_and_device(open_server, alice):
    response = await whoami(open_server.client, alice["access_token"])

    assert response.status_code == 200
    assert response.json() == {
        "user_id": "@alice:localhost",
        "device_id": alice["device_id"],
        "is_guest": False,
    }


# ---------------------------------------------------------------- password


async def change_password(server: TestServer, token: str | None, body: dict):
    headers = bearer(token) if token else {}
    return await server.client.post(f"{CLIENT_API}/account/password", headers=headers, json=body)


async def test_password_change_asks_for_the_current_password(open_server, alice):
    response = await change_password(
        open_server, alice["access_token"], {"new_password": NEW_PASSWORD}
    )

    assert response.status_code == 401
    assert response.json()["flows"] == [{"stages": ["m.login.password"]}]
    assert (await log_in(open_server.client, "alice")).status_code == 200


async def test_password_change_logs_out_other_devices_by_default(open_server, alice):
    other = (await log_in(open_server.client, "alice")).json()

    response = await change_password(
        open_server,
        alice["access_token"],
        {"new_password": NEW_PASSWORD, "auth": password_auth("@alice:localhost")},
    )

    assert response.status_code == 200
    assert (await whoami(open_server.client, alice["access_token"])).status_code == 200
    assert (await whoami(open_server.client, other["access_token"])).status_code == 401
    assert (await log_in(open_server.client, "alice")).status_code == 403
    assert (await log_in(open_server.client, "alice", NEW_PASSWORD)).status_code == 200


async def test_password_change_with_logout_devices_false_keeps_them(open_server, alice):
    other = (await log_in(open_server.client, "alice")).json()

    response = await change_password(
        open_server,
        alice["access_token"],
        {
            "new_password": NEW_PASSWORD,
            "logout_devices": False,
            "auth": password_auth("@alice:localhost"),
        },
    )

    assert response.status_code == 200
    assert (await whoami(open_server.client, other["access_token"])).status_code == 200


async def test_password_change_without_a_token_names_the_user_in_the_password_stage(
    open_server, alice
):
    response = await change_password(
        open_server, None, {"new_password": NEW_PASSWORD, "auth": password_auth("alice")}
    )

    assert response.status_code == 200
    assert (await whoami(open_server.client, alice["access_token"])).status_code == 401
    assert (await log_in(open_server.client, "alice", NEW_PASSWORD)).status_code == 200


async def test_password_change_needs_a_new_password(open_server, alice):
    response = await change_password(
        open_server, alice["access_token"], {"auth": password_auth("@alice:localhost")}
    )

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_MISSING_PARAM"


# ---------------------------------------------------------------- deactivation


async def deactivate(server: TestServer, token: str | None, auth: dict | None):
    headers = bearer(token) if token else {}
    body = {} if auth is None else {"auth": auth}
    return await server.client.post(f"{CLIENT_API}/account/deactivate", headers=headers, json=body)


async def test_deactivation_asks_for_the_password(open_server, alice):
    response = await deactivate(open_server, alice["access_token"], None)

    assert response.status_code == 401
    assert not open_server.services.users.is_deactivated("@alice:localhost")


async def test_deactivated_account_can_never_log_in_and_its_name_stays_taken(open_server, alice):
    response = await deactivate(
        open_server, alice["access_token"], password_auth("@alice:localhost")
    )

    assert response.status_code == 200
    assert response.json() == {"id_server_unbind_result": "success"}
    assert (await whoami(open_server.client, alice["access_token"])).status_code == 401
    login = await log_in(open_server.client, "alice")
    assert login.status_code == 403
    assert login.json()["errcode"] == "M_USER_DEACTIVATED"
    available = await open_server.client.get(
        f"{CLIENT_API}/register/available", params={"username": "alice"}
    )
    assert available.json()["errcode"] == "M_USER_IN_USE"
    profile = await open_server.client.get(f"{CLIENT_API}/profile/@alice:localhost")
    assert profile.json() == {}


async def test_deactivation_without_a_token_names_the_user_in_the_password_stage(
    open_server, alice
):
    response = await deactivate(open_server, None, password_auth("alice"))

    assert response.status_code == 200
    assert open_server.services.users.is_deactivated("@alice:localhost")


async def test_deactivation_is_announced_to_subscribers(open_server, alice):
    announced: list[str] = []

    async def record(user_id: str) -> None:
        announced.append(user_id)

    open_server.services.users.account_deactivated.append(record)

    await deactivate(open_server, alice["access_token"], password_auth("@alice:localhost"))

    assert announced == ["@alice:localhost"]


async def test_the_server_user_cannot_be_deactivated(nursery, tmp_path):
    config = make_config(tmp_path / "db", emergency_password="break-glass-42")
    async with serving(nursery, config) as server:
        token = (await log_in(server.client, "conduit", "break-glass-42")).json()["access_token"]

        response = await deactivate(
            server, token, password_auth("@conduit:localhost", "break-glass-42")
        )

        assert response.status_code == 403
        assert not server.services.users.is_deactivated("@conduit:localhost")


# ---------------------------------------------------------------- third-party identifiers


async def test_account_has_no_third_party_identifiers(open_server, alice):
    response = await open_server.client.get(
        f"{CLIENT_API}/account/3pid", headers=bearer(alice["access_token"])
    )

    assert response.status_code == 200
    assert response.json() == {"threepids": []}


@pytest.mark.parametrize(
    ("path", "status", "errcode"),
    [
        ("/account/3pid", 403, "M_THREEPID_AUTH_FAILED"),
        ("/account/3pid/add", 403, "M_THREEPID_AUTH_FAILED"),
        ("/account/3pid/delete", 404, "M_THREEPID_NOT_FOUND"),
        ("/account/3pid/email/requestToken", 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
        ("/account/3pid/msisdn/requestToken", 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
        ("/register/email/requestToken", 403, "M_THREEPID_DENIED"),
        ("/register/msisdn/requestToken", 403, "M_THREEPID_DENIED"),
        ("/account/password/email/requestToken", 400, "M_THREEPID_NOT_FOUND"),
        ("/account/password/msisdn/requestToken", 400, "M_THREEPID_NOT_FOUND"),
    ],
)
async def test_third_party_identifier_endpoints_answer_not_supported(
    open_server, alice, path, status, errcode
):
    response = await open_server.client.post(
        CLIENT_API + path,
        headers=bearer(alice["access_token"]),
        json={"client_secret": "s", "email": "a@b.c", "sid": "1", "send_attempt": 1},
    )

    assert response.status_code == status
    assert response.json()["errcode"] == errcode


async def test_unbind_answers_no_support(open_server, alice):
    response = await open_server.client.post(
        f"{CLIENT_API}/account/3pid/unbind",
        headers=bearer(alice["access_token"]),
        json={"medium": "email", "address": "a@b.c"},
    )

    assert response.status_code == 200
    assert response.json() == {"id_server_unbind_result": "no-support"}
