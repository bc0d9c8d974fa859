"""Smaller client modules: capabilities, reporting, user directory, OpenID.

Spec: `data/api/client-server/capabilities.yaml`, `report_content.yaml`,
`users.yaml` (user directory), `openid.yaml`, and the server-server
`openid.yaml` (`/_matrix/federation/v1/openid/userinfo`).
"""

from __future__ import annotations

from tests.support.matrix import assert_error, ok, path_part, register, room_with_members
from tests.support.server import TestServer


async def test_capabilities_list_room_versions_and_the_default(server: TestServer):
    alice = await register(server)
    capabilities = ok(await alice.get("/capabilities"))["capabilities"]
    versions = capabilities["m.room_versions"]
    assert versions["default"] == server.config.default_room_version
    assert set(versions["available"]) == {str(n) for n in range(1, 13)}
    assert capabilities["m.change_password"] == {"enabled": True}
    assert capabilities["m.3pid_changes"] == {"enabled": False}


async def test_reporting_a_visible_event_is_stored_for_the_admins(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await alice.send(room_id, "rude")
    ok(await bob.post(f"/rooms/{path_part(room_id)}/report/{path_part(event_id)}", {"reason": "x"}))
    (report,) = server.services.reports.all()
    assert report["reporter"] == bob.user_id
    assert (report["room_id"], report["event_id"], report["reason"]) == (room_id, event_id, "x")


async def test_reporting_an_event_one_cannot_see_is_404(server: TestServer):
    alice = await register(server)
    outsider = await register(server)
    room_id = await alice.create_room()
    event_id = await alice.send(room_id, "private")
    response = await outsider.post(
        f"/rooms/{path_part(room_id)}/report/{path_part(event_id)}", {"reason": "?"}
    )
    assert_error(response, 404, "M_NOT_FOUND")


async def test_reporting_rooms_and_users(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.post(f"/rooms/{path_part(room_id)}/report", {"reason": "spam room"}))
    ok(await alice.post(f"/users/{path_part(alice.user_id)}/report", {"reason": "me"}))
    assert len(server.services.reports.all()) == 2
    response = await alice.post("/users/@nobody:localhost/report", {"reason": "?"})
    assert_error(response, 404, "M_NOT_FOUND")


async def test_user_directory_finds_room_mates_but_not_strangers(server: TestServer):
    _room_id, (alice, bob) = await room_with_members(server, 2)
    stranger = await register(server)
    ok(await bob.put(f"/profile/{path_part(bob.user_id)}/displayname", {"displayname": "Bobby"}))
    found = ok(await alice.post("/user_directory/search", {"search_term": "bobby"}))
    assert [r["user_id"] for r in found["results"]] == [bob.user_id]
    assert found["results"][0]["display_name"] == "Bobby"
    hidden = ok(await alice.post("/user_directory/search", {"search_term": stranger.localpart}))
    assert hidden["results"] == []


async def test_user_directory_includes_members_of_public_rooms(server: TestServer):
    alice = await register(server)
    bob = await register(server)
    room_id = await bob.create_room(preset="public_chat", visibility="public")
    assert room_id
    found = ok(await alice.post("/user_directory/search", {"search_term": bob.localpart}))
    assert [r["user_id"] for r in found["results"]] == [bob.user_id]


async def test_user_directory_limit_sets_limited(server: TestServer):
    _room_id, users = await room_with_members(server, 4)
    found = ok(await users[0].post("/user_directory/search", {"search_term": "user", "limit": 1}))
    assert len(found["results"]) == 1 and found["limited"] is True


async def test_openid_token_identifies_the_user_to_a_third_party(server: TestServer):
    alice = await register(server)
    token = ok(await alice.post(f"/user/{path_part(alice.user_id)}/openid/request_token", {}))
    assert token["token_type"] == "Bearer"
    assert token["matrix_server_name"] == server.config.server_name
    userinfo = await server.client.get(
        "/_matrix/federation/v1/openid/userinfo", params={"access_token": token["access_token"]}
    )
    assert ok(userinfo) == {"sub": alice.user_id}
    unknown = await server.client.get(
        "/_matrix/federation/v1/openid/userinfo", params={"access_token": "nope"}
    )
    assert_error(unknown, 401, "M_UNKNOWN_TOKEN")


async def test_openid_token_for_someone_else_is_forbidden(server: TestServer):
    alice = await register(server)
    response = await alice.post("/user/@bob:localhost/openid/request_token", {})
    assert_error(response, 403, "M_FORBIDDEN")


async def test_third_party_protocols_are_empty_and_unknown_ones_404(server: TestServer):
    alice = await register(server)
    assert ok(await alice.get("/thirdparty/protocols")) == {}
    assert_error(await alice.get("/thirdparty/protocol/irc"), 404, "M_NOT_FOUND")
    assert ok(await alice.get("/thirdparty/user")) == []


async def test_whois_shows_own_sessions_and_refuses_others_to_non_admins(server: TestServer):
    admin = await register(server)  # the first user of a new server is its admin
    bob = await register(server)
    ok(await bob.get("/account/whoami"))
    own = ok(await bob.get(f"/admin/whois/{path_part(bob.user_id)}"))
    assert own["user_id"] == bob.user_id
    assert bob.device_id in own["devices"]
    assert own["devices"][bob.device_id]["sessions"][0]["connections"][0]["ip"] == "127.0.0.1"
    assert_error(await bob.get(f"/admin/whois/{path_part(admin.user_id)}"), 403, "M_FORBIDDEN")
    assert ok(await admin.get(f"/admin/whois/{path_part(bob.user_id)}"))["user_id"] == bob.user_id


async def test_versions_advertise_authenticated_media(server: TestServer):
    body = ok(await server.client.get("/_matrix/client/versions"))
    assert "v1.11" in body["versions"]
    assert body["unstable_features"]["org.matrix.msc3916.stable"] is True
