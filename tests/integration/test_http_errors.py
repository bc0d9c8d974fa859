"""Every failure reaches the client in the spec's error shape, with the right status.

Spec: `content/client-server-api/_index.md`, "Standard error response" and
"Common error codes": `{"errcode": ..., "error": ...}`; unknown endpoints and
methods are `M_UNRECOGNIZED`, unparseable bodies `M_NOT_JSON`, bodies of the
wrong shape `M_BAD_JSON`, oversized bodies `M_TOO_LARGE`.
"""

from __future__ import annotations

import logging

import pytest

from tests.support.probe import CRASH_DETAIL, Probe, shared_probe
from tests.support.shared_server import SharedServer, shared_server_fixtures

SMALL_LIMIT = 2048

probe = shared_probe()
running_server, server = shared_server_fixtures()
running_small_limit_server, small_limit_server = shared_server_fixtures(
    "small_limit_server", max_request_size=SMALL_LIMIT
)


def assert_matrix_error(response, status: int, errcode: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["errcode"] == errcode
    assert isinstance(body["error"], str) and body["error"]


async def test_unknown_path_is_404_unrecognized(server: SharedServer):
    response = await server.client.get("/_matrix/client/v3/no_such_endpoint")
    assert_matrix_error(response, 404, "M_UNRECOGNIZED")


async def test_wrong_method_is_405_unrecognized(server: SharedServer):
    response = await server.client.post("/_matrix/client/versions", json={})
    assert_matrix_error(response, 405, "M_UNRECOGNIZED")


@pytest.mark.parametrize(
    "body",
    [b"this is not json", b"{", b'{"a": NaN}', b"\xff\xfe{}", b""],
    ids=["text", "truncated", "nan", "not-utf8", "empty"],
)
async def test_body_that_is_not_json_is_400_not_json(server: SharedServer, body: bytes):
    response = await server.client.post("/_probe/json", content=body)
    assert_matrix_error(response, 400, "M_NOT_JSON")


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
async def test_json_of_the_wrong_shape_is_400_bad_json(server: SharedServer, body: bytes):
    response = await server.client.post("/_probe/json", content=body)
    assert_matrix_error(response, 400, "M_BAD_JSON")


async def test_a_json_object_body_reaches_the_handler(server: SharedServer):
    response = await server.client.post("/_probe/json", json={"ünïcode": [1, None]})
    assert response.status_code == 200
    assert response.json() == {"received": {"ünïcode": [1, None]}}


async def test_unexpected_exception_is_500_unknown_without_details_for_the_client(
    server: SharedServer, probe: Probe, caplog
):
    probe.calls.clear()
    with caplog.at_level(logging.ERROR, logger="matrix_conduit.app"):
        response = await server.client.get("/_probe/crash")

    assert_matrix_error(response, 500, "M_UNKNOWN")
    assert CRASH_DETAIL not in response.text
    assert "Traceback" not in response.text
    assert probe.calls == ["crash"]
    logged = [record for record in caplog.records if record.name == "matrix_conduit.app"]
    assert len(logged) == 1
    assert "/_probe/crash" in logged[0].getMessage()
    assert logged[0].exc_info is not None
    assert CRASH_DETAIL in caplog.text
    assert "Traceback" in caplog.text


def json_body_of_size(size: int) -> bytes:
    """A JSON object body of exactly `size` bytes."""
    frame = b'{"pad":""}'
    return frame[:-2] + b"x" * (size - len(frame)) + frame[-2:]


async def test_body_at_the_limit_is_accepted(small_limit_server: SharedServer):
    response = await small_limit_server.client.post(
        "/_probe/json", content=json_body_of_size(SMALL_LIMIT)
    )
    assert response.status_code == 200


async def test_body_over_the_limit_with_content_length_is_413_too_large(
    small_limit_server: SharedServer,
):
    body = json_body_of_size(SMALL_LIMIT + 1)
    response = await small_limit_server.client.post("/_probe/json", content=body)
    assert_matrix_error(response, 413, "M_TOO_LARGE")


async def test_chunked_body_over_the_limit_is_413_too_large(small_limit_server: SharedServer):
    async def chunks():
        body = json_body_of_size(SMALL_LIMIT * 4)
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = await small_limit_server.client.post("/_probe/json", content=chunks())
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_matrix_error(response, 413, "M_TOO_LARGE")


async def test_413_closes_the_connection_and_says_so_so_the_next_request_succeeds(
    small_limit_server: SharedServer,
):
    """The unread rest of an oversized body leaves the connection unusable: the answer
    carries `Connection: close`, so a keep-alive client opens a new one."""
    body = json_body_of_size(SMALL_LIMIT + 1)
    response = await small_limit_server.client.post("/_probe/json", content=body)
    assert_matrix_error(response, 413, "M_TOO_LARGE")
    assert response.headers["connection"] == "close"
    for _ in range(3):
        again = await small_limit_server.client.get("/_matrix/client/versions")
        assert again.status_code == 200
