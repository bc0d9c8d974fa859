"""Signed federation requests between two of our servers, and the 401s for bad ones.

Spec: `content/server-server-api.md` § Request Authentication (the signed
JSON of method, URI, origin, destination and content; the `X-Matrix`
header; 401 `M_UNAUTHORIZED` otherwise), § Resolving server names step 1
(IP literal with port), § TLS.
"""

from __future__ import annotations

import functools
import json

import pytest
import trio

from matrix_conduit.core.signing import build_x_matrix_header, sign_request
from matrix_conduit.service.federation.errors import FederationDisabled
from tests.support.federation import ECHO_PATH, FederatingServer, start_federating


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def test_a_signed_request_from_one_server_to_another_is_accepted(pair):
    a, b = pair

    answer = await a.federation.client.request(
        b.name, "PUT", ECHO_PATH, query={"n": "1"}, body={"hello": "b"}
    )

    assert answer == {"origin": a.name, "content": {"hello": "b"}}


async def test_a_path_and_query_are_signed_as_they_are_sent(pair):
    a, b = pair

    answer = await a.federation.client.request(
        b.name, "GET", f"{ECHO_PATH}/%21room%3Aserver é", query={"q": "ü&x", "n": ["1", "2"]}
    )

    assert answer == {"origin": a.name, "content": None, "segment": "!room:server é"}


def _header(sender: FederatingServer, destination: str, method: str, uri: str, body) -> str:
    globals_ = sender.server.services.globals
    return sign_request(method, uri, sender.name, destination, body, globals_.signing_key)


def _with_signature(header: str, signature: str) -> str:
    return header.rsplit('sig="', 1)[0] + f'sig="{signature}"'


async def _put_echo(b: FederatingServer, body: dict, authorization: str | None):
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return await b.client.put(ECHO_PATH, content=json.dumps(body), headers=headers)


def _unauthorized_message(response) -> str:
    assert response.status_code == 401, response.text
    assert response.json()["errcode"] == "M_UNAUTHORIZED"
    return response.json()["error"]


async def test_a_request_without_a_signature_is_401(pair):
    _, b = pair

    response = await _put_echo(b, {"x": 1}, None)

    assert "Missing Authorization: X-Matrix" in _unauthorized_message(response)


async def test_a_request_whose_signature_does_not_cover_its_body_is_401(pair):
    a, b = pair
    header = _header(a, b.name, "PUT", ECHO_PATH, {"x": 1})

    response = await _put_echo(b, {"x": 2}, header)

    message = _unauthorized_message(response)
    assert "signature" in message and a.name in message and "does not verify" in message


async def test_a_request_with_a_garbled_signature_is_401(pair):
    a, b = pair
    header = _with_signature(_header(a, b.name, "PUT", ECHO_PATH, {"x": 1}), "AAAA")

    response = await _put_echo(b, {"x": 1}, header)

    assert "does not verify" in _unauthorized_message(response)


async def test_a_request_addressed_to_another_server_is_401(pair):
    a, b = pair
    header = _header(a, "elsewhere.example", "PUT", ECHO_PATH, {"x": 1})

    response = await _put_echo(b, {"x": 1}, header)

    message = _unauthorized_message(response)
    assert "destination is elsewhere.example" in message and b.name in message


async def test_a_request_signed_with_an_unknown_key_is_401(pair):
    a, b = pair
    good = _header(a, b.name, "PUT", ECHO_PATH, {"x": 1})
    signature = good.rsplit('sig="', 1)[1].rstrip('"')
    header = build_x_matrix_header(a.name, b.name, "ed25519:unknown", signature)

    response = await _put_echo(b, {"x": 1}, header)

    assert f"Unknown key ed25519:unknown of {a.name}" in _unauthorized_message(response)


async def test_a_malformed_authorization_header_is_401(pair):
    _, b = pair

    response = await _put_echo(b, {"x": 1}, 'X-Matrix origin="a.example"')

    assert "Invalid X-Matrix Authorization header" in _unauthorized_message(response)


async def test_with_federation_disabled_every_federation_endpoint_is_403_and_nothing_goes_out(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2", allow_federation=False)
    connections = 0

    async def count(stream: trio.abc.Stream) -> None:
        nonlocal connections
        connections += 1
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, count, 0, host="127.0.0.5"))
    peer = f"127.0.0.5:{listeners[0].socket.getsockname()[1]}"

    responses = [
        await a.client.get("/_matrix/key/v2/server"),
        await a.client.get(f"/_matrix/key/v2/query/{peer}"),
        await a.client.post("/_matrix/key/v2/query", json={"server_keys": {peer: {}}}),
        await a.client.put(ECHO_PATH, json={}),
    ]
    with pytest.raises(FederationDisabled):
        await a.federation.client.request(peer, "GET", "/_matrix/federation/v1/version")
    keys = await a.federation.key_ring.verify_keys_for(peer, ["ed25519:x"], 0)

    assert [response.status_code for response in responses] == [403] * 4
    assert {response.json()["errcode"] for response in responses} == {"M_FORBIDDEN"}
    assert "Federation is disabled" in responses[0].json()["error"]
    assert keys == {}
    assert connections == 0
