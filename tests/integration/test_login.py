"""Login, access tokens, logout and refresh over HTTP.

Spec: `content/client-server-api/_index.md` ("Using access tokens",
"Relationship between access tokens and devices", "Refreshing access
tokens", "Soft logout", "Login", "Identifier types"),
`data/api/client-server/login.yaml`, `logout.yaml`, `refresh.yaml`,
`whoami.yaml`. JWT login follows Conduit (`org.matrix.login.jwt` and
`m.login.token` with an HS256 token whose `sub` is the localpart).
"""

from __future__ import annotations

import hashlib
import time

import jwt
import pytest
import trio

from tests.support.accounts import CLIENT_API, PASSWORD, bearer, log_in, register, whoami
from tests.support.server import TestServer, make_config, serving

LOGIN = f"{CLIENT_API}/login"
JWT_SECRET = "jwt-secret-for-the-login-tests-0123456789"


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


@pytest.fixture
async def alice(open_server) -> dict:
    return await register(open_server.client, "alice")


@pytest.fixture
async def jwt_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", jwt_secret=JWT_SECRET)) as server:
        yield server


def jwt_token(sub: str, *, secret: str = JWT_SECRET, lifetime: int | None = 60) -> str:
    claims: dict = {"sub": sub}
    if lifetime is not None:
        claims["exp"] = int(time.time()) + lifetime
    return jwt.encode(claims, secret, algorithm="HS256")


# ---------------------------------------------------------------- GET /login


async def test_get_login_offers_only_password_without_jwt(server: TestServer):
    response = await server.client.get(LOGIN)

    assert response.status_code == 200
    assert response.json() == {"flows": [{"type": "m.login.password"}]}


async def test_get_login_offers_the_jwt_types_when_configured(jwt_server):
    response = await jwt_server.client.get(LOGIN)

    assert response.json() == {
        "flows": [
            {"type": "m.login.password"},
            {"type": "org.matrix.login.jwt"},
            {"type": "m.login.token"},
        ]
    }


async def test_versions_advertise_r0_and_v1_versions(server: TestServer):
    versions = (await server.client.get("/_matrix/client/versions")).json()["versions"]

    assert {"r0.6.1", "v1.1", "v1.2", "v1.3"} <= set(versions)


# ---------------------------------------------------------------- password login


@pytest.mark.parametrize("user", ["alice", "ALICE", "@alice:localhost", "@Alice:localhost"])
async def test_password_login_by_localpart_or_user_id_in_any_case(open_server, alice, user):
    response = await log_in(open_server.client, user)

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "@alice:localhost"
    assert body["device_id"] != alice["device_id"]
    assert (await whoami(open_server.client, body["access_token"])).status_code == 200


async def test_password_login_with_the_legacy_user_field(open_server, alice):
    response = await open_server.client.post(
        LOGIN, json={"type": "m.login.password", "user": "alice", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert response.json()["user_id"] == "@alice:localhost"


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong"), ("nobody", PASSWORD), ("@alice:elsewhere.org", PASSWORD)],
)
async def test_wrong_credentials_get_403_m_forbidden_without_saying_which(
    open_server, alice, user, password
):
    response = await log_in(open_server.client, user, password)

    assert response.status_code == 403
    assert response.json() == {"errcode": "M_FORBIDDEN", "error": "Wrong user name or password."}


async def test_third_party_identifier_gets_403(open_server, alice):
    response = await open_server.client.post(
        LOGIN,
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"},
            "password": PASSWORD,
        },
    )

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"


async def test_missing_password_gets_400_m_missing_param(open_server, alice):
    response = await open_server.client.post(
        LOGIN, json={"type": "m.login.password", "user": "alice"}
    )

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_MISSING_PARAM"


async def test_unknown_login_type_gets_400(open_server):
    response = await open_server.client.post(LOGIN, json={"type": "m.login.sso"})

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_UNKNOWN"


async def test_login_to_a_known_device_replaces_its_token(open_server, alice):
    old_token = alice["access_token"]

    response = await log_in(open_server.client, "alice", device_id=alice["device_id"])

    assert response.json()["device_id"] == alice["device_id"]
    assert (await whoami(open_server.client, old_token)).status_code == 401
    assert (await whoami(open_server.client, response.json()["access_token"])).status_code == 200


async def test_login_device_display_name_is_kept(open_server, alice):
    body = (await log_in(open_server.client, "alice", initial_device_display_name="Laptop")).json()

    assert open_server.services.devices.get(body["user_id"], body["device_id"]).display_name == (
        "Laptop"
    )


# ---------------------------------------------------------------- JWT login


@pytest.mark.parametrize("login_type", ["org.matrix.login.jwt", "m.login.token"])
async def test_jwt_login_logs_in_and_creates_the_user(jwt_server, login_type):
    response = await jwt_server.client.post(
        LOGIN, json={"type": login_type, "token": jwt_token("Carol")}
    )

    assert response.status_code == 200
    assert response.json()["user_id"] == "@carol:localhost"
    me = await whoami(jwt_server.client, response.json()["access_token"])
    assert me.json()["user_id"] == "@carol:localhost"


@pytest.mark.parametrize(
    "token",
    [
        jwt_token("carol", secret="not-the-secret-but-just-as-long-0123456789"),
        jwt_token("carol", lifetime=-60),
        jwt_token("carol", lifetime=None),
        jwt_token("not a localpart"),
        "not.a.jwt",
    ],
    ids=["wrong-secret", "expired", "no-exp", "bad-sub", "garbage"],
)
async def test_invalid_jwt_gets_403_m_forbidden(jwt_server, token):
    response = await jwt_server.client.post(
        LOGIN, json={"type": "org.matrix.login.jwt", "token": token}
    )

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"


async def test_jwt_login_without_jwt_secret_gets_400_saying_it_is_not_configured(server):
    response = await server.client.post(
        LOGIN, json={"type": "org.matrix.login.jwt", "token": jwt_token("carol")}
    )

    assert response.status_code == 400
    assert "jwt_secret" in response.json()["error"]


# ---------------------------------------------------------------- emergency password


async def test_emergency_password_logs_in_as_the_server_user_until_removed(tmp_path):
    with_password = make_config(tmp_path / "db", emergency_password="break-glass-42")
    without_password = make_config(tmp_path / "db")
    async with trio.open_nursery() as nursery, serving(nursery, with_password) as server:
        response = await log_in(server.client, "conduit", "break-glass-42")
        assert response.status_code == 200
        assert response.json()["user_id"] == "@conduit:localhost"
        token = response.json()["access_token"]

    async with trio.open_nursery() as nursery, serving(nursery, without_password) as server:
        login_again = await log_in(server.client, "conduit", "break-glass-42")
        old_session = await whoami(server.client, token)

    assert login_again.status_code == 403
    assert old_session.status_code == 401


# ---------------------------------------------------------------- access tokens


async def test_missing_token_gets_401_m_missing_token(server: TestServer):
    response = await server.client.get(f"{CLIENT_API}/account/whoami")

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_MISSING_TOKEN"


async def test_non_bearer_authorization_gets_401_m_missing_token(server: TestServer):
    response = await server.client.get(
        f"{CLIENT_API}/account/whoami", headers={"Authorization": "Basic YWxpY2U6cHc="}
    )

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_MISSING_TOKEN"


async def test_unknown_token_gets_401_m_unknown_token_without_soft_logout(server: TestServer):
    response = await whoami(server.client, "made-up-token")

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert response.json()["soft_logout"] is False


async def test_access_token_query_parameter_is_accepted(open_server, alice):
    response = await open_server.client.get(
        f"{CLIENT_API}/account/whoami", params={"access_token": alice["access_token"]}
    )

    assert response.status_code == 200
    assert response.json()["user_id"] == "@alice:localhost"


async def test_only_a_hash_of_each_access_token_is_stored(open_server, alice):
    token = alice["access_token"]
    tree = open_server.services.db.tree("accesstokenhash_session")

    keys = list(tree.keys_with_prefix())

    assert hashlib.sha256(token.encode()).hexdigest().encode() in keys
    assert all(token.encode() not in key + value for key, value in tree.iter_prefix())


async def test_requests_update_the_devices_last_seen(open_server, alice):
    await whoami(open_server.client, alice["access_token"])

    device = open_server.services.devices.get("@alice:localhost", alice["device_id"])

    assert device.last_seen_ip == "127.0.0.1"
    assert device.last_seen_ts is not None


# ---------------------------------------------------------------- logout


async def test_logout_ends_the_token_and_deletes_the_device(open_server, alice):
    other = (await log_in(open_server.client, "alice")).json()

    response = await open_server.client.post(
        f"{CLIENT_API}/logout", headers=bearer(alice["access_token"])
    )

    assert response.status_code == 200
    assert response.json() == {}
    assert (await whoami(open_server.client, alice["access_token"])).status_code == 401
    assert (await whoami(open_server.client, other["access_token"])).status_code == 200
    assert open_server.services.devices.device_ids("@alice:localhost") == [other["device_id"]]


async def test_logout_all_ends_every_token(open_server, alice):
    other = (await log_in(open_server.client, "alice")).json()

    response = await open_server.client.post(
        f"{CLIENT_API}/logout/all", headers=bearer(alice["access_token"])
    )

    assert response.status_code == 200
    for token in (alice["access_token"], other["access_token"]):
        assert (await whoami(open_server.client, token)).status_code == 401
    assert open_server.services.devices.device_ids("@alice:localhost") == []


# ---------------------------------------------------------------- refresh


async def refresh(server: TestServer, refresh_token: str):
    return await server.client.post(f"{CLIENT_API}/refresh", json={"refresh_token": refresh_token})


async def test_login_without_refresh_token_gets_a_token_that_does_not_expire(open_server, alice):
    body = (await log_in(open_server.client, "alice")).json()

    assert "expires_in_ms" not in body and "refresh_token" not in body


async def test_refresh_gives_new_tokens_for_the_same_device(open_server, alice):
    login = (await log_in(open_server.client, "alice", refresh_token=True)).json()

    response = await refresh(open_server, login["refresh_token"])

    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] != login["access_token"]
    assert body["refresh_token"] != login["refresh_token"]
    assert body["expires_in_ms"] > 0
    me = await whoami(open_server.client, body["access_token"])
    assert me.json()["device_id"] == login["device_id"]
    assert (await whoami(open_server.client, login["access_token"])).status_code == 401


async def test_expired_access_token_gets_401_with_soft_logout(open_server, alice):
    open_server.services.devices.access_token_lifetime_ms = 0
    login = (await log_in(open_server.client, "alice", refresh_token=True)).json()

    response = await whoami(open_server.client, login["access_token"])

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert response.json()["soft_logout"] is True


async def test_old_refresh_token_works_until_the_new_access_token_is_used(open_server, alice):
    login = (await log_in(open_server.client, "alice", refresh_token=True)).json()
    lost_answer = (await refresh(open_server, login["refresh_token"])).json()

    repeated = await refresh(open_server, login["refresh_token"])
    assert repeated.status_code == 200
    new_tokens = repeated.json()
    assert (await whoami(open_server.client, lost_answer["access_token"])).status_code == 401
    assert (await refresh(open_server, lost_answer["refresh_token"])).status_code == 401

    assert (await whoami(open_server.client, new_tokens["access_token"])).status_code == 200
    assert (await refresh(open_server, login["refresh_token"])).status_code == 401
    assert (await refresh(open_server, new_tokens["refresh_token"])).status_code == 200


async def test_unknown_refresh_token_gets_401_m_unknown_token(server: TestServer):
    response = await refresh(server, "made-up")

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_logout_ends_the_refresh_token_too(open_server, alice):
    login = (await log_in(open_server.client, "alice", refresh_token=True)).json()

    await open_server.client.post(f"{CLIENT_API}/logout", headers=bearer(login["access_token"]))

    assert (await refresh(open_server, login["refresh_token"])).status_code == 401
