"""HTTPS when `[global.tls]` is set: the server speaks TLS with the configured certificate.

The certificate comes from a throwaway CA (trustme), so the client can check
the chain and the host name exactly as a real client would.
"""

from __future__ import annotations

import ssl

import httpx
import pytest
import trustme

from matrix_conduit.server import StartupError
from tests.support.server import TestServer, make_config, serving, start_server


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(certificate_authority: trustme.CA, nursery, tmp_path) -> TestServer:
    certificate = certificate_authority.issue_cert("127.0.0.1", "localhost")
    certs, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    certificate.private_key_pem.write_to_path(str(key))
    certificate.cert_chain_pems[0].write_to_path(str(certs))
    for blob in certificate.cert_chain_pems[1:]:
        blob.write_to_path(str(certs), append=True)
    config = make_config(tmp_path / "db", tls={"certs": str(certs), "key": str(key)})
    async with serving(nursery, config) as test_server:
        yield test_server


async def test_server_with_tls_table_serves_https_with_that_certificate(
    tls_server: TestServer, certificate_authority: trustme.CA
):
    assert tls_server.base_url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)

    async with httpx.AsyncClient(base_url=tls_server.base_url, verify=context) as client:
        response = await client.get("/_matrix/client/versions")

    assert response.status_code == 200
    assert "versions" in response.json()


async def test_server_with_tls_refuses_plain_http(tls_server: TestServer):
    plain_url = tls_server.base_url.replace("https://", "http://")
    async with httpx.AsyncClient(base_url=plain_url) as client:
        with pytest.raises(httpx.HTTPError):
            await client.get("/_matrix/client/versions")


async def test_missing_certificate_file_stops_startup_naming_the_key(nursery, tmp_path):
    missing = tmp_path / "no-such-fullchain.pem"
    config = make_config(tmp_path / "db", tls={"certs": str(missing), "key": str(missing)})

    with pytest.raises(StartupError, match=r"tls\.certs: cannot read .*no-such-fullchain\.pem"):
        await start_server(nursery, config)
