"""Sliding sync extensions over HTTP: e2ee, account data, receipts, typing.

Spec: MSC3884 (e2ee: `device_lists`, `device_one_time_keys_count`,
`device_unused_fallback_key_types`), MSC3959 (account data, global and per
room), MSC3960 (receipts), MSC3961 (typing); to-device (MSC3885) is in
`test_sliding_sync_connections.py`.
"""

from __future__ import annotations

from tests.support.e2ee import identity_of, upload_device_keys
from tests.support.matrix import ok, path_part
from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import Connection, room_list, user_without_rooms

running_server, server = shared_server_fixtures()


def enabled(*names: str) -> dict:
    return {name: {"enabled": True} for name in names}


async def test_e2ee_counts_one_time_and_fallback_keys_and_lists_changed_devices(server):
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    identity = identity_of(alice)
    await upload_device_keys(
        alice,
        one_time_keys=identity.one_time_keys(3),
        fallback_keys=identity.one_time_keys(1, fallback=True),
    )
    connection = Connection(alice, "encryption")
    first = (await connection.sync({"extensions": enabled("e2ee")}))["extensions"]["e2ee"]
    assert first["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert first["device_unused_fallback_key_types"] == ["signed_curve25519"]

    await upload_device_keys(bob)
    changed = (await connection.sync())["extensions"]["e2ee"]
    assert bob.user_id in changed["device_lists"]["changed"]

    await bob.leave(room_id)
    left = (await connection.sync())["extensions"]["e2ee"]
    assert left["device_lists"]["left"] == [bob.user_id]


async def test_account_data_global_and_of_the_rooms_in_the_window(server):
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    ok(await alice.put(f"/user/{alice.user_id}/account_data/org.example.global", {"g": 1}))
    ok(
        await alice.put(
            f"/user/{alice.user_id}/rooms/{path_part(room_id)}/account_data/org.example.room",
            {"r": 1},
        )
    )
    connection = Connection(alice)
    body = {"lists": {"l": room_list(0)}, "extensions": enabled("account_data")}
    data = (await connection.sync(body))["extensions"]["account_data"]
    assert {"type": "org.example.global", "content": {"g": 1}} in data["global"]
    assert data["rooms"][room_id] == [{"type": "org.example.room", "content": {"r": 1}}]

    ok(await alice.put(f"/user/{alice.user_id}/account_data/org.example.global", {"g": 2}))
    update = (await connection.sync())["extensions"]["account_data"]
    assert update["global"] == [{"type": "org.example.global", "content": {"g": 2}}]
    assert update["rooms"] == {}


async def test_receipts_of_the_rooms_in_the_window(server):
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    event_id = await alice.send(room_id, "read me")
    connection = Connection(alice)
    await connection.sync({"lists": {"l": room_list(0)}, "extensions": enabled("receipts")})
    ok(await bob.post(f"/rooms/{path_part(room_id)}/receipt/m.read/{path_part(event_id)}", {}))
    receipts = (await connection.sync())["extensions"]["receipts"]["rooms"][room_id]
    assert receipts["type"] == "m.receipt"
    assert bob.user_id in receipts["content"][event_id]["m.read"]


async def test_typing_of_the_rooms_in_the_window(server):
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    connection = Connection(alice)
    await connection.sync({"lists": {"l": room_list(0)}, "extensions": enabled("typing")})
    typing_path = f"/rooms/{path_part(room_id)}/typing/{path_part(bob.user_id)}"
    ok(await bob.put(typing_path, {"typing": True, "timeout": 30000}))
    typing = (await connection.sync())["extensions"]["typing"]["rooms"][room_id]
    assert typing == {"type": "m.typing", "content": {"user_ids": [bob.user_id]}}
    ok(await bob.put(typing_path, {"typing": False}))
    stopped = (await connection.sync())["extensions"]["typing"]["rooms"][room_id]
    assert stopped["content"]["user_ids"] == []


async def test_extensions_stay_enabled_when_a_request_omits_them(server):
    """MSC3575's sticky parameters: the connection keeps the extensions it was given."""
    alice = await user_without_rooms(server)
    connection = Connection(alice)
    await connection.sync({"extensions": enabled("account_data")})
    ok(await alice.put(f"/user/{alice.user_id}/account_data/org.example.sticky", {"s": 1}))
    response = await connection.sync({})
    assert response["extensions"]["account_data"]["global"] == [
        {"type": "org.example.sticky", "content": {"s": 1}}
    ]


async def test_an_extension_enabled_on_a_quiet_request_stays_enabled(server):
    alice = await user_without_rooms(server)
    connection = Connection(alice)
    await connection.sync({})
    quiet = await connection.sync({"extensions": enabled("account_data")})
    assert quiet["extensions"]["account_data"]["rooms"] == {}
    ok(await alice.put(f"/user/{alice.user_id}/account_data/org.example.later", {"l": 1}))
    later = await connection.sync({})
    assert later["extensions"]["account_data"]["global"] == [
        {"type": "org.example.later", "content": {"l": 1}}
    ]
