"""Federation requests are rate limited per origin server, over real TLS between our servers.

Spec: `content/server-server-api.md` § Request Authentication (the origin is
the server whose X-Matrix signature holds) and
`content/client-server-api/_index.md` "Rate limiting" (429
`M_LIMIT_EXCEEDED`, `retry_after_ms`), the answer federation uses too.
The limit is `[global.rate_limits.federation]`; the refill is so slow that
no token comes back while the test runs.
"""

from __future__ import annotations

import httpx
import pytest

from matrix_conduit.service.federation.errors import RemoteError
from tests.support.accounts import bearer, register
from tests.support.federation import start_federating

PROFILE = "/_matrix/federation/v1/query/profile"
LIMITS = {"enabled": True, "federation": {"per_second": 0.001, "burst_count": 2}}


async def test_one_origins_requests_beyond_the_burst_get_429_and_others_are_served(
    nursery, ca, tmp_path
) -> None:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    c = await start_federating(nursery, ca, tmp_path / "c", "127.0.0.4")
    b = await start_federating(
        nursery, ca, tmp_path / "b", "127.0.0.3", allow_registration=True, rate_limits=LIMITS
    )
    bob = (await register(b.client, "bob"))["user_id"]
    query = {"user_id": bob}
    for _ in range(2):
        assert await a.federation.client.request(b.name, "GET", PROFILE, query=query)
    with pytest.raises(RemoteError) as refused:
        await a.federation.client.request(b.name, "GET", PROFILE, query=query)
    assert refused.value.status == 429
    assert refused.value.errcode == "M_LIMIT_EXCEEDED"
    assert await c.federation.client.request(b.name, "GET", PROFILE, query=query)


async def test_remote_joins_have_their_own_slower_limit(nursery, ca, tmp_path) -> None:
    """rc_joins.remote: joining a room this server is not in yet (a `send_join` away)
    charges `joins_remote`; a local room's join charges `joins_local` instead."""
    limits = {
        "enabled": True,
        "joins_remote": {"per_second": 0.001, "burst_count": 1},
        "joins_local": {"per_second": 0.001, "burst_count": 5},
    }
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2", allow_registration=True)
    b = await start_federating(
        nursery, ca, tmp_path / "b", "127.0.0.3", allow_registration=True, rate_limits=limits
    )
    alice = await register(a.client, "alice")
    rooms = []
    for _ in range(2):
        created = await a.client.post(
            "/_matrix/client/v3/createRoom",
            json={"preset": "public_chat"},
            headers=bearer(alice["access_token"]),
        )
        rooms.append(created.json()["room_id"])
    await register(b.client, "first")  # the first account is an admin, exempt
    bob = await register(b.client, "bob")
    carol = await register(b.client, "carol")

    async def join(user: dict, room_id: str) -> httpx.Response:
        return await b.client.post(
            f"/_matrix/client/v3/join/{room_id}",
            params={"via": a.name},
            json={},
            headers=bearer(user["access_token"]),
        )

    assert (await join(bob, rooms[0])).status_code == 200
    refused = await join(bob, rooms[1])
    assert refused.status_code == 429, refused.text
    assert refused.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert int(refused.headers["Retry-After"]) >= 1
    # Carol spends her one remote join; the first room is local now (bob is in it), so
    # joining it is a local join, still allowed.
    assert (await join(carol, rooms[1])).status_code == 200
    assert (await join(carol, rooms[0])).status_code == 200
