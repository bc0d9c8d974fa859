"""The server listens on the configured IPv4 or IPv6 address (`address`, `port`)."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.support.server import make_config, serving


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("address", "url_host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        pytest.param(
            "::1",
            "[::1]",
            marks=pytest.mark.skipif(
                not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)"
            ),
        ),
    ],
)
async def test_server_answers_on_the_configured_address(
    nursery, tmp_path, address: str, url_host: str
):
    config = make_config(tmp_path / "db", address=address)
    async with serving(nursery, config) as server:
        assert server.base_url == f"http://{url_host}:{server.config.port}"
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            response = await client.get("/_matrix/client/versions")
    assert response.status_code == 200


async def test_test_server_moves_to_another_port_when_its_port_was_taken(nursery, tmp_path):
    """`free_port` cannot reserve a port; the test helper copes when another process wins."""
    config = make_config(tmp_path / "db")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", config.port))
        squatter.listen()
        async with serving(nursery, config) as server:
            response = await server.client.get("/_matrix/client/versions")

    assert server.config.port != config.port
    assert response.status_code == 200
