"""Synapse's user admin API: list, query, create/modify, deactivate, reset password, admin flag.

Synapse's admin API "User Admin API" (`/_synapse/admin/v2/users`,
`v2/users/{userId}`, `v1/deactivate/{userId}`, `v1/reset_password/{userId}`,
`v1/users/{userId}/admin`). Only server admins; everybody else 403
`M_FORBIDDEN`, no token 401.
"""

from __future__ import annotations

import pytest

from tests.support.matrix import assert_error, ok, path_part, register
from tests.support.shared_server import shared_server_fixtures
from tests.support.synapse_admin import AdminApi, admin_user

running_server, server = shared_server_fixtures()


async def log_in(server, user_id: str, password: str):
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    return await server.client.post("/_matrix/client/v3/login", json=body)


@pytest.fixture
async def api(server) -> AdminApi:
    return AdminApi(await admin_user(server))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/users"),
        ("GET", "/v2/users/@someone:localhost"),
        ("PUT", "/v2/users/@someone:localhost"),
        ("POST", "/v1/deactivate/@someone:localhost"),
        ("POST", "/v1/reset_password/@someone:localhost"),
        ("GET", "/v1/users/@someone:localhost/admin"),
        ("PUT", "/v1/users/@someone:localhost/admin"),
        ("GET", "/v1/users/@someone:localhost/joined_rooms"),
        ("GET", "/v1/rooms"),
        ("GET", "/v1/rooms/!room:localhost"),
        ("GET", "/v1/rooms/!room:localhost/members"),
        ("GET", "/v1/rooms/!room:localhost/state"),
        ("DELETE", "/v2/rooms/!room:localhost"),
        ("GET", "/v2/rooms/!room:localhost/delete_status"),
        ("GET", "/v2/rooms/delete_status/x"),
        ("DELETE", "/v1/media/localhost/abc"),
        ("POST", "/v1/media/quarantine/localhost/abc"),
        ("POST", "/v1/media/unquarantine/localhost/abc"),
        ("GET", "/v1/registration_tokens"),
        ("POST", "/v1/registration_tokens/new"),
        ("GET", "/v1/registration_tokens/abc"),
        ("PUT", "/v1/registration_tokens/abc"),
        ("DELETE", "/v1/registration_tokens/abc"),
    ],
)
async def test_everybody_but_server_admins_gets_403(server, api, method, path):
    """(`api`: an admin exists, so the user is not the first account, which is admin.)"""
    user = AdminApi(await register(server))
    body = {} if method in ("PUT", "POST", "DELETE") else None
    assert_error(await user.request(method, path, body), 403, "M_FORBIDDEN")
    response = await server.client.request(method, f"/_synapse/admin{path}", json=body)
    assert_error(response, 401, "M_MISSING_TOKEN")


async def test_a_user_is_answered_with_synapses_record(server, api):
    alice = await register(server)
    record = ok(await api.get(f"/v2/users/{path_part(alice.user_id)}"))
    assert record["name"] == alice.user_id
    assert record["admin"] is False
    assert record["deactivated"] is False
    assert record["is_guest"] is False
    assert record["erased"] is False
    assert record["threepids"] == []
    assert record["displayname"] == server.services.users.displayname(alice.user_id)
    assert record["creation_ts"] > 0
    assert record["last_seen_ts"] is None or record["last_seen_ts"] > 0


async def test_an_unknown_user_is_404_and_a_remote_one_400(api):
    assert_error(await api.get("/v2/users/@nobody-here:localhost"), 404, "M_NOT_FOUND")
    assert_error(await api.get("/v2/users/@someone:elsewhere.org"), 400, "M_INVALID_PARAM")
    assert_error(await api.get("/v2/users/not-a-user-id"), 400, "M_INVALID_PARAM")


async def test_put_creates_an_account_that_logs_in(server, api):
    response = await api.put(
        "/v2/users/@created:localhost",
        {"password": "created pw", "displayname": "Created", "admin": True},
    )
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["name"] == "@created:localhost"
    assert record["displayname"] == "Created"
    assert record["admin"] is True
    ok(await log_in(server, "@created:localhost", "created pw"))


async def test_put_modifies_an_account(server, api):
    bob = await register(server)
    record = ok(
        await api.put(
            f"/v2/users/{path_part(bob.user_id)}",
            {"displayname": "Robert", "avatar_url": "mxc://localhost/avatar", "admin": True},
        )
    )
    assert record["displayname"] == "Robert"
    assert record["avatar_url"] == "mxc://localhost/avatar"
    assert record["admin"] is True
    assert server.services.users.is_admin(bob.user_id)


async def test_put_with_a_password_logs_out_the_devices_unless_told_not_to(server, api):
    carol = await register(server)
    ok(await api.put(f"/v2/users/{path_part(carol.user_id)}", {"password": "new one"}))
    assert_error(await carol.get("/account/whoami"), 401, "M_UNKNOWN_TOKEN")
    ok(await log_in(server, carol.user_id, "new one"))

    dave = await register(server)
    ok(
        await api.put(
            f"/v2/users/{path_part(dave.user_id)}",
            {"password": "kept session", "logout_devices": False},
        )
    )
    ok(await dave.get("/account/whoami"))


async def test_put_deactivates_and_reactivates_with_a_new_password(server, api):
    erin = await register(server)
    path = f"/v2/users/{path_part(erin.user_id)}"
    record = ok(await api.put(path, {"deactivated": True}))
    assert record["deactivated"] is True
    assert_error(await erin.get("/account/whoami"), 401, "M_UNKNOWN_TOKEN")

    assert_error(await api.put(path, {"deactivated": False}), 400, "M_INVALID_PARAM")
    record = ok(await api.put(path, {"deactivated": False, "password": "back again"}))
    assert record["deactivated"] is False
    ok(await log_in(server, erin.user_id, "back again"))


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"admin": "yes"}, "M_BAD_JSON"),
        ({"deactivated": 1}, "M_BAD_JSON"),
        ({"logout_devices": "no"}, "M_BAD_JSON"),
        ({"displayname": 5}, "M_BAD_JSON"),
        ({"password": 12345}, "M_INVALID_PARAM"),
        ({"avatar_url": "https://example.org/a.png"}, "M_INVALID_PARAM"),
        ({"threepids": [{"medium": "email", "address": "a@example.org"}]}, "M_INVALID_PARAM"),
    ],
)
async def test_put_with_bad_fields_changes_nothing(server, api, body, errcode):
    frank = await register(server)
    before = ok(await api.get(f"/v2/users/{path_part(frank.user_id)}"))
    assert_error(await api.put(f"/v2/users/{path_part(frank.user_id)}", body), 400, errcode)
    assert ok(await api.get(f"/v2/users/{path_part(frank.user_id)}")) == before


async def test_put_of_an_upper_case_new_user_is_m_invalid_username(api):
    assert_error(
        await api.put("/v2/users/@UPPER:localhost", {"password": "x"}), 400, "M_INVALID_USERNAME"
    )


async def test_the_list_pages_with_from_and_limit(server, api):
    for _ in range(3):
        await register(server)
    everyone = ok(await api.get("/v2/users", limit="1000"))
    total = everyone["total"]
    assert total == len(everyone["users"]) >= 4
    assert "next_token" not in everyone

    first = ok(await api.get("/v2/users", limit="2"))
    assert len(first["users"]) == 2
    assert first["next_token"] == "2"
    second = ok(await api.get("/v2/users", limit="2", **{"from": first["next_token"]}))
    names = [u["name"] for u in first["users"] + second["users"]]
    assert names == [u["name"] for u in everyone["users"][:4]]
    assert names == sorted(names)


async def test_the_list_filters_by_name_admins_and_deactivated(server, api):
    gina = await register(server, "gina-filtered")
    await server.call(server.services.users.set_displayname, gina.user_id, "Gina Special")
    by_name = ok(await api.get("/v2/users", name="special"))
    assert [u["name"] for u in by_name["users"]] == [gina.user_id]
    by_id = ok(await api.get("/v2/users", user_id="gina-filt"))
    assert [u["name"] for u in by_id["users"]] == [gina.user_id]

    admins = ok(await api.get("/v2/users", admins="true", limit="1000"))["users"]
    assert admins and all(u["admin"] for u in admins)
    assert api.user.user_id in [u["name"] for u in admins]

    ok(await api.post(f"/v1/deactivate/{path_part(gina.user_id)}"))
    hidden = ok(await api.get("/v2/users", name="gina-filtered"))
    assert hidden["users"] == [] and hidden["total"] == 0
    shown = ok(await api.get("/v2/users", name="gina-filtered", deactivated="true"))
    assert [u["deactivated"] for u in shown["users"]] == [True]


async def test_the_list_orders_by_what_is_asked(server, api):
    everyone = ok(await api.get("/v2/users", order_by="creation_ts", dir="b", limit="1000"))
    stamps = [u["creation_ts"] for u in everyone["users"]]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"from": "-1"},
        {"limit": "many"},
        {"order_by": "shoe_size"},
        {"dir": "sideways"},
        {"guests": "maybe"},
        {"admins": "2"},
    ],
)
async def test_bad_list_parameters_are_m_invalid_param(api, params):
    assert_error(await api.get("/v2/users", **params), 400, "M_INVALID_PARAM")


async def test_deactivate_with_erase_marks_the_account_erased(server, api):
    henry = await register(server)
    answer = ok(await api.post(f"/v1/deactivate/{path_part(henry.user_id)}", {"erase": True}))
    assert answer == {"id_server_unbind_result": "success"}
    record = ok(await api.get(f"/v2/users/{path_part(henry.user_id)}"))
    assert record["deactivated"] is True and record["erased"] is True
    assert_error(await henry.get("/account/whoami"), 401, "M_UNKNOWN_TOKEN")


async def test_deactivate_errors(api):
    assert_error(await api.post("/v1/deactivate/@ghost:localhost"), 404, "M_NOT_FOUND")
    assert_error(await api.post("/v1/deactivate/@a:elsewhere.org"), 400, "M_INVALID_PARAM")
    me = path_part(api.user.user_id)
    assert_error(await api.post(f"/v1/deactivate/{me}", {"erase": "yes"}), 400, "M_BAD_JSON")


async def test_reset_password_logs_out_unless_told_not_to(server, api):
    ivy = await register(server)
    path = f"/v1/reset_password/{path_part(ivy.user_id)}"
    assert ok(await api.post(path, {"new_password": "ivy 2", "logout_devices": False})) == {}
    ok(await ivy.get("/account/whoami"))
    ok(await log_in(server, ivy.user_id, "ivy 2"))
    ok(await api.post(path, {"new_password": "ivy 3"}))
    assert_error(await ivy.get("/account/whoami"), 401, "M_UNKNOWN_TOKEN")
    ok(await log_in(server, ivy.user_id, "ivy 3"))


async def test_reset_password_errors(server, api):
    jack = await register(server)
    path = f"/v1/reset_password/{path_part(jack.user_id)}"
    assert_error(await api.post(path, {}), 400, "M_MISSING_PARAM")
    assert_error(await api.post(path, {"new_password": 5}), 400, "M_BAD_JSON")
    assert_error(
        await api.post("/v1/reset_password/@ghost:localhost", {"new_password": "x"}),
        404,
        "M_NOT_FOUND",
    )


async def test_the_admin_flag_is_read_and_set(server, api):
    kim = await register(server)
    path = f"/v1/users/{path_part(kim.user_id)}/admin"
    assert ok(await api.get(path)) == {"admin": False}
    assert ok(await api.put(path, {"admin": True})) == {}
    assert ok(await api.get(path)) == {"admin": True}
    # Kim is an admin now: the admin API answers her.
    ok(await AdminApi(kim).get("/v2/users"))
    ok(await api.put(path, {"admin": False}))
    assert_error(await AdminApi(kim).get("/v2/users"), 403, "M_FORBIDDEN")


async def test_admin_flag_errors(api):
    me = f"/v1/users/{path_part(api.user.user_id)}/admin"
    assert_error(await api.put(me, {"admin": False}), 400, "M_INVALID_PARAM")
    assert_error(await api.put(me, {}), 400, "M_MISSING_PARAM")
    assert_error(await api.put(me, {"admin": "no"}), 400, "M_BAD_JSON")
    assert_error(await api.get("/v1/users/@x:elsewhere.org/admin"), 400, "M_INVALID_PARAM")
    assert_error(
        await api.put("/v1/users/@ghost:localhost/admin", {"admin": True}), 404, "M_NOT_FOUND"
    )


async def test_joined_rooms_and_whois_under_synapses_paths(server, api):
    lena = await register(server)
    room_id = await lena.create_room()
    rooms = ok(await api.get(f"/v1/users/{path_part(lena.user_id)}/joined_rooms"))
    assert rooms == {"joined_rooms": [room_id], "total": 1}
    whois = ok(await api.get(f"/v1/whois/{path_part(lena.user_id)}"))
    assert whois["user_id"] == lena.user_id and lena.device_id in whois["devices"]
    assert_error(await api.get("/v1/users/nobody/joined_rooms"), 400, "M_INVALID_PARAM")
    assert_error(
        await AdminApi(lena).get(f"/v1/users/{path_part(lena.user_id)}/joined_rooms"),
        403,
        "M_FORBIDDEN",
    )
