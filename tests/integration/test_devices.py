"""Device management over HTTP: list, inspect, rename, delete (with the password).

Spec: the Device Management module
(`content/client-server-api/modules/device_management.md`,
`data/api/client-server/device_management.yaml`): deleting a device
invalidates its access token and requires user-interactive auth; the Guest
Access module lets guests list, inspect and rename their devices.
"""

from __future__ import annotations

import pytest

from tests.support.accounts import (
    CLIENT_API,
    bearer,
    log_in,
    password_auth,
    register,
    whoami,
)
from tests.support.server import TestServer, make_config, serving

DEVICES = f"{CLIENT_API}/devices"


@pytest.fixture
async def open_server(nursery, tmp_path) -> TestServer:
    async with serving(nursery, make_config(tmp_path / "db", allow_registration=True)) as server:
        yield server


@pytest.fixture
async def alice(open_server) -> dict:
    return await register(open_server.client, "alice", initial_device_display_name="Phone")


async def test_list_shows_every_device_of_the_user_only(open_server, alice):
    laptop = (await log_in(open_server.client, "alice", device_id="LAPTOP")).json()
    await register(open_server.client, "bob")

    response = await open_server.client.get(DEVICES, headers=bearer(alice["access_token"]))

    assert response.status_code == 200
    devices = {device["device_id"]: device for device in response.json()["devices"]}
    assert set(devices) == {alice["device_id"], laptop["device_id"]}
    assert devices[alice["device_id"]]["display_name"] == "Phone"
    assert devices["LAPTOP"]["display_name"] is None  # null, as nio needs (test_client_shapes)


async def test_get_one_device(open_server, alice):
    response = await open_server.client.get(
        f"{DEVICES}/{alice['device_id']}", headers=bearer(alice["access_token"])
    )

    assert response.status_code == 200
    assert response.json()["device_id"] == alice["device_id"]
    assert response.json()["display_name"] == "Phone"
    assert response.json()["last_seen_ip"] == "127.0.0.1"


async def test_another_users_device_is_not_found(open_server, alice):
    bob = await register(open_server.client, "bob")

    response = await open_server.client.get(
        f"{DEVICES}/{alice['device_id']}", headers=bearer(bob["access_token"])
    )

    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"


async def test_rename_a_device(open_server, alice):
    response = await open_server.client.put(
        f"{DEVICES}/{alice['device_id']}",
        headers=bearer(alice["access_token"]),
        json={"display_name": "Old phone"},
    )

    assert response.status_code == 200
    assert response.json() == {}
    device = open_server.services.devices.get("@alice:localhost", alice["device_id"])
    assert device.display_name == "Old phone"


async def test_renaming_an_unknown_device_gets_404_and_creates_nothing(open_server, alice):
    response = await open_server.client.put(
        f"{DEVICES}/NOSUCHDEVICE", headers=bearer(alice["access_token"]), json={"display_name": "x"}
    )

    assert response.status_code == 404
    assert "NOSUCHDEVICE" not in open_server.services.devices.device_ids("@alice:localhost")


async def test_deleting_a_device_asks_for_the_password(open_server, alice):
    response = await open_server.client.request(
        "DELETE", f"{DEVICES}/{alice['device_id']}", headers=bearer(alice["access_token"])
    )

    assert response.status_code == 401
    assert response.json()["flows"] == [{"stages": ["m.login.password"]}]
    assert (await whoami(open_server.client, alice["access_token"])).status_code == 200


async def test_deleting_a_device_with_the_password_kills_its_token(open_server, alice):
    laptop = (await log_in(open_server.client, "alice")).json()

    response = await open_server.client.request(
        "DELETE",
        f"{DEVICES}/{laptop['device_id']}",
        headers=bearer(alice["access_token"]),
        json={"auth": password_auth("@alice:localhost")},
    )

    assert response.status_code == 200
    assert (await whoami(open_server.client, laptop["access_token"])).status_code == 401
    assert open_server.services.devices.device_ids("@alice:localhost") == [alice["device_id"]]


async def test_deleting_with_a_wrong_password_gets_401_with_errcode(open_server, alice):
    response = await open_server.client.request(
        "DELETE",
        f"{DEVICES}/{alice['device_id']}",
        headers=bearer(alice["access_token"]),
        json={"auth": password_auth("@alice:localhost", "wrong")},
    )

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert response.json()["flows"] == [{"stages": ["m.login.password"]}]
    assert (await whoami(open_server.client, alice["access_token"])).status_code == 200


async def test_delete_devices_deletes_the_listed_ones(open_server, alice):
    tablet = (await log_in(open_server.client, "alice")).json()
    laptop = (await log_in(open_server.client, "alice")).json()

    response = await open_server.client.post(
        f"{CLIENT_API}/delete_devices",
        headers=bearer(alice["access_token"]),
        json={
            "devices": [tablet["device_id"], laptop["device_id"], "NEVER_EXISTED"],
            "auth": password_auth("@alice:localhost"),
        },
    )

    assert response.status_code == 200
    for gone in (tablet, laptop):
        assert (await whoami(open_server.client, gone["access_token"])).status_code == 401
    assert open_server.services.devices.device_ids("@alice:localhost") == [alice["device_id"]]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [({}, "M_MISSING_PARAM"), ({"devices": "ABC"}, "M_BAD_JSON"), ({"devices": [1]}, "M_BAD_JSON")],
)
async def test_delete_devices_needs_a_list_of_ids(open_server, alice, body, errcode):
    response = await open_server.client.post(
        f"{CLIENT_API}/delete_devices", headers=bearer(alice["access_token"]), json=body
    )

    assert response.status_code == 400
    assert response.json()["errcode"] == errcode


async def test_device_changes_are_recorded_for_sync(open_server, alice):
    devices = open_server.services.devices
    before = devices.device_list_version("@alice:localhost")

    await open_server.client.put(
        f"{DEVICES}/{alice['device_id']}",
        headers=bearer(alice["access_token"]),
        json={"display_name": "Renamed"},
    )

    after = devices.device_list_version("@alice:localhost")
    assert after > before
    assert devices.users_with_device_list_changes(before) == ["@alice:localhost"]
    assert devices.users_with_device_list_changes(after) == []


async def test_guests_may_list_and_rename_their_devices_but_not_delete_them(open_server):
    guest = (
        await open_server.client.post(f"{CLIENT_API}/register", params={"kind": "guest"}, json={})
    ).json()
    headers = bearer(guest["access_token"])
    device_url = f"{DEVICES}/{guest['device_id']}"

    listed = await open_server.client.get(DEVICES, headers=headers)
    renamed = await open_server.client.put(device_url, headers=headers, json={"display_name": "g"})
    deleted = await open_server.client.request("DELETE", device_url, headers=headers, json={})

    assert listed.status_code == renamed.status_code == 200
    assert deleted.status_code == 403
    assert deleted.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
