"""Server keys and signed requests between our server and a real Synapse, over TLS.

Synapse is `matrix-synapse` from PyPI (`requirements-synapse.txt`), run by
`tests/support/synapse.py` on its own 127.0.0.x address with an IP-literal
server name; both sides trust the test's CA and nothing else.

Spec: `content/server-server-api.md` § Retrieving server keys (Publishing
Keys: `GET /_matrix/key/v2/server`; Querying Keys Through Another Server:
`POST /_matrix/key/v2/query`, whose answers carry the origin's signature
and the notary's), § Request Authentication (X-Matrix, checked with keys
fetched from the origin), § Resolving server names (step 1: an IP literal
with a port), § TLS, and § Querying for information (`/query/profile`,
the request each side makes of the other here).
"""

from __future__ import annotations

import httpx
import pytest

from matrix_conduit.core.server_keys import parse_server_keys
from matrix_conduit.core.signing import verify_json
from matrix_conduit.service.clock import now_ms
from matrix_conduit.service.federation.errors import RemoteError
from tests.support.accounts import bearer, register
from tests.support.federation import FederatingServer, start_federating
from tests.support.synapse import Synapse

HOUR_MS = 3600 * 1000
PROFILE = "/_matrix/federation/v1/query/profile"


@pytest.fixture
async def us(nursery, synapse: Synapse, tmp_path) -> FederatingServer:
    """One of our servers, with a certificate from the CA Synapse trusts."""
    return await start_federating(
        nursery, synapse.ca, tmp_path / "us", "127.0.0.2", allow_registration=True
    )


async def _synapse_federation(
    synapse: Synapse, method: str, path: str, **options
) -> httpx.Response:
    """An unsigned request to Synapse's TLS federation listener (the key API is unsigned)."""
    async with httpx.AsyncClient(verify=synapse.tls_context(), timeout=60) as client:
        return await client.request(method, synapse.federation_url + path, **options)


async def _synapse_keys(synapse: Synapse) -> dict:
    response = await _synapse_federation(synapse, "GET", "/_matrix/key/v2/server")
    assert response.status_code == 200, response.text
    return response.json()


async def test_our_key_ring_fetches_synapses_keys_directly(us, synapse):
    published = await _synapse_keys(synapse)
    (key,) = parse_server_keys(published, synapse.server_name)

    keys = await us.federation.key_ring.verify_keys_for(synapse.server_name, [key.key_id], now_ms())
    await us.federation.key_ring.verify_signed_json(published, synapse.server_name, now_ms())

    assert keys.keys() == {key.key_id}
    assert bytes(keys[key.key_id]) == bytes(key.verify_key)
    (cached,) = us.federation.key_ring.cached_documents(synapse.server_name)
    assert cached["verify_keys"] == published["verify_keys"]
    assert set(cached["signatures"]) == {synapse.server_name}, "directly: no notary signed it"


async def test_synapses_notary_fetches_our_keys_and_signs_them(us, synapse):
    our_key_id = us.server.services.globals.signing_key_id
    (synapse_key,) = parse_server_keys(await _synapse_keys(synapse), synapse.server_name)

    response = await _synapse_federation(
        synapse,
        "POST",
        "/_matrix/key/v2/query",
        json={"server_keys": {us.name: {our_key_id: {"minimum_valid_until_ts": now_ms()}}}},
    )

    assert response.status_code == 200, response.text
    (document,) = response.json()["server_keys"]
    assert document["server_name"] == us.name
    assert set(document["verify_keys"]) == {our_key_id}
    assert set(document["signatures"]) == {us.name, synapse.server_name}
    parse_server_keys(document, us.name)  # our self-signature, intact
    verify_json(document, synapse.server_name, synapse_key.key_id, synapse_key.verify_key)


async def test_our_notary_fetches_synapses_keys_and_signs_them(us, synapse):
    published = await _synapse_keys(synapse)

    response = await us.client.post(
        "/_matrix/key/v2/query",
        json={"server_keys": {synapse.server_name: {}}},
    )

    assert response.status_code == 200, response.text
    (document,) = response.json()["server_keys"]
    assert document["verify_keys"] == published["verify_keys"]
    assert set(document["signatures"]) == {synapse.server_name, us.name}
    parse_server_keys(document, synapse.server_name)
    globals_ = us.server.services.globals
    verify_json(document, us.name, globals_.signing_key_id, globals_.signing_key.verify_key)


async def test_synapse_accepts_a_request_signed_by_us(us, synapse):
    alice = await synapse.register_async(displayname="Alice")

    answer = await us.federation.client.request(
        synapse.server_name, "GET", PROFILE, query={"user_id": alice.user_id}
    )

    assert answer["displayname"] == "Alice"


async def test_synapse_refuses_the_same_request_unsigned(synapse):
    alice = await synapse.register_async(displayname="Alice")

    response = await _synapse_federation(synapse, "GET", PROFILE, params={"user_id": alice.user_id})

    assert response.status_code == 401, response.text


async def test_a_request_signed_by_synapse_passes_our_gate(us, synapse):
    """Synapse's client API asks us, over signed federation, for our user's profile."""
    account = await register(us.client, "xavier")
    xavier = account["user_id"]
    put = await us.client.put(
        f"/_matrix/client/v3/profile/{xavier}/displayname",
        json={"displayname": "Xavier"},
        headers=bearer(account["access_token"]),
    )
    assert put.status_code == 200, put.text
    watcher = await synapse.register_async()

    async with synapse.client(watcher) as client:
        profile = await client.get(f"/_matrix/client/v3/profile/{xavier}")

    assert profile.status_code == 200, profile.text
    assert profile.json()["displayname"] == "Xavier"
    # Our gate verified Synapse's X-Matrix signature with a key fetched from Synapse.
    (cached,) = us.federation.key_ring.cached_documents(synapse.server_name)
    assert set(cached["signatures"]) == {synapse.server_name}


async def test_synapse_gets_our_404_for_an_unknown_user(us, synapse):
    watcher = await synapse.register_async()

    async with synapse.client(watcher) as client:
        profile = await client.get(f"/_matrix/client/v3/profile/@nobody:{us.name}")

    assert profile.status_code == 404, profile.text


async def test_our_request_for_an_unknown_synapse_user_is_404(us, synapse):
    with pytest.raises(RemoteError) as error:
        await us.federation.client.request(
            synapse.server_name, "GET", PROFILE, query={"user_id": synapse.user_id("nobody")}
        )

    assert error.value.status == 404


async def test_synapse_reaches_nothing_beyond_loopback(synapse):
    """The harness's guard: asked for a server outside 127.0.0.0/8, Synapse does not connect."""
    outside = "192.0.2.1:8448"  # TEST-NET-1, outside loopback
    since = synapse.log_size()

    response = await _synapse_federation(
        synapse,
        "POST",
        "/_matrix/key/v2/query",
        json={"server_keys": {outside: {"ed25519:a": {"minimum_valid_until_ts": now_ms()}}}},
    )

    assert response.status_code == 200, response.text
    assert response.json()["server_keys"] == []
    assert "Blocking access to 192.0.2.1" in synapse.log(since)
