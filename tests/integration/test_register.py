"""Registration over HTTP: policy, user-interactive auth, names, guests, first admin.

Spec: `data/api/client-server/registration.yaml` (`POST /register`,
`GET /register/available`), `registration_tokens.yaml`,
`content/client-server-api/_index.md` ("User-Interactive Authentication
API", "Dummy Auth", "Token-authenticated registration"), the Guest Access
module, and `content/appendices.md` ("User Identifiers").
"""

from __future__ import annotations

import logging

import pytest

from tests.support.accounts import CLIENT_API, PASSWORD, bearer, register, whoami
from tests.support.server import TestServer, make_config, serving

REGISTER = f"{CLIENT_API}/register"
TOKEN = "let-me-in-4711"
TOKEN_FLOW = {"stages": ["m.login.registration_token", "m.login.dummy"]}


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


@pytest.fixture
async def token_server(nursery, tmp_path) -> TestServer:
    config = make_config(tmp_path / "db", allow_registration=True, registration_token=TOKEN)
    async with serving(nursery, config) as server:
        yield server


# ---------------------------------------------------------------- policy


async def finish_alice_with_dummy(server: TestServer, session: str):
    """The last stage of alice's registration: `m.login.dummy` in the session."""
    return await server.client.post(
        REGISTER,
        json={
            "username": "alice",
            "password": "x",
            "auth": {"type": "m.login.dummy", "session": session},
        },
    )


async def test_registration_disabled_gets_403_saying_so(server: TestServer):
    response = await server.client.post(
        REGISTER,
        json={"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
    )

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert "registration is disabled on this server" in response.json()["error"].lower()


async def test_register_without_auth_gets_401_with_dummy_flow_and_session(open_server):
    response = await open_server.client.post(
        REGISTER, json={"username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 401
    body = response.json()
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert body["params"] == {}
    assert isinstance(body["session"], str) and body["session"]
    assert "errcode" not in body
    assert "completed" not in body


async def test_dummy_stage_in_the_session_registers_and_logs_in(open_server):
    first = await open_server.client.post(REGISTER, json={"username": "alice", "password": "x"})
    session = first.json()["session"]

    response = await finish_alice_with_dummy(open_server, session)

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "@alice:localhost"
    assert body["home_server"] == "localhost"
    assert "refresh_token" not in body and "expires_in_ms" not in body
    me = await whoami(open_server.client, body["access_token"])
    assert me.json() == {
        "user_id": "@alice:localhost",
        "device_id": body["device_id"],
        "is_guest": False,
    }


async def test_auth_without_session_or_type_gets_the_flows(open_server):
    # matrix-nio's register_with_token opens with such an auth dict.
    response = await open_server.client.post(
        REGISTER,
        json={"username": "alice", "password": "x", "auth": {"initial_device_display_name": "x"}},
    )

    assert response.status_code == 401
    assert response.json()["flows"] == [{"stages": ["m.login.dummy"]}]


async def test_r0_path_registers_too(open_server):
    response = await open_server.client.post(
        "/_matrix/client/r0/register",
        json={"username": "alice", "password": "x", "auth": {"type": "m.login.dummy"}},
    )

    assert response.status_code == 200
    assert response.json()["user_id"] == "@alice:localhost"


async def test_unknown_kind_gets_400_m_invalid_param(open_server):
    response = await open_server.client.post(REGISTER, params={"kind": "robot"}, json={})

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"


# ---------------------------------------------------------------- names


async def test_username_is_downcased(open_server):
    body = await register(open_server.client, "Alice")

    assert body["user_id"] == "@alice:localhost"


@pytest.mark.parametrize(
    "username", ["al ice", "alice:localhost", "@alice", "ålice", "", "a" * 300]
)
async def test_invalid_username_gets_m_invalid_username_before_auth(open_server, username):
    response = await open_server.client.post(REGISTER, json={"username": username, "password": "x"})

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_USERNAME"


async def test_taken_username_gets_m_user_in_use_before_auth(open_server):
    await register(open_server.client, "alice")

    response = await open_server.client.post(REGISTER, json={"username": "ALICE", "password": "x"})

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_USER_IN_USE"


async def test_the_server_users_name_is_reserved(open_server):
    response = await open_server.client.post(
        REGISTER, json={"username": "conduit", "password": "x", "auth": {"type": "m.login.dummy"}}
    )

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_USER_IN_USE"


async def test_without_username_the_server_picks_a_valid_localpart(open_server):
    first = await register(open_server.client, None)
    second = await register(open_server.client, None)

    assert first["user_id"] != second["user_id"]
    assert first["user_id"].endswith(":localhost")


async def test_available_is_true_for_a_free_valid_name(open_server):
    response = await open_server.client.get(f"{REGISTER}/available", params={"username": "bob"})

    assert response.status_code == 200
    assert response.json() == {"available": True}


@pytest.mark.parametrize(
    ("username", "errcode"),
    [("conduit", "M_USER_IN_USE"), ("alice", "M_USER_IN_USE"), ("bad name", "M_INVALID_USERNAME")],
)
async def test_available_refuses_taken_and_invalid_names(open_server, username, errcode):
    await register(open_server.client, "alice")

    response = await open_server.client.get(f"{REGISTER}/available", params={"username": username})

    assert response.status_code == 400
    assert response.json()["errcode"] == errcode


async def test_available_without_username_gets_m_missing_param(open_server):
    response = await open_server.client.get(f"{REGISTER}/available")

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_MISSING_PARAM"


# ---------------------------------------------------------------- what a new account gets


async def test_inhibit_login_registers_without_a_device_or_token(open_server):
    body = await register(open_server.client, "alice", inhibit_login=True)

    assert body == {"user_id": "@alice:localhost", "home_server": "localhost"}
    assert open_server.services.devices.device_ids("@alice:localhost") == []


async def test_client_chosen_device_id_and_display_name_are_used(open_server):
    body = await register(
        open_server.client, "alice", device_id="MYPHONE", initial_device_display_name="Phone"
    )

    assert body["device_id"] == "MYPHONE"
    device = await open_server.client.get(
        f"{CLIENT_API}/devices/MYPHONE", headers=bearer(body["access_token"])
    )
    assert device.json()["display_name"] == "Phone"


async def test_refresh_token_true_gets_a_refresh_token_and_lifetime(open_server):
    body = await register(open_server.client, "alice", refresh_token=True)

    assert isinstance(body["refresh_token"], str)
    assert body["expires_in_ms"] > 0


async def test_new_users_display_name_is_localpart_and_lightning_bolt(open_server):
    await register(open_server.client, "alice")

    response = await open_server.client.get(f"{CLIENT_API}/profile/@alice:localhost/displayname")

    assert response.json() == {"displayname": "alice ⚡️"}


async def test_without_lightning_bolt_display_name_is_the_localpart(nursery, tmp_path):
    config = make_config(tmp_path / "db", allow_registration=True, enable_lightning_bolt=False)
    async with serving(nursery, config) as server:
        await register(server.client, "alice")

        assert server.services.users.displayname("@alice:localhost") == "alice"


async def test_first_registered_user_becomes_admin_and_later_ones_do_not(open_server):
    first = await register(open_server.client, "alice")
    second = await register(open_server.client, "bob")

    users = open_server.services.users
    assert users.is_admin(first["user_id"])
    assert not users.is_admin(second["user_id"])
    assert users.first_user() == first["user_id"]


async def test_password_is_stored_as_argon2id_and_never_logged(open_server, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-passphrase-81"

    await register(open_server.client, "alice", password=secret)

    stored = open_server.services.db.tree("userid_password").get(b"@alice:localhost")
    assert stored.startswith(b"$argon2id$")
    assert secret.encode() not in stored
    assert secret not in caplog.text


# ---------------------------------------------------------------- registration tokens


async def test_token_server_offers_the_registration_token_flow(token_server):
    response = await token_server.client.post(REGISTER, json={"username": "alice", "password": "x"})

    assert response.status_code == 401
    assert response.json()["flows"] == [TOKEN_FLOW]


async def test_dummy_stage_is_not_enough_on_a_token_server(token_server):
    response = await token_server.client.post(
        REGISTER, json={"username": "alice", "password": "x", "auth": {"type": "m.login.dummy"}}
    )

    assert response.status_code == 401
    assert not token_server.services.users.exists("@alice:localhost")


async def test_wrong_registration_token_gets_401_with_flows_again(token_server):
    first = await token_server.client.post(REGISTER, json={"username": "alice", "password": "x"})
    session = first.json()["session"]

    response = await token_server.client.post(
        REGISTER,
        json={
            "username": "alice",
            "password": "x",
            "auth": {"type": "m.login.registration_token", "token": "guess", "session": session},
        },
    )

    assert response.status_code == 401
    body = response.json()
    assert body["errcode"] == "M_FORBIDDEN"
    assert body["flows"] == [TOKEN_FLOW]
    assert body["session"] == session
    assert not token_server.services.users.exists("@alice:localhost")


async def test_right_registration_token_then_dummy_registers(token_server):
    token_stage = await token_server.client.post(
        REGISTER,
        json={
            "username": "alice",
            "password": "x",
            "auth": {"type": "m.login.registration_token", "token": TOKEN},
        },
    )
    assert token_stage.status_code == 401
    assert token_stage.json()["completed"] == ["m.login.registration_token"]
    session = token_stage.json()["session"]

    response = await finish_alice_with_dummy(token_server, session)

    assert response.status_code == 200
    assert response.json()["user_id"] == "@alice:localhost"


@pytest.mark.parametrize(("token", "valid"), [(TOKEN, True), ("guess", False)])
async def test_token_validity_endpoint_checks_the_token(token_server, token, valid):
    response = await token_server.client.get(
        "/_matrix/client/v1/register/m.login.registration_token/validity", params={"token": token}
    )

    assert response.status_code == 200
    assert response.json() == {"valid": valid}


async def test_token_validity_on_a_closed_server_gets_403(server: TestServer):
    response = await server.client.get(
        "/_matrix/client/v1/register/m.login.registration_token/validity", params={"token": "x"}
    )

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"


# ---------------------------------------------------------------- guests


async def test_guest_registration_ignores_everything_but_the_device_name(open_server):
    response = await open_server.client.post(
        REGISTER,
        params={"kind": "guest"},
        json={
            "username": "alice",
            "password": "x",
            "device_id": "CHOSEN",
            "initial_device_display_name": "Guest tablet",
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] != "@alice:localhost"
    assert body["device_id"] != "CHOSEN"
    me = await whoami(open_server.client, body["access_token"])
    assert me.json()["is_guest"] is True
    device = open_server.services.devices.get(body["user_id"], body["device_id"])
    assert device.display_name == "Guest tablet"
    assert not open_server.services.users.is_admin(body["user_id"])


async def test_guests_cannot_register_where_a_token_is_required(token_server):
    response = await token_server.client.post(REGISTER, params={"kind": "guest"}, json={})

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"


async def test_guests_get_guest_access_forbidden_outside_their_endpoints(open_server):
    guest = (await open_server.client.post(REGISTER, params={"kind": "guest"}, json={})).json()

    response = await open_server.client.get(
        f"{CLIENT_API}/account/3pid", headers=bearer(guest["access_token"])
    )

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


async def test_a_guest_does_not_use_up_the_first_admin(open_server):
    await open_server.client.post(REGISTER, params={"kind": "guest"}, json={})

    alice = await register(open_server.client, "alice")

    assert open_server.services.users.is_admin(alice["user_id"])
