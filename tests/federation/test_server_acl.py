"""A room's `m.room.server_acl` enforced on room-scoped federation requests, between real servers.

Spec: `content/server-server-api.md` § Server Access Control Lists (a denied
server's request gets 403 `M_FORBIDDEN`; the ACL is the room's current
state), `data/event-schemas/schema/m.room.server_acl.yaml`. Three of our
servers over TLS: A holds the room, B is denied by its ACL, C is not. Most
requests go to a test-only signed route that does what every room-scoped
endpoint does first, `require_server_allowed(room_id)`; one is a real
`make_join`, the first request of a join.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from matrix_conduit import app as app_module
from matrix_conduit.api.federation.auth import origin, require_server_allowed, signed_blueprint
from matrix_conduit.service.federation.errors import RemoteError
from tests.support.accounts import CLIENT_API, bearer, register
from tests.support.federation import FederatingServer, start_federating

ROOM_PATH = "/_matrix/federation/v1/_test/room"


@pytest.fixture
def room_route(ca, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app of the test also serves a signed, room-scoped `ROOM_PATH/{roomId}`."""
    blueprint = signed_blueprint("test_room_scoped", __name__)

    @blueprint.route(f"{ROOM_PATH}/<room_id>")
    async def room_scoped(room_id: str) -> dict:
        require_server_allowed(room_id)
        return {"room_id": room_id, "origin": origin()}

    others = app_module.blueprints
    monkeypatch.setattr(app_module, "blueprints", lambda: [*others(), blueprint])


@pytest.fixture
async def servers(nursery, ca, tmp_path, room_route) -> list[FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2", allow_registration=True)
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    c = await start_federating(nursery, ca, tmp_path / "c", "127.0.0.4")
    return [a, b, c]


def _acl_state(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "m.room.server_acl", "state_key": "", "content": content}


async def _room(a: FederatingServer, token: str, acl: dict[str, Any] | None) -> str:
    body: dict[str, Any] = {"preset": "public_chat"}
    if acl is not None:
        body["initial_state"] = [_acl_state(acl)]
    answer = await a.client.post(f"{CLIENT_API}/createRoom", json=body, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return answer.json()["room_id"]


async def _ask(asker: FederatingServer, a: FederatingServer, room_id: str) -> dict[str, Any]:
    return await asker.federation.client.request(
        a.name, "GET", f"{ROOM_PATH}/{quote(room_id, safe='')}"
    )


def _host(server: FederatingServer) -> str:
    return server.name.partition(":")[0]


async def test_a_server_the_room_acl_denies_gets_403_forbidden(servers):
    a, b, c = servers
    token = (await register(a.client, "alice"))["access_token"]
    room_id = await _room(a, token, {"allow": ["*"], "deny": [_host(b)]})

    with pytest.raises(RemoteError) as refused:
        await _ask(b, a, room_id)

    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
    assert b.name in refused.value.error and "server ACL" in refused.value.error
    assert await _ask(c, a, room_id) == {"room_id": room_id, "origin": c.name}


async def test_a_room_without_an_acl_lets_every_server_in(servers):
    a, b, _ = servers
    token = (await register(a.client, "alice"))["access_token"]
    room_id = await _room(a, token, None)

    assert await _ask(b, a, room_id) == {"room_id": room_id, "origin": b.name}


async def test_the_acl_is_the_rooms_current_state(servers):
    a, b, c = servers
    token = (await register(a.client, "alice"))["access_token"]
    room_id = await _room(a, token, {"allow": [_host(c)]})
    with pytest.raises(RemoteError):
        await _ask(b, a, room_id)

    changed = await a.client.put(
        f"{CLIENT_API}/rooms/{quote(room_id, safe='')}/state/m.room.server_acl/",
        json={"allow": ["*"], "allow_ip_literals": True},
        headers=bearer(token),
    )
    assert changed.status_code == 200, changed.text

    assert await _ask(b, a, room_id) == {"room_id": room_id, "origin": b.name}


async def test_allow_ip_literals_false_denies_servers_named_by_their_address(servers):
    a, b, _ = servers
    token = (await register(a.client, "alice"))["access_token"]
    room_id = await _room(a, token, {"allow": ["*"], "allow_ip_literals": False})

    with pytest.raises(RemoteError) as refused:
        await _ask(b, a, room_id)

    assert refused.value.status == 403


async def test_make_join_from_a_denied_server_is_403_and_from_an_allowed_one_a_template(servers):
    a, b, c = servers
    token = (await register(a.client, "alice"))["access_token"]
    room_id = await _room(a, token, {"allow": ["*"], "deny": [_host(b)]})

    def make_join(server: FederatingServer) -> str:
        user_id = quote(f"@joiner:{server.name}", safe="")
        return f"/_matrix/federation/v1/make_join/{quote(room_id, safe='')}/{user_id}"

    versions = {"ver": [str(n) for n in range(1, 13)]}
    with pytest.raises(RemoteError) as refused:
        await b.federation.client.request(a.name, "GET", make_join(b), query=versions)
    template = await c.federation.client.request(a.name, "GET", make_join(c), query=versions)

    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
    assert template["event"]["content"]["membership"] == "join"
    assert template["event"]["state_key"] == f"@joiner:{c.name}"
