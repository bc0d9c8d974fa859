"""The etc/reverse-proxy/ snippets work in the real proxies, in front of the real server.

Issue #17 ("Deployment the seeds' users know"). nginx, Caddy and Apache from
Debian's packages (`make reverse-proxies` installs them) load the shipped
snippet (tests/support/reverse_proxies.py changes only names, ports and
certificate paths) and carry, over TLS: the client API (spec: client-server
API, `GET /_matrix/client/versions`), federation on the 8448 listener and on
443 (server-server API, `GET /_matrix/federation/v1/version`), both
`.well-known` documents (client-server API, "Server Discovery"; server-server
API, "Resolving server names"), an id with `%2F` in it unharmed, and an
upload; the admin API is not forwarded. Traefik is not packaged in Debian
12: its file is checked for the same routes and upstream.
"""

from __future__ import annotations

import ssl

import httpx
import pytest
import yaml

from tests.support.federation_ca import new_ca
from tests.support.process import server_process, write_config
from tests.support.reverse_proxies import SNIPPETS, running_proxy

UPLOAD = b"x" * 1_000_000


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    directory = tmp_path_factory.mktemp("upstream")
    config = write_config(directory, allow_federation=True, allow_registration=True)
    with server_process(config) as server:
        yield server


@pytest.mark.parametrize("kind", ["nginx", "caddy", "apache"])
def test_the_snippet_carries_clients_federation_and_well_known(kind, upstream, tmp_path):
    ca = new_ca(tmp_path / "ca")
    port = int(upstream.base_url.rsplit(":", 1)[1])
    with (
        running_proxy(kind, tmp_path / kind, ca, port) as proxy,
        httpx.Client(
            verify=ssl.create_default_context(cafile=ca.certificate_path), timeout=30
        ) as client,
    ):
        versions = client.get(f"{proxy.client_url}/_matrix/client/versions")
        assert versions.status_code == 200 and "v1.1" in versions.json()["versions"]
        for base in (proxy.federation_url, proxy.client_url):
            federation = client.get(f"{base}/_matrix/federation/v1/version")
            assert federation.status_code == 200, federation.text
            assert federation.json()["server"]["name"]
        server = client.get(f"{proxy.client_url}/.well-known/matrix/server")
        assert server.json() == {"m.server": "localhost:443"}
        well_known = client.get(f"{proxy.client_url}/.well-known/matrix/client")
        assert "m.homeserver" in well_known.json()

        slash = client.get(f"{proxy.client_url}/_matrix/client/v3/rooms/%21a%2Fb:localhost/state")
        assert slash.json()["errcode"] != "M_UNRECOGNIZED"  # the id stayed one segment

        registered = client.post(
            f"{proxy.client_url}/_matrix/client/v3/register",
            json={"username": f"via-{kind}", "auth": {"type": "m.login.dummy"}},
        )
        assert registered.status_code == 200, registered.text
        uploaded = client.post(
            f"{proxy.client_url}/_matrix/media/v3/upload",
            content=UPLOAD,
            headers={
                "Authorization": f"Bearer {registered.json()['access_token']}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert uploaded.status_code == 200, uploaded.text

        admin = client.get(f"{proxy.client_url}/_synapse/admin/v1/server_version")
        assert "server_version" not in admin.text  # 404 from nginx/Apache, empty from Caddy


def test_the_traefik_file_routes_the_same_paths_to_the_server():
    document = yaml.safe_load((SNIPPETS / "traefik.yml").read_text())
    router = document["http"]["routers"]["matrix-conduit"]
    assert "PathPrefix(`/_matrix/`)" in router["rule"]
    assert "PathPrefix(`/.well-known/matrix/`)" in router["rule"]
    assert "/_synapse" not in router["rule"]
    assert set(router["entryPoints"]) == {"websecure", "federation"}
    service = document["http"]["services"][router["service"]]
    assert service["loadBalancer"]["servers"] == [{"url": "http://127.0.0.1:6167"}]
