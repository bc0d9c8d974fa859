"""CORS headers on every response, and OPTIONS preflight that runs no endpoint logic.

Spec: `content/client-server-api/_index.md`, "Web Browser Clients": servers
answer pre-flight requests and send the recommended CORS headers on all
requests; for OPTIONS they "MUST NOT perform any logic defined for the
endpoints".
"""

from __future__ import annotations

import pytest

from tests.support.probe import Probe, shared_probe
from tests.support.shared_server import SharedServer, shared_server_fixtures

SPEC_CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
    "access-control-allow-headers": "X-Requested-With, Content-Type, Authorization",
}

probe = shared_probe()
running_server, server = shared_server_fixtures()


def assert_cors_headers(response) -> None:
    assert {name: response.headers.get(name) for name in SPEC_CORS_HEADERS} == SPEC_CORS_HEADERS


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/_matrix/client/versions", None, 200),
        ("GET", "/.well-known/matrix/client", None, 200),
        ("GET", "/_matrix/federation/v1/version", None, 403),  # federation is off here
        ("GET", "/_matrix/client/v3/unknown", None, 404),
        ("DELETE", "/_matrix/client/versions", None, 405),
        ("POST", "/_probe/json", b"not json", 400),
        ("POST", "/_probe/json", b"[]", 400),
        ("GET", "/_probe/crash", None, 500),
    ],
)
async def test_every_response_carries_the_cors_headers(
    server: SharedServer, method: str, path: str, body: bytes | None, status: int
):
    response = await server.client.request(method, path, content=body)
    assert response.status_code == status
    assert_cors_headers(response)


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/versions",
        "/_probe/json",
        "/_probe/crash",
        "/_matrix/client/v3/rooms/!room:localhost/send/m.room.message/txn1",
        "/anything/at/all",
    ],
)
async def test_preflight_on_any_path_gets_cors_headers_and_runs_no_endpoint(
    server: SharedServer, probe: Probe, path: str
):
    probe.calls.clear()
    response = await server.client.options(
        path,
        headers={
            "Origin": "https://app.element.io",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert_cors_headers(response)
    assert probe.calls == []
