"""Profiles over HTTP: reading, changing one's own, and who may not.

Spec: `content/client-server-api/_index.md`, "Profiles";
`data/api/client-server/profile.yaml`; the Guest Access module (guests may
change their display name only).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.accounts import CLIENT_API, bearer, register
from tests.support.server import TestServer, make_config, serving

PROFILE = f"{CLIENT_API}/profile"
AVATAR = "mxc://localhost/AbCdEf123"


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


@pytest.fixture
async def alice(open_server) -> dict:
    return await register(open_server.client, "alice")


async def put_field(server: TestServer, token: str, user_id: str, field: str, value):
    return await server.client.put(
        f"{PROFILE}/{user_id}/{field}", headers=bearer(token), json={field: value}
    )


async def test_profile_of_a_new_user_has_the_default_display_name_only(open_server, alice):
    response = await open_server.client.get(f"{PROFILE}/@alice:localhost")

    assert response.status_code == 200
    assert response.json() == {"displayname": "alice ⚡️"}


async def test_owner_sets_display_name_and_avatar(open_server, alice):
    token = alice["access_token"]

    name = await put_field(open_server, token, "@alice:localhost", "displayname", "Alice W.")
    avatar = await put_field(open_server, token, "@alice:localhost", "avatar_url", AVATAR)

    assert name.status_code == avatar.status_code == 200
    assert name.json() == avatar.json() == {}
    profile = await open_server.client.get(f"{PROFILE}/@alice:localhost")
    assert profile.json() == {"displayname": "Alice W.", "avatar_url": AVATAR}
    avatar_only = await open_server.client.get(f"{PROFILE}/@alice:localhost/avatar_url")
    assert avatar_only.json() == {"avatar_url": AVATAR}


@pytest.mark.parametrize("field", ["displayname", "avatar_url"])
async def test_others_get_403_changing_a_profile(open_server, alice, field):
    bob = await register(open_server.client, "bob")
    value = AVATAR if field == "avatar_url" else "Eve"

    response = await put_field(open_server, bob["access_token"], "@alice:localhost", field, value)

    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert open_server.services.users.displayname("@alice:localhost") == "alice ⚡️"


@pytest.mark.parametrize("empty", [None, ""])
async def test_null_or_empty_removes_the_field(open_server, alice, empty):
    await put_field(open_server, alice["access_token"], "@alice:localhost", "displayname", empty)

    response = await open_server.client.get(f"{PROFILE}/@alice:localhost/displayname")

    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize(
    ("field", "value", "errcode"),
    [
        ("avatar_url", "https://example.org/cat.png", "M_INVALID_PARAM"),
        ("avatar_url", 42, "M_BAD_JSON"),
        ("displayname", "x" * 257, "M_INVALID_PARAM"),
        ("displayname", ["Alice"], "M_BAD_JSON"),
    ],
)
async def test_bad_values_get_400(open_server, alice, field, value, errcode):
    response = await put_field(open_server, alice["access_token"], "@alice:localhost", field, value)

    assert response.status_code == 400
    assert response.json()["errcode"] == errcode


@pytest.mark.parametrize(
    ("user_id", "status"),
    [("@nobody:localhost", 404), ("@alice:elsewhere.org", 404), ("alice", 400)],
)
async def test_unknown_foreign_or_invalid_users_have_no_profile(open_server, user_id, status):
    response = await open_server.client.get(f"{PROFILE}/{user_id}")

    assert response.status_code == status


async def test_user_ids_with_a_slash_are_reachable(open_server):
    await register(open_server.client, "team/alice")

    response = await open_server.client.get(f"{PROFILE}/{quote('@team/alice:localhost', safe='')}")

    assert response.status_code == 200
    assert response.json() == {"displayname": "team/alice ⚡️"}


async def test_profile_changes_are_announced_to_subscribers(open_server, alice):
    announced: list[str] = []

    async def record(user_id: str) -> None:
        announced.append(user_id)

    open_server.services.users.profile_changed.append(record)

    await put_field(open_server, alice["access_token"], "@alice:localhost", "displayname", "A")
    await put_field(open_server, alice["access_token"], "@alice:localhost", "avatar_url", AVATAR)

    assert announced == ["@alice:localhost", "@alice:localhost"]


async def test_guests_may_change_their_display_name_but_not_their_avatar(open_server):
    guest = (
        await open_server.client.post(f"{CLIENT_API}/register", params={"kind": "guest"}, json={})
    ).json()
    token, user_id = guest["access_token"], guest["user_id"]

    name = await put_field(open_server, token, user_id, "displayname", "Visitor")
    avatar = await put_field(open_server, token, user_id, "avatar_url", AVATAR)

    assert name.status_code == 200
    assert avatar.status_code == 403
    assert avatar.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
