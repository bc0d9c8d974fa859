"""A mautrix bridge against the real server: registration file, ghosts, transactions.

Spec: `content/application-service-api.md` — "Registration" (the YAML file
`app_service_config_files` lists), "Pushing events" and "Pushing ephemeral
data" (`PUT /_matrix/app/v1/transactions/{txnId}` with the hs_token),
"Querying" (`/users`, `/rooms`), "Pinging", and "Client-Server API
Extensions" (identity assertion with `user_id`/`device_id`,
`m.login.application_service` registration and login, `M_EXCLUSIVE`,
published room directories).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from tests.support.matrix import CLIENT_V3, assert_error, new_device, ok, path_part, register
from tests.support.mautrix_bridge import AS_ID, AS_TOKEN, BOT, PROTOCOL, Bridge
from tests.support.server import TestServer, make_config, start_server

# mautrix 0.21 still hands aiohttp the loop argument aiohttp deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated:DeprecationWarning")


@pytest.fixture
async def bridged(nursery: trio.Nursery, tmp_path: Path):
    bridge = Bridge(tmp_path)
    config = make_config(
        tmp_path / "db",
        allow_registration=True,
        app_service_config_files=[str(bridge.registration_path)],
    )
    server = await start_server(nursery, config)
    await bridge.start(server.base_url)
    yield server, bridge
    await bridge.stop()
    await server.client.aclose()
    await server.stop()


async def as_request(
    server: TestServer, method: str, path: str, *, token: str = AS_TOKEN, **kwargs
) -> httpx.Response:
    """A client-server request with the appservice's `as_token`."""
    headers = {"Authorization": f"Bearer {token}"}
    prefix = "" if path.startswith("/_matrix") else CLIENT_V3
    return await server.client.request(method, prefix + path, headers=headers, **kwargs)


async def join_ghost(bridge: Bridge, name: str, room_id: str) -> str:
    ghost_id = bridge.ghost(name)

    async def join() -> None:
        intent = bridge.appservice.intent.user(ghost_id)
        await intent.ensure_registered()
        await intent.join_room(room_id)

    await bridge.call(join)
    return ghost_id


def bodies(bridge: Bridge) -> list[str]:
    return [getattr(event.content, "body", None) for event in bridge.events]


async def test_bridge_ghosts_join_receive_the_rooms_events_and_bridge_a_reply_back(bridged):
    server, bridge = bridged
    alice = await register(server)
    room_id = await alice.create_room(preset="public_chat")
    ghost_id = await join_ghost(bridge, "bob", room_id)

    message_id = await alice.send(room_id, "!echo bob hello bridge")
    await bridge.wait_for(lambda b: "!echo bob hello bridge" in bodies(b))
    joins = [e for e in bridge.events if e.type.t == "m.room.member" and e.state_key == ghost_id]
    assert joins and str(joins[0].content.membership) == "join"

    with trio.fail_after(30):
        while True:
            replies = [
                event
                for event in await alice.timeline(room_id)
                if event["sender"] == ghost_id and event["type"] == "m.room.message"
            ]
            if replies:
                break
            await trio.sleep(0.05)
    reply = replies[0]["content"]
    assert reply["body"].endswith("!echo bob hello bridge")
    assert reply["m.relates_to"]["m.in_reply_to"]["event_id"] == message_id


async def test_bridge_receives_typing_and_receipts_of_its_rooms(bridged):
    server, bridge = bridged
    alice = await register(server)
    room_id = await alice.create_room(preset="public_chat")
    await join_ghost(bridge, "carol", room_id)
    event_id = await alice.send(room_id, "read me")
    room = path_part(room_id)

    ok(
        await alice.put(
            f"/rooms/{room}/typing/{path_part(alice.user_id)}", {"typing": True, "timeout": 30000}
        )
    )
    ok(await alice.post(f"/rooms/{room}/receipt/m.read/{path_part(event_id)}", {}))

    def typing_seen(b: Bridge) -> bool:
        return any(
            e.type.t == "m.typing" and alice.user_id in e.content.user_ids and e.room_id == room_id
            for e in b.ephemeral
        )

    def receipt_seen(b: Bridge) -> bool:
        return any(
            e.type.t == "m.receipt" and e.room_id == room_id and event_id in e.content
            for e in b.ephemeral
        )

    await bridge.wait_for(lambda b: typing_seen(b) and receipt_seen(b))


async def test_as_token_masquerades_only_as_registered_users_of_its_namespace(bridged):
    server, bridge = bridged
    ghost_id = bridge.ghost("dave")
    outsider = await register(server)
    registered = ok(
        await as_request(
            server,
            "POST",
            "/register",
            json={
                "type": "m.login.application_service",
                "username": "_bridge_dave",
                "inhibit_login": True,
            },
        )
    )
    assert registered["user_id"] == ghost_id and "access_token" not in registered

    bot = ok(await as_request(server, "GET", "/account/whoami"))
    assert bot["user_id"] == f"@{BOT}:localhost"
    ghost = ok(await as_request(server, "GET", "/account/whoami", params={"user_id": ghost_id}))
    assert ghost == {"user_id": ghost_id, "is_guest": False}
    not_ours = await as_request(
        server, "GET", "/account/whoami", params={"user_id": outsider.user_id}
    )
    assert_error(not_ours, 403, "M_FORBIDDEN")
    unregistered = await as_request(
        server, "GET", "/account/whoami", params={"user_id": bridge.ghost("nobody")}
    )
    assert_error(unregistered, 403, "M_FORBIDDEN")
    no_device = await as_request(
        server, "GET", "/account/whoami", params={"user_id": ghost_id, "device_id": "NOPE"}
    )
    assert_error(no_device, 400, "M_UNKNOWN_DEVICE")

    logged_in = ok(
        await as_request(
            server,
            "POST",
            "/login",
            json={
                "type": "m.login.application_service",
                "identifier": {"type": "m.id.user", "user": "_bridge_dave"},
            },
        )
    )
    device = logged_in["device_id"]
    with_device = ok(
        await as_request(
            server, "GET", "/account/whoami", params={"user_id": ghost_id, "device_id": device}
        )
    )
    assert with_device["device_id"] == device
    login_outside = await as_request(
        server,
        "POST",
        "/login",
        json={
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": outsider.localpart},
        },
    )
    assert_error(login_outside, 400, "M_EXCLUSIVE")


async def test_exclusive_namespaces_are_the_bridges_alone(bridged):
    server, bridge = bridged
    taken = await server.client.post(
        f"{CLIENT_V3}/register",
        json={
            "username": "_bridge_eve",
            "password": "a password",
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert_error(taken, 400, "M_EXCLUSIVE")
    outside = await as_request(
        server,
        "POST",
        "/register",
        json={"type": "m.login.application_service", "username": "frank"},
    )
    assert_error(outside, 400, "M_EXCLUSIVE")
    no_token = await server.client.post(
        f"{CLIENT_V3}/register",
        json={"type": "m.login.application_service", "username": "_bridge_x"},
    )
    assert_error(no_token, 401, "M_MISSING_TOKEN")
    bad_token = await as_request(
        server,
        "POST",
        "/register",
        token="wrong",
        json={"type": "m.login.application_service", "username": "_bridge_x"},
    )
    assert_error(bad_token, 401, "M_UNKNOWN_TOKEN")

    alice = await register(server)
    room_id = await alice.create_room(preset="public_chat")
    alias = path_part("#_bridge_room:localhost")
    refused = await alice.put(f"/directory/room/{alias}", {"room_id": room_id})
    assert_error(refused, 400, "M_EXCLUSIVE")
    created = await alice.post("/createRoom", {"room_alias_name": "_bridge_other"})
    assert_error(created, 400, "M_EXCLUSIVE")

    await bridge.call(bridge.appservice.intent.join_room, room_id)
    ok(await as_request(server, "PUT", f"/directory/room/{alias}", json={"room_id": room_id}))
    assert ok(await alice.get(f"/directory/room/{alias}"))["room_id"] == room_id
    alices_delete = await alice.request("DELETE", f"/directory/room/{alias}")
    assert_error(alices_delete, 400, "M_EXCLUSIVE")  # though she may edit the room's aliases
    ok(await as_request(server, "DELETE", f"/directory/room/{alias}"))


async def test_unknown_alias_and_user_in_the_namespace_are_asked_of_the_bridge(bridged):
    server, bridge = bridged
    alice = await register(server)
    portal = "#_bridge_portal:localhost"
    room_id = await alice.join(portal)
    assert portal in bridge.queried
    assert ok(await alice.get(f"/directory/room/{path_part(portal)}"))["room_id"] == room_id

    ghost_id = bridge.ghost("grace")
    ok(await alice.get(f"/profile/{path_part(ghost_id)}"))
    assert ghost_id in bridge.queried
    invited = bridge.ghost("ivan")
    ok(await alice.post(f"/rooms/{path_part(room_id)}/invite", {"user_id": invited}))
    assert invited in bridge.queried
    assert_error(
        await alice.get(f"/directory/room/{path_part('#elsewhere:localhost')}"), 404, "M_NOT_FOUND"
    )


async def test_ping_reaches_the_bridge_and_names_failures(bridged):
    server, bridge = bridged
    duration = await bridge.call(bridge.appservice.ping_self, "ping-1")
    assert isinstance(duration, int) and duration >= 0
    other = await as_request(
        server, "POST", "/_matrix/client/v1/appservice/someone-else/ping", json={}
    )
    assert_error(other, 403, "M_FORBIDDEN")

    await bridge.call(bridge._stop)  # the bridge's port now refuses connections
    down = await as_request(server, "POST", f"/_matrix/client/v1/appservice/{AS_ID}/ping", json={})
    assert_error(down, 502, "M_CONNECTION_FAILED")


async def test_bridge_publishes_rooms_in_its_network_directory(bridged):
    server, _ = bridged
    alice = await register(server)
    room_id = await alice.create_room(preset="public_chat", name="bridged chat")
    path = f"/directory/list/appservice/irc/{path_part(room_id)}"
    assert_error(await alice.put(path, {"visibility": "public"}), 401, "M_UNKNOWN_TOKEN")
    assert_error(
        await as_request(server, "PUT", path, json={"visibility": "sideways"}),
        400,
        "M_INVALID_PARAM",
    )
    ok(await as_request(server, "PUT", path, json={"visibility": "public"}))

    listed = ok(await alice.post("/publicRooms", {"third_party_instance_id": f"{AS_ID}|irc"}))
    assert [room["room_id"] for room in listed["chunk"]] == [room_id]
    assert ok(await alice.post("/publicRooms", {}))["chunk"] == []

    ok(await as_request(server, "PUT", path, json={"visibility": "private"}))
    listed = ok(await alice.post("/publicRooms", {"third_party_instance_id": f"{AS_ID}|irc"}))
    assert listed["chunk"] == []


async def test_bridge_gets_to_device_messages_of_its_users_and_device_list_changes(bridged):
    """MSC4203 (to-device in transactions) and MSC3202 (`device_lists`), which the
    registration asks for with `org.matrix.msc3202: true`."""
    server, bridge = bridged
    alice = await register(server)
    room_id = await alice.create_room(preset="public_chat")
    ghost_id = await join_ghost(bridge, "judy", room_id)
    login = {
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": ghost_id},
    }
    device_id = ok(await as_request(server, "POST", "/login", json=login))["device_id"]

    messages = {"messages": {ghost_id: {device_id: {"secret": "for the bridge"}}}}
    ok(await alice.put("/sendToDevice/org.example.test/txn-1", messages))
    await bridge.wait_for(lambda b: any(m.to_user_id == ghost_id for m in b.to_device))
    (message,) = [m for m in bridge.to_device if m.to_user_id == ghost_id]
    assert message.to_device_id == device_id and message.sender == alice.user_id

    await new_device(server, alice)
    await bridge.wait_for(lambda b: alice.user_id in b.device_list_changes)


async def test_a_bridge_registered_at_run_time_works_until_unregistered(nursery, tmp_path):
    """`AppServices.register`/`unregister` (what the admin room calls): no restart."""
    bridge = Bridge(tmp_path)
    server = await start_server(nursery, make_config(tmp_path / "db"))
    await bridge.start(server.base_url)
    try:
        assert_error(await as_request(server, "GET", "/account/whoami"), 401, "M_UNKNOWN_TOKEN")
        server.services.appservices.register(bridge.registration_path.read_text())
        alice = await register(server)
        room_id = await alice.create_room(preset="public_chat")
        await join_ghost(bridge, "kim", room_id)
        await alice.send(room_id, "after the registration")
        await bridge.wait_for(lambda b: "after the registration" in bodies(b))

        server.services.appservices.unregister(AS_ID)
        assert_error(await as_request(server, "GET", "/account/whoami"), 401, "M_UNKNOWN_TOKEN")
        assert [a.id for a in server.services.appservices.list()] == []
    finally:
        await bridge.stop()
        await server.client.aclose()
        await server.stop()


async def test_third_party_lookups_are_answered_by_the_bridge(bridged):
    """Client-server `third_party_lookup.yaml` forwarded to `protocols.yaml`."""
    server, _ = bridged
    alice = await register(server)
    protocols = ok(await alice.get("/thirdparty/protocols"))
    assert list(protocols) == [PROTOCOL]
    (instance,) = protocols[PROTOCOL]["instances"]
    assert instance["network_id"] == "net1" and instance["instance_id"] == f"{AS_ID}|net1"
    assert ok(await alice.get(f"/thirdparty/protocol/{PROTOCOL}"))["user_fields"] == ["nick"]
    (location,) = ok(await alice.get(f"/thirdparty/location/{PROTOCOL}", channel="#chat"))
    assert location["alias"] == "#_bridge_chat:localhost"
    assert_error(await alice.get("/thirdparty/protocol/other"), 404, "M_NOT_FOUND")
    assert_error(await alice.get("/thirdparty/location/other"), 404, "M_NOT_FOUND")
