"""The request log: one line per request, and never a credential in it.

Spec: `content/client-server-api/_index.md`, "Using access tokens" (the
`access_token` query parameter, the Bearer header) and "Login" (the
password in the body); issue #17, "Observability". The lines are read from
the server's own logging records (caplog), as journald would get them.
"""

from __future__ import annotations

import logging

import pytest

from matrix_conduit.request_log import redacted_query
from tests.support.accounts import CLIENT_API, PASSWORD, bearer, log_in, register
from tests.support.probe import Probe
from tests.support.server import make_config, serving

LOGGER = "matrix_conduit.request_log"
SECRET_PASSWORD = "hunter2-never-in-the-log"
REGISTRATION_TOKEN = "registration-token-never-in-the-log"


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


async def test_each_request_is_one_info_line_with_method_path_status_user_and_client(
    nursery, tmp_path, caplog
) -> None:
    """Method, path with query, status, duration, the user and the client address."""
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        alice = await register(server.client, "alice")
        with caplog.at_level(logging.INFO, logger=LOGGER):
            response = await server.client.get(
                f"{CLIENT_API}/account/whoami?x=1", headers=bearer(alice["access_token"])
            )
            assert response.status_code == 200
            missing = await server.client.get(f"{CLIENT_API}/no/such/endpoint")
            assert missing.status_code == 404
    whoami, not_found = (record.getMessage() for record in request_lines(caplog))
    assert whoami.startswith(f"GET {CLIENT_API}/account/whoami?x=1 200 ")
    assert "ms user=@alice:localhost client=127.0.0.1" in whoami
    assert not_found.startswith(f"GET {CLIENT_API}/no/such/endpoint 404 ")
    assert not_found.endswith("user=- client=127.0.0.1")
    assert {record.levelno for record in request_lines(caplog)} == {logging.INFO}


async def test_tokens_and_passwords_never_reach_the_log(nursery, tmp_path, caplog) -> None:
    """Not the access token (header or `access_token=`), nor a password, nor a
    registration token in a query, at any level of any logger."""
    config = make_config(
        tmp_path / "db", allow_registration=True, registration_token=REGISTRATION_TOKEN
    )
    caplog.set_level(logging.DEBUG)
    async with serving(nursery, config) as server:
        body = {"username": "bob", "password": SECRET_PASSWORD}
        first = await server.client.post(f"{CLIENT_API}/register", json=body)
        auth = {
            "type": "m.login.registration_token",
            "token": REGISTRATION_TOKEN,
            "session": first.json()["session"],
        }
        await server.client.post(f"{CLIENT_API}/register", json={**body, "auth": auth})
        dummy = {"type": "m.login.dummy", "session": auth["session"]}
        registered = await server.client.post(
            f"{CLIENT_API}/register", json={**body, "auth": dummy}
        )
        assert registered.status_code == 200, registered.text
        token = registered.json()["access_token"]
        assert (await log_in(server.client, "bob", SECRET_PASSWORD)).status_code == 200
        assert (await log_in(server.client, "bob", PASSWORD)).status_code == 403
        whoami = await server.client.get(f"{CLIENT_API}/account/whoami?access_token={token}")
        assert whoami.status_code == 200
        await server.client.get(f"{CLIENT_API}/account/whoami", headers=bearer(token))
        validity = "/_matrix/client/v1/register/m.login.registration_token/validity"
        await server.client.get(f"{validity}?token={REGISTRATION_TOKEN}")
    lines = [record.getMessage() for record in request_lines(caplog)]
    assert any(
        "access_token=<redacted>" in line and "user=@bob:localhost" in line for line in lines
    )
    assert any("validity?token=<redacted>" in line for line in lines), lines
    # The server's records only: the test's own HTTP client (httpx) logs the URLs it asks.
    server_text = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if record.name.startswith(("matrix_conduit", "hypercorn", "quart"))
    )
    assert "matrix-conduit serving" in server_text
    for secret in (token, SECRET_PASSWORD, REGISTRATION_TOKEN):
        assert secret not in server_text


async def test_a_trusted_proxys_client_is_logged_by_its_forwarded_address(
    nursery, tmp_path, caplog
) -> None:
    """Behind a proxy in `trusted_proxies` the line names the client, not the proxy."""
    config = make_config(tmp_path / "db", trusted_proxies=["127.0.0.0/8"])
    async with serving(nursery, config) as server:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            await server.client.get(
                "/_matrix/client/versions", headers={"X-Forwarded-For": "203.0.113.9"}
            )
    (line,) = (record.getMessage() for record in request_lines(caplog))
    assert line.endswith("client=203.0.113.9")


async def test_a_crash_is_logged_at_error_with_a_traceback(
    nursery, tmp_path, caplog, probe: Probe
) -> None:
    """An unexpected exception: a traceback from the app, the request line at `error`."""
    async with serving(nursery, make_config(tmp_path / "db")) as server:
        with caplog.at_level(logging.INFO):
            response = await server.client.get("/_probe/crash")
    assert response.status_code == 500
    (line,) = request_lines(caplog)
    assert line.levelno == logging.ERROR
    assert line.getMessage().startswith("GET /_probe/crash 500 ")
    assert any(record.exc_info for record in caplog.records if record.levelno == logging.ERROR)
    assert "Traceback" in caplog.text


async def test_the_startup_line_is_info(nursery, tmp_path, caplog) -> None:
    """`matrix-conduit serving ...` is news, not a warning: `info`."""
    with caplog.at_level(logging.INFO, logger="matrix_conduit.server"):
        async with serving(nursery, make_config(tmp_path / "db")):
            pass
    (startup,) = [r for r in caplog.records if "matrix-conduit serving" in r.getMessage()]
    assert startup.levelno == logging.INFO


def test_secret_query_values_are_redacted_and_the_rest_kept() -> None:
    """Redaction keeps the parameter names (what was asked), drops only the values."""
    query = b"access_token=syt_abc&since=s12_3&loginToken=xyz&filter=%7B%7D"
    assert redacted_query(query) == (
        "access_token=<redacted>&since=s12_3&loginToken=<redacted>&filter=%7B%7D"
    )
