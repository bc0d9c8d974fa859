"""Shared-secret registration as Synapse's `register_new_matrix_user` does it, and the
server version.

Synapse's admin API "Shared-Secret Registration" (`GET /_synapse/admin/v1/
register` for a nonce, `POST` with the HMAC-SHA1 of nonce, user, password and
admin flag keyed with `registration_shared_secret`) and "Server Version".
The script is Synapse's own, from `.synapse-venv`, run against our server.
"""

from __future__ import annotations

import httpx
import pytest

from matrix_conduit.service.shared_secret_registration import shared_secret_mac
from tests.support.matrix import assert_error, ok
from tests.support.shared_server import shared_server_fixtures
from tests.support.synapse_admin import register_new_matrix_user

SECRET = "a long shared secret for tests"

running_server, server = shared_server_fixtures(registration_shared_secret=SECRET)
running_closed, closed = shared_server_fixtures("closed")

REGISTER = "/_synapse/admin/v1/register"


async def log_in(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    return await client.post("/_matrix/client/v3/login", json=body)


async def test_register_new_matrix_user_creates_an_admin_who_can_log_in(server):
    result = await register_new_matrix_user(
        server.base_url, SECRET, "scriptadmin", "admin password", admin=True
    )
    assert result.returncode == 0, result.output
    assert "Success!" in result.output

    login = ok(await log_in(server.client, "scriptadmin", "admin password"))
    assert login["user_id"] == "@scriptadmin:localhost"
    assert server.services.users.is_admin("@scriptadmin:localhost")


async def test_register_new_matrix_user_without_admin_makes_a_plain_user(server):
    result = await register_new_matrix_user(
        server.base_url, SECRET, "scriptuser", "user password", admin=False
    )
    assert result.returncode == 0, result.output
    ok(await log_in(server.client, "scriptuser", "user password"))
    assert not server.services.users.is_admin("@scriptuser:localhost")


async def test_a_wrong_secret_is_refused_and_makes_no_account(server):
    result = await register_new_matrix_user(
        server.base_url, "not the secret", "intruder", "password", admin=True
    )
    assert result.returncode == 1
    assert "403" in result.output and "HMAC incorrect" in result.output
    assert not server.services.users.exists("@intruder:localhost")


async def test_a_taken_name_is_m_user_in_use(server):
    first = await register_new_matrix_user(server.base_url, SECRET, "twice", "pw", admin=False)
    assert first.returncode == 0, first.output
    body = await signed_body(server.client, "twice", "pw", admin=False)
    assert_error(await server.client.post(REGISTER, json=body), 400, "M_USER_IN_USE")


async def signed_body(client: httpx.AsyncClient, user: str, password: str, *, admin: bool) -> dict:
    nonce = ok(await client.get(REGISTER))["nonce"]
    mac = shared_secret_mac(SECRET, nonce, user, password, admin=admin, user_type=None)
    return {"nonce": nonce, "username": user, "password": password, "admin": admin, "mac": mac}


async def test_the_answer_has_an_access_token_of_the_new_account(server):
    body = await signed_body(server.client, "Tokened", "pw", admin=False)
    answer = ok(await server.client.post(REGISTER, json=body))
    assert answer["user_id"] == "@tokened:localhost"
    assert answer["home_server"] == "localhost"
    whoami = await server.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {answer['access_token']}"},
    )
    assert ok(whoami)["user_id"] == "@tokened:localhost"


async def test_a_displayname_is_set_on_the_new_account(server):
    body = await signed_body(server.client, "named", "pw", admin=False)
    ok(await server.client.post(REGISTER, json={**body, "displayname": "Named One"}))
    assert server.services.users.displayname("@named:localhost") == "Named One"


async def test_a_nonce_is_good_for_one_try(server):
    body = await signed_body(server.client, "nonceuser", "pw", admin=False)
    wrong = {**body, "mac": "0" * 40}
    assert_error(await server.client.post(REGISTER, json=wrong), 403, "M_FORBIDDEN")
    assert_error(await server.client.post(REGISTER, json=body), 400, "M_INVALID_PARAM")
    assert not server.services.users.exists("@nonceuser:localhost")


async def test_the_admin_flag_is_part_of_the_mac(server):
    """A mac made for a plain user does not make an admin when `admin` is flipped."""
    body = await signed_body(server.client, "flipped", "pw", admin=False)
    assert_error(
        await server.client.post(REGISTER, json={**body, "admin": True}), 403, "M_FORBIDDEN"
    )


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"nonce": None}, "M_BAD_JSON"),
        ({"username": None}, "M_BAD_JSON"),
        ({"password": None}, "M_BAD_JSON"),
        ({"mac": None}, "M_BAD_JSON"),
        ({"username": 5}, "M_INVALID_PARAM"),
        ({"password": "x" * 513}, "M_INVALID_PARAM"),
        ({"user_type": "wizard"}, "M_INVALID_PARAM"),
        ({"username": "not valid!"}, "M_INVALID_USERNAME"),
    ],
)
async def test_malformed_requests_get_a_spec_errcode(server, change, errcode):
    body = await signed_body(server.client, "malformed", "pw", admin=False)
    for key, value in change.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    if errcode == "M_INVALID_USERNAME":  # a well-signed request for a bad name
        nonce = ok(await server.client.get(REGISTER))["nonce"]
        mac = shared_secret_mac(SECRET, nonce, "not valid!", "pw", admin=False, user_type=None)
        body = {**body, "nonce": nonce, "mac": mac}
    assert_error(await server.client.post(REGISTER, json=body), 400, errcode)


async def test_a_body_that_is_not_json_is_m_not_json(server):
    response = await server.client.post(REGISTER, content=b"{nope")
    assert_error(response, 400, "M_NOT_JSON")


async def test_without_a_shared_secret_registration_is_refused(closed):
    """Synapse answers 400 "Shared secret registration is not enabled"; so does the
    script's run end in failure."""
    nonce = ok(await closed.client.get(REGISTER))["nonce"]
    body = {"nonce": nonce, "username": "x", "password": "y", "mac": "z"}
    body_error = assert_error(await closed.client.post(REGISTER, json=body), 400, "M_UNKNOWN")
    assert "not enabled" in body_error["error"]
    result = await register_new_matrix_user(closed.base_url, SECRET, "nobody", "pw", admin=True)
    assert result.returncode == 1
    assert not closed.services.users.exists("@nobody:localhost")


async def test_server_version_names_the_server(server):
    version = ok(await server.client.get("/_synapse/admin/v1/server_version"))
    assert version["server_version"].startswith("matrix-conduit ")
