"""End-to-end keys across two of our servers over TLS: query, claim, device lists, failures.

Spec: `content/server-server-api.md` "End-to-End Encryption" (`/user/keys/query`,
`/user/keys/claim`) and "Device Management"; `data/api/client-server/keys.yaml`
(`timeout`, `failures`); `content/client-server-api/modules/end_to_end_encryption.md`
"Tracking the device list for a user" (`device_lists.changed` and `left`).
Alice lives on A (127.0.0.2), bob on B (127.0.0.3); the keys are real ones,
signed as clients sign them (`tests/support/e2ee.py`).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from matrix_conduit.core.e2e_keys import verify_key_signature
from matrix_conduit.service.federation import destinations, remote_devices
from matrix_conduit.service.federation.errors import RemoteError
from tests.support.e2ee import (
    SIGNED_CURVE25519,
    CrossSigningIdentity,
    DeviceIdentity,
    identity_of,
    query_keys,
    upload_device_keys,
)
from tests.support.federated_rooms import install_recording_send, wait_until
from tests.support.federation import FederatingServer, serve_https, start_federating
from tests.support.matrix import User, assert_error, new_device, ok, path_part, register
from tests.support.remote_keys import (
    account_of,
    dead_server_name,
    record_requests,
    silent_peer,
)
from tests.support.remote_membership import eventually, join

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
SIGNED = f"{SIGNED_CURVE25519}:AAAB"
QUERY_PATH = "/_matrix/federation/v1/user/keys/query"
CLAIM_PATH = "/_matrix/federation/v1/user/keys/claim"


def as_queried(device: DeviceIdentity) -> dict[str, Any]:
    """The device's keys as `/keys/query` shows them (keys.yaml: with `unsigned`; the device
    has no display name, or its server keeps it)."""
    return {**device.device_keys(), "unsigned": {}}


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def sharing(
    a: FederatingServer, b: FederatingServer, alice: User | None = None
) -> tuple[User, User, str]:
    """Alice on A (a new user unless given), bob on B, and alice's public room bob joined.

    Keys alice uploads before are on A only: B hears of them when it asks.
    """
    alice = alice or await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    ok(await join(bob, room_id, via=a.name))
    return alice, bob, room_id


async def test_a_user_gets_the_signed_keys_of_a_user_on_another_server(pair):
    a, b = pair
    alice, bob, _ = await sharing(a, b)
    device = await upload_device_keys(alice)
    cross_signing = CrossSigningIdentity(alice.user_id).upload_body()
    ok(await alice.post("/keys/device_signing/upload", cross_signing))

    answer = await query_keys(bob, alice)

    assert answer["failures"] == {}
    assert answer["device_keys"] == {alice.user_id: {alice.device_id: as_queried(device)}}
    assert answer["master_keys"] == {alice.user_id: cross_signing["master_key"]}
    assert answer["self_signing_keys"] == {alice.user_id: cross_signing["self_signing_key"]}
    assert alice.user_id not in answer.get("user_signing_keys", {})


async def test_keys_of_a_user_sharing_a_room_come_from_the_cache_after_the_first_query(
    pair, monkeypatch
):
    a, b = pair
    alice = await register(a.server)
    await upload_device_keys(alice)
    alice, bob, _ = await sharing(a, b, alice)
    stranger = await register(a.server)  # shares no room with anyone on B
    await upload_device_keys(stranger)
    asked = record_requests(monkeypatch, b)

    first, second = await query_keys(bob, alice), await query_keys(bob, alice)
    assert first == second and alice.device_id in first["device_keys"][alice.user_id]
    assert [r.path for r in asked] == [QUERY_PATH]

    for _ in range(2):
        answer = await query_keys(bob, stranger)
        assert stranger.device_id in answer["device_keys"][stranger.user_id]
    assert [r.path for r in asked] == [QUERY_PATH] * 3


async def test_a_query_asks_each_server_once_for_all_of_its_users(pair, monkeypatch):
    a, b = pair
    alice, carol = await register(a.server), await register(a.server)
    bob = await register(b.server)
    for user in (alice, carol):
        await upload_device_keys(user)
    asked = record_requests(monkeypatch, b)

    answer = await query_keys(bob, alice, carol)

    assert set(answer["device_keys"]) == {alice.user_id, carol.user_id}
    (request,) = asked
    assert (request.destination, request.path) == (a.name, QUERY_PATH)
    assert request.body == {"device_keys": {alice.user_id: [], carol.user_id: []}}


async def test_a_peer_that_is_down_is_named_in_failures_and_the_rest_is_answered(nursery, ca, pair):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    await upload_device_keys(alice, one_time_keys=identity_of(alice).one_time_keys(1))
    silent = await silent_peer(nursery, ca, "127.0.0.12")
    dead = dead_server_name("127.0.0.13")
    body = {
        "timeout": 500,
        "device_keys": {alice.user_id: [], f"@eve:{silent}": [], f"@mallory:{dead}": []},
    }

    with trio.fail_after(30):  # a bounded answer, not a measured one
        answer = ok(await bob.post("/keys/query", body))
        claimed = ok(
            await bob.post(
                "/keys/claim",
                {
                    "timeout": 500,
                    "one_time_keys": {
                        alice.user_id: {alice.device_id: SIGNED_CURVE25519},
                        f"@eve:{silent}": {"EVE": SIGNED_CURVE25519},
                    },
                },
            )
        )

    assert set(answer["failures"]) == {silent, dead}
    assert all(isinstance(f["status"], int) for f in answer["failures"].values())
    assert alice.device_id in answer["device_keys"][alice.user_id]
    assert set(claimed["failures"]) == {silent}
    assert alice.device_id in claimed["one_time_keys"][alice.user_id]


async def test_claiming_a_remote_devices_keys_gives_each_one_time_key_once_then_the_fallback(
    pair,
):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    device = identity_of(alice)
    one_time = device.one_time_keys(2)
    fallback = device.one_time_keys(1, fallback=True)
    ok(
        await alice.post(
            "/keys/upload",
            {
                "device_keys": device.device_keys(),
                "one_time_keys": one_time,
                "fallback_keys": fallback,
            },
        )
    )
    body = {"one_time_keys": {alice.user_id: {alice.device_id: SIGNED_CURVE25519}}}

    claimed = [ok(await bob.post("/keys/claim", body)) for _ in range(4)]

    keys = [c["one_time_keys"][alice.user_id][alice.device_id] for c in claimed]
    assert all(c["failures"] == {} for c in claimed)
    assert {name for key in keys[:2] for name in key} == set(one_time)
    assert keys[2] == keys[3] == fallback
    public_key = device.device_keys()["keys"][device.key_id]
    for key in keys:
        ((_, key_object),) = key.items()
        verify_key_signature(key_object, alice.user_id, device.key_id, public_key)


async def test_device_keys_a_server_did_not_sign_with_the_device_are_dropped_and_logged_once(
    nursery, ca, tmp_path, caplog
):
    good, forged_by = DeviceIdentity("", "GOOD"), DeviceIdentity("", "FORGED")
    odd = DeviceIdentity("", "ODD")
    answers: list[dict[str, Any]] = []

    async def peer(method: str, path: str, body: Any) -> tuple[int, Any]:
        return 200, answers[-1]

    peer_name = await serve_https(nursery, ca, "127.0.0.12", peer)
    eve = f"@eve:{peer_name}"
    good.user_id = forged_by.user_id = odd.user_id = eve
    forged = forged_by.device_keys()
    forged["keys"]["ed25519:FORGED"] = good.device_keys()["keys"]["ed25519:GOOD"]  # not its key
    someone_else = DeviceIdentity(f"@other:{peer_name}", "OTHER")
    answers.append(
        {
            "device_keys": {
                eve: {
                    "GOOD": good.device_keys(),
                    "FORGED": forged,
                    "WRONG": someone_else.device_keys(),
                    "ODD": {**odd.device_keys(), "unsigned": "not an object"},  # not signed
                },
                someone_else.user_id: {"OTHER": someone_else.device_keys()},  # not asked for
            },
            "master_keys": {eve: {"user_id": eve, "usage": ["self_signing"], "keys": {}}},
        }
    )
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    bob = await register(b.server)

    with caplog.at_level(logging.WARNING, logger="matrix_conduit"):
        answers_seen = [await query_keys(bob, eve) for _ in range(2)]

    for answer in answers_seen:
        assert answer["device_keys"] == {eve: {"GOOD": as_queried(good), "ODD": as_queried(odd)}}
        assert answer["master_keys"] == {}
    dropped = [r for r in caplog.records if "dropping device keys" in r.getMessage()]
    assert sorted(r.args[1] for r in dropped) == ["FORGED", "WRONG"]  # once each


async def test_a_device_list_update_with_forged_keys_keeps_the_device_without_them(
    nursery, ca, tmp_path
):
    device = DeviceIdentity("", "PHONE")

    async def peer(method: str, path: str, body: Any) -> tuple[int, Any]:
        return 200, {"user_id": device.user_id, "stream_id": 3, "devices": []}

    peer_name = await serve_https(nursery, ca, "127.0.0.12", peer)
    device.user_id = f"@eve:{peer_name}"
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    lists = b.server.services.remote_device_lists
    await b.server.services.edus.handle(
        peer_name,
        "m.device_list_update",
        {"user_id": device.user_id, "device_id": "X", "stream_id": 3},
    )
    await wait_until(lambda: lists.device_list(device.user_id) is not None)
    tampered = {**device.device_keys(), "algorithms": ["m.olm.v1.curve25519-aes-sha2"]}
    updates = [
        {"device_id": "PHONE", "stream_id": 4, "prev_id": [3], "keys": tampered},
        {"device_id": "LAPTOP", "stream_id": 5, "prev_id": [4], "keys": device.device_keys()},
        {"device_id": "PHONE", "stream_id": 6, "prev_id": [5], "keys": device.device_keys()},
    ]

    for update in updates[:2]:
        await b.server.services.edus.handle(
            peer_name, "m.device_list_update", {"user_id": device.user_id, **update}
        )
    assert lists.device_list(device.user_id)["devices"] == {"PHONE": {}, "LAPTOP": {}}
    await b.server.services.edus.handle(
        peer_name, "m.device_list_update", {"user_id": device.user_id, **updates[2]}
    )
    known = lists.device_list(device.user_id)
    assert known["stream_id"] == 6
    assert known["devices"]["PHONE"] == {"keys": device.device_keys()}


async def test_a_new_device_of_a_remote_user_shows_in_device_lists_changed_and_in_the_next_query(
    pair,
):
    a, b = pair
    alice, bob, _ = await sharing(a, b)
    await upload_device_keys(alice)
    assert set((await query_keys(bob, alice))["device_keys"][alice.user_id]) == {alice.device_id}
    bob_sync = account_of(bob).sync()
    await bob_sync.once()

    phone = await new_device(a.server, alice)
    phone_keys = await upload_device_keys(phone)

    await bob_sync.until(lambda sync: alice.user_id in sync.devices_changed)

    async def phone_known() -> bool:
        devices = (await query_keys(bob, alice))["device_keys"][alice.user_id]
        return devices.get(phone.device_id) == as_queried(phone_keys)

    await eventually(phone_known)
    known = b.server.services.remote_device_lists.device_list(alice.user_id)
    assert known["stream_id"] is not None and not known["stale"]


async def test_a_remote_user_who_leaves_the_last_shared_room_is_in_device_lists_left_and_forgotten(
    pair,
):
    a, b = pair
    alice = await register(a.server)
    await upload_device_keys(alice)
    alice, bob, room_id = await sharing(a, b, alice)
    await query_keys(bob, alice)
    lists = b.server.services.remote_device_lists
    assert lists.cached(alice.user_id) is not None
    bob_sync = account_of(bob).sync()
    await bob_sync.once()

    await alice.leave(room_id)

    await bob_sync.until(
        lambda sync: alice.user_id in sync.last.get("device_lists", {}).get("left", [])
    )
    assert lists.device_list(alice.user_id) is None


async def test_a_server_new_to_a_room_gets_the_device_lists_of_those_it_did_not_hear_of(
    nursery, ca, tmp_path, monkeypatch
):
    """Our user joining any room sends their list to its servers that lacked it ("Device
    Management": a must); another server's user joining an encrypted room of ours brings
    that server the lists of our members there."""
    sent = install_recording_send(monkeypatch)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, carol, bob = await register(a.server), await register(a.server), await register(b.server)
    carol_keys = await upload_device_keys(carol)

    def updates_from(server: FederatingServer) -> list[tuple[str, list[int]]]:
        return [
            (u["user_id"], u["prev_id"]) for u in sent.edus(server.name, "m.device_list_update")
        ]

    plain_room = await alice.create_room(preset="public_chat")
    ok(await join(bob, plain_room, via=a.name))
    marker = await alice.send(plain_room, "after the join")
    await wait_until(lambda: marker in sent.pdu_ids(a.name))
    await wait_until(lambda: updates_from(b) == [(bob.user_id, [])])
    assert updates_from(a) == []  # bob's server joined a room that is not encrypted

    secret_room = await carol.create_room(preset="public_chat", initial_state=[ENCRYPTION])
    ok(await join(bob, secret_room, via=a.name))

    await wait_until(lambda: bool(updates_from(a)))
    (update,) = sent.edus(a.name, "m.device_list_update")
    assert (update["user_id"], update["device_id"], update["prev_id"]) == (
        carol.user_id,
        carol.device_id,
        [],
    )
    lists = b.server.services.remote_device_lists
    await wait_until(lambda: lists.cached(carol.user_id) is not None)
    assert lists.cached(carol.user_id)["devices"] == {
        carol.device_id: {"keys": carol_keys.device_keys()}
    }
    assert updates_from(b) == [(bob.user_id, [])]  # A was hearing of bob already

    dave = await register(b.server)  # the other way: our user joins a room A holds
    dave_keys = await upload_device_keys(dave)
    ok(await join(dave, secret_room, via=a.name))

    await wait_until(lambda: len(updates_from(b)) == 2)
    assert updates_from(b)[1] == (dave.user_id, [])
    a_lists = a.server.services.remote_device_lists
    await wait_until(lambda: a_lists.cached(dave.user_id) is not None)
    assert a_lists.cached(dave.user_id)["devices"] == {
        dave.device_id: {"keys": dave_keys.device_keys()}
    }


async def test_the_key_endpoints_serve_only_this_servers_users_and_what_other_servers_may_see(
    pair,
):
    a, b = pair
    alice, bob = await register(a.server), await register(b.server)
    await upload_device_keys(alice)
    ok(await alice.put(f"/devices/{path_part(alice.device_id)}", {"display_name": "alice's phone"}))
    ok(
        await alice.post(
            "/keys/device_signing/upload", CrossSigningIdentity(alice.user_id).upload_body()
        )
    )
    client = b.federation.client

    served = await client.request(
        a.name, "POST", QUERY_PATH, body={"device_keys": {alice.user_id: []}}
    )

    assert set(served) == {"device_keys", "master_keys", "self_signing_keys"}
    served_device = served["device_keys"][alice.user_id][alice.device_id]
    assert "device_display_name" not in served_device.get("unsigned", {})  # stays on A
    refused = [
        (QUERY_PATH, {"device_keys": {bob.user_id: []}}, "M_INVALID_PARAM"),
        (QUERY_PATH, {}, "M_MISSING_PARAM"),
        (QUERY_PATH, {"device_keys": {alice.user_id: "all"}}, "M_BAD_JSON"),
        (CLAIM_PATH, {"one_time_keys": {bob.user_id: {"D": SIGNED_CURVE25519}}}, "M_INVALID_PARAM"),
        (CLAIM_PATH, {"one_time_keys": {alice.user_id: ["D"]}}, "M_BAD_JSON"),
    ]
    for path, body, errcode in refused:
        with pytest.raises(RemoteError) as error:
            await client.request(a.name, "POST", path, body=body)
        assert (error.value.status, error.value.errcode) == (400, errcode), (path, body)


async def test_a_timeout_that_is_not_a_non_negative_integer_is_refused(pair):
    _, b = pair
    bob = await register(b.server)
    for timeout, errcode in (("soon", "M_BAD_JSON"), (-1, "M_INVALID_PARAM"), (1.5, "M_BAD_JSON")):
        for path, field in (("/keys/query", "device_keys"), ("/keys/claim", "one_time_keys")):
            response = await bob.post(path, {field: {}, "timeout": timeout})
            assert_error(response, 400, errcode)


async def test_when_our_last_user_leaves_the_shared_room_the_remote_list_is_forgotten(pair):
    a, b = pair
    alice = await register(a.server)
    await upload_device_keys(alice)
    alice, bob, room_id = await sharing(a, b, alice)
    other_room = await alice.create_room(preset="public_chat")
    bob_friend = await register(b.server)
    ok(await join(bob_friend, other_room, via=a.name))
    await query_keys(bob, alice)
    lists = b.server.services.remote_device_lists
    assert lists.cached(alice.user_id) is not None

    await bob.leave(room_id)
    assert lists.cached(alice.user_id) is not None  # bob's friend still shares a room with her

    await bob_friend.leave(other_room)
    assert lists.device_list(alice.user_id) is None
    assert (await query_keys(bob, alice))["device_keys"][alice.user_id]  # asked of A again


async def test_a_resync_that_finds_the_server_down_is_tried_again_later(
    nursery, ca, tmp_path, monkeypatch
):
    monkeypatch.setattr(remote_devices, "RESYNC_RETRY_SECONDS", 0.2)
    monkeypatch.setattr(destinations, "MIN_BACKOFF_MS", 100)
    device = DeviceIdentity("", "PHONE")
    asked: list[str] = []

    async def peer(method: str, path: str, body: Any) -> tuple[int, Any]:
        asked.append(path)
        if len(asked) == 1:
            return 503, {"errcode": "M_UNKNOWN", "error": "down for a moment"}
        devices = [{"device_id": "PHONE", "keys": device.device_keys()}]
        return 200, {"user_id": device.user_id, "stream_id": 9, "devices": devices}

    peer_name = await serve_https(nursery, ca, "127.0.0.12", peer)
    device.user_id = f"@eve:{peer_name}"
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    update = {"user_id": device.user_id, "device_id": "PHONE", "stream_id": 9, "prev_id": [8]}

    await b.server.services.edus.handle(peer_name, "m.device_list_update", update)

    lists = b.server.services.remote_device_lists
    await wait_until(lambda: lists.device_list(device.user_id) is not None)
    assert len(asked) == 2
    assert lists.device_list(device.user_id)["devices"] == {"PHONE": {"keys": device.device_keys()}}


async def test_what_a_server_claims_is_passed_on_only_for_the_devices_and_algorithms_asked(
    nursery, ca, tmp_path
):
    async def peer(method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == QUERY_PATH:
            return 200, ["not", "an", "object"]
        eve = next(iter(body["one_time_keys"]))
        return 200, {
            "one_time_keys": {
                eve: {
                    "ASKED": {"curve25519:AAA": "wrong algorithm", SIGNED: {"key": "k"}},
                    "OTHER": {SIGNED: {"key": "not asked for"}},
                    "BROKEN": "not an object",
                },
                f"@mallory:{peer_name}": {"X": {SIGNED: {"key": "not asked for"}}},
            }
        }

    peer_name = await serve_https(nursery, ca, "127.0.0.12", peer)
    eve = f"@eve:{peer_name}"
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    bob = await register(b.server)
    wanted = {eve: {"ASKED": SIGNED_CURVE25519, "BROKEN": SIGNED_CURVE25519}}

    claimed = ok(await bob.post("/keys/claim", {"one_time_keys": wanted}))
    queried = await query_keys(bob, eve)

    assert claimed == {"one_time_keys": {eve: {"ASKED": {SIGNED: {"key": "k"}}}}, "failures": {}}
    assert queried["device_keys"] == {} and set(queried["failures"]) == {peer_name}
