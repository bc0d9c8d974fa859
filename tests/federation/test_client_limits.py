"""What the federation client refuses to do: oversized answers, denied addresses, itself.

Spec: `content/server-server-api.md` § Resolving server names (step 1, IP
literals) and § Request Authentication; the limits themselves are the
server's (`federation_ip_range_denylist`/`_allowlist`, response size).
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.federation.errors import DestinationForbidden, Unreachable
from tests.support.federation import ECHO_PATH, serve_connect_proxy, start_federating


async def test_an_answer_larger_than_the_limit_is_not_read(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")

    with pytest.raises(Unreachable, match=r"larger than 100 bytes|over 100"):
        await a.federation.client.request(b.name, "GET", "/_matrix/key/v2/server", max_bytes=100)


async def test_an_address_outside_the_allowlist_is_refused_without_backoff(nursery, ca, tmp_path):
    a = await start_federating(
        nursery, ca, tmp_path / "a", "127.0.0.2", federation_ip_range_allowlist=[]
    )
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")

    with pytest.raises(DestinationForbidden, match="federation_ip_range_denylist"):
        await a.federation.client.request(b.name, "GET", ECHO_PATH)

    assert a.federation.destinations.backoff(b.name) is None


async def test_a_server_does_not_send_requests_to_itself(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")

    with pytest.raises(DestinationForbidden, match="is this server"):
        await a.federation.client.request(a.name, "GET", ECHO_PATH)


async def test_requests_go_through_the_configured_proxy(nursery, ca, tmp_path):
    proxy_url, proxied = await serve_connect_proxy(nursery, "127.0.0.10")
    # No allowlist: only the proxy can reach B, and it decides where connections go.
    a = await start_federating(
        nursery,
        ca,
        tmp_path / "a",
        "127.0.0.2",
        federation_ip_range_allowlist=[],
        proxy={"global": {"url": proxy_url}},
    )
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")

    answer = await a.federation.client.request(b.name, "GET", ECHO_PATH)

    assert answer["origin"] == a.name
    assert proxied == [f"CONNECT {b.name}"]


async def test_a_proxy_by_domain_applies_only_to_the_domains_it_includes(nursery, ca, tmp_path):
    proxy_url, proxied = await serve_connect_proxy(nursery, "127.0.0.10")
    a = await start_federating(
        nursery,
        ca,
        tmp_path / "a",
        "127.0.0.2",
        proxy={"by_domain": [{"url": proxy_url, "include": ["*.onion"]}]},
    )
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")

    answer = await a.federation.client.request(b.name, "GET", ECHO_PATH)

    assert answer["origin"] == a.name
    assert proxied == []
