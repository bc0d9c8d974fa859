"""The discovery endpoints: client versions, server version, `.well-known` delegation.

Spec: `data/api/client-server/versions.yaml`,
`data/api/server-server/version.yaml`, `content/client-server-api/_index.md`
("Well-known URIs") and `content/server-server-api.md` ("Resolving server
names"). `.well-known` defaults to `https://<server_name>` and
`<server_name>:443`; `[global.well_known]` replaces them.
"""

from __future__ import annotations

from matrix_conduit import __version__
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()
running_federating_server, federating_server = shared_server_fixtures(
    "federating_server", allow_federation=True
)
running_delegating_server, delegating_server = shared_server_fixtures(
    "delegating_server",
    server_name="example.org",
    well_known={"client": "https://matrix.example.org", "server": "matrix.example.org:8448"},
)


async def test_client_versions_lists_spec_versions_and_unstable_features(server: SharedServer):
    response = await server.client.get("/_matrix/client/versions")

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["versions"], list)
    assert all(isinstance(version, str) for version in body["versions"])
    assert isinstance(body["unstable_features"], dict)
    assert all(isinstance(enabled, bool) for enabled in body["unstable_features"].values())


async def test_federation_version_names_this_server_and_its_version(
    federating_server: SharedServer,
):
    response = await federating_server.client.get("/_matrix/federation/v1/version")

    assert response.status_code == 200
    assert response.json() == {"server": {"name": "matrix-conduit", "version": __version__}}


async def test_federation_version_is_forbidden_without_federation(server: SharedServer):
    """`allow_federation = false`: every federation endpoint answers 403 (issue 11, §4)."""
    response = await server.client.get("/_matrix/federation/v1/version")

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"


async def test_well_known_defaults_point_at_the_server_name(server: SharedServer):
    client = await server.client.get("/.well-known/matrix/client")
    federation = await server.client.get("/.well-known/matrix/server")

    assert client.status_code == federation.status_code == 200
    assert client.json() == {"m.homeserver": {"base_url": "https://localhost"}}
    assert federation.json() == {"m.server": "localhost:443"}


async def test_well_known_answers_the_configured_delegation(delegating_server: SharedServer):
    client = await delegating_server.client.get("/.well-known/matrix/client")
    federation = await delegating_server.client.get("/.well-known/matrix/server")

    assert client.json() == {"m.homeserver": {"base_url": "https://matrix.example.org"}}
    assert federation.json() == {"m.server": "matrix.example.org:8448"}
