"""The Synapse harness itself: a Synapse of the test's own, trusting the test's `ca`.

For tests that must stop or restart the peer (the module's `synapse` is
shared, so those use `running_synapse` with the ordinary `ca` fixture).
Spec: `content/server-server-api.md` § Retrieving server keys (a server's
key stays the same across a restart) and § Querying for information
(`/query/profile`, the signed request made here after the restart).
"""

from __future__ import annotations

import httpx

from tests.support.federation import start_federating
from tests.support.synapse import Synapse, running_synapse


async def _published_keys(synapse: Synapse) -> dict:
    async with httpx.AsyncClient(verify=synapse.tls_context(), timeout=60) as client:
        response = await client.get(f"{synapse.federation_url}/_matrix/key/v2/server")
    assert response.status_code == 200, response.text
    return response.json()["verify_keys"]


async def test_a_restarted_synapse_keeps_its_users_and_key_and_answers_us(nursery, ca, tmp_path):
    with running_synapse(ca, tmp_path / "synapse") as synapse:
        alice = await synapse.register_async(displayname="Alice")
        keys = await _published_keys(synapse)
        us = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")

        await synapse.restart_async()

        assert await _published_keys(synapse) == keys
        async with synapse.client(alice) as client:
            whoami = await client.get("/_matrix/client/v3/account/whoami")
        assert whoami.json()["user_id"] == alice.user_id
        profile = await us.federation.client.request(
            synapse.server_name,
            "GET",
            "/_matrix/federation/v1/query/profile",
            query={"user_id": alice.user_id},
        )
        assert profile["displayname"] == "Alice"
    assert synapse.process.poll() is not None, "stopped at the end of the block"
