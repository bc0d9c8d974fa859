"""Backoff for a peer that is down: stored, kept across a restart, lifted when it calls.

Spec: `content/server-server-api.md` leaves retry policy to servers; this is
the behaviour `../shared/notes/federation-lessons.md` describes (Synapse
persists backoff per destination and clears it when the remote contacts us),
over § Request Authentication (the peer's signed request is what lifts it).
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.federation.errors import NotReadyForRetry, RemoteError, Unreachable
from tests.support.federation import ECHO_PATH, restart, serve_https, start_federating


async def test_a_peer_that_is_down_is_backed_off_across_a_restart_until_it_contacts_us(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    await b.stop()

    with pytest.raises(Unreachable):
        await a.federation.client.request(b.name, "GET", ECHO_PATH)
    with pytest.raises(NotReadyForRetry):
        await a.federation.client.request(b.name, "GET", ECHO_PATH)
    await a.stop()
    a = await restart(nursery, a)

    assert a.federation.destinations.backoff(b.name).failures == 1
    with pytest.raises(NotReadyForRetry):
        await a.federation.client.request(b.name, "GET", ECHO_PATH)

    b = await restart(nursery, b)
    with pytest.raises(NotReadyForRetry):  # B being up is not enough: A does not know yet
        await a.federation.client.request(b.name, "GET", ECHO_PATH)
    assert await b.federation.client.request(a.name, "GET", ECHO_PATH) == {
        "origin": b.name,
        "content": None,
    }

    assert a.federation.destinations.backoff(b.name) is None
    answer = await a.federation.client.request(b.name, "GET", ECHO_PATH)
    assert answer["origin"] == a.name


async def test_an_error_answer_from_a_peer_that_is_up_does_not_back_it_off(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")

    with pytest.raises(RemoteError) as raised:
        await a.federation.client.request(b.name, "GET", "/_matrix/federation/v1/nothing")

    assert (raised.value.status, raised.value.errcode) == (404, "M_UNRECOGNIZED")
    assert a.federation.destinations.backoff(b.name) is None


async def test_a_server_error_answer_backs_the_peer_off(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")

    async def failing_peer(method: str, path: str, body: object) -> tuple[int, object]:
        return 502, {"errcode": "M_UNKNOWN", "error": "bad gateway"}

    peer = await serve_https(nursery, ca, "127.0.0.11", failing_peer)

    with pytest.raises(RemoteError) as raised:
        await a.federation.client.request(peer, "GET", ECHO_PATH)

    assert (raised.value.status, raised.value.error) == (502, "bad gateway")
    assert a.federation.destinations.backoff(peer).failures == 1
