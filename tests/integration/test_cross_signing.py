"""Cross-signing over HTTP: key upload (with user-interactive auth), signatures, who sees what.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
"Cross-signing" and "Key and signature security";
`data/api/client-server/cross_signing.yaml` and `keys.yaml` (`master_keys`,
`self_signing_keys`, `user_signing_keys` in `/keys/query`); `secrets.md`
("Storage": secrets and their keys live in account data).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.accounts import log_in, password_auth
from tests.support.e2ee import (
    CrossSigningIdentity,
    DeviceIdentity,
    public_key,
    query_keys,
    sign,
    sync,
    upload_device_keys,
    wake_signal,
)
from tests.support.matrix import User, assert_error, ok, path_part, register, room_with_members
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

PASSWORD = "cross signing password"
UPLOAD = "/keys/device_signing/upload"


async def set_up_cross_signing(user: User) -> CrossSigningIdentity:
    identity = CrossSigningIdentity(user.user_id)
    ok(await user.post(UPLOAD, identity.upload_body()))
    return identity


async def upload_signatures(user: User, signed: dict[str, Any]) -> dict[str, Any]:
    return ok(await user.post("/keys/signatures/upload", signed))["failures"]


def master_signatures(answer: dict[str, Any], owner: User) -> dict[str, Any]:
    return answer["master_keys"][owner.user_id].get("signatures", {})


# ---- uploading cross-signing keys


async def test_first_upload_needs_no_password_and_the_user_signing_key_is_shown_only_to_its_owner(
    server,
):
    alice, bob = await register(server), await register(server)
    identity = await set_up_cross_signing(alice)
    body = identity.upload_body()

    to_bob = await query_keys(bob, alice)
    assert to_bob["master_keys"][alice.user_id] == body["master_key"]
    assert to_bob["self_signing_keys"][alice.user_id] == body["self_signing_key"]
    assert alice.user_id not in to_bob["user_signing_keys"]
    to_alice = await query_keys(alice, alice)
    assert to_alice["user_signing_keys"][alice.user_id] == body["user_signing_key"]


async def test_uploading_the_same_keys_again_needs_no_password(server):
    alice = await register(server)
    identity = await set_up_cross_signing(alice)
    ok(await alice.post(UPLOAD, identity.upload_body()))
    ok(await alice.post(UPLOAD, {"master_key": identity.upload_body()["master_key"]}))


async def test_replacing_cross_signing_keys_asks_for_the_password_first(server):
    alice = await register(server, password=PASSWORD)
    await set_up_cross_signing(alice)
    replacement = CrossSigningIdentity(alice.user_id)

    challenge = await alice.post(UPLOAD, replacement.upload_body())
    assert challenge.status_code == 401
    assert challenge.json()["flows"] == [{"stages": ["m.login.password"]}]
    master = (await query_keys(alice, alice))["master_keys"][alice.user_id]
    assert master != replacement.upload_body()["master_key"], "nothing replaced yet"

    auth = password_auth(alice.user_id, PASSWORD, session=challenge.json()["session"])
    ok(await alice.post(UPLOAD, {**replacement.upload_body(), "auth": auth}))
    master = (await query_keys(alice, alice))["master_keys"][alice.user_id]
    assert master == replacement.upload_body()["master_key"]


async def test_a_new_self_signing_key_alone_must_be_signed_by_the_stored_master_key(server):
    alice = await register(server, password=PASSWORD)
    identity = await set_up_cross_signing(alice)
    identity.self_signing = CrossSigningIdentity(alice.user_id).self_signing
    new_key = identity.upload_body()["self_signing_key"]
    challenge = await alice.post(UPLOAD, {"self_signing_key": new_key})
    auth = password_auth(alice.user_id, PASSWORD, session=challenge.json()["session"])

    ok(await alice.post(UPLOAD, {"self_signing_key": new_key, "auth": auth}))

    assert (await query_keys(alice, alice))["self_signing_keys"][alice.user_id] == new_key


async def test_a_self_signing_key_not_signed_by_the_master_key_is_refused(server):
    alice = await register(server)
    identity = CrossSigningIdentity(alice.user_id)
    body = identity.upload_body()
    impostor = CrossSigningIdentity(alice.user_id)
    body["self_signing_key"] = impostor.signed_by_master(
        identity.public_key_object(identity.self_signing, "self_signing")
    )
    assert_error(await alice.post(UPLOAD, body), 400, "M_INVALID_SIGNATURE")
    assert (await query_keys(alice, alice))["master_keys"] == {}


async def test_a_self_signing_key_without_any_master_key_is_refused(server):
    alice = await register(server)
    body = CrossSigningIdentity(alice.user_id).upload_body()
    response = await alice.post(UPLOAD, {"self_signing_key": body["self_signing_key"]})
    assert_error(response, 400, "M_MISSING_PARAM")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"user_id": "@mallory:localhost"}, "someone else's key"),
        ({"usage": ["self_signing"]}, "not for master use"),
        ({"keys": {"ed25519:AAAA": "BBBB"}}, "named after another key"),
        ({"keys": {"ed25519:AAAA": "AAAA", "ed25519:BBBB": "BBBB"}}, "two keys"),
    ],
)
async def test_cross_signing_keys_of_the_wrong_shape_are_refused(server, change, why):
    alice = await register(server)
    body = CrossSigningIdentity(alice.user_id).upload_body()
    body["master_key"] = {**body["master_key"], **change}
    assert_error(await alice.post(UPLOAD, body), 400, "M_INVALID_PARAM")


async def test_a_cross_signing_key_may_not_equal_one_of_the_users_device_ids(server):
    alice = await register(server, password=PASSWORD)
    identity = CrossSigningIdentity(alice.user_id)
    device_id = public_key(identity.master)
    ok(await log_in(server.client, alice.localpart, PASSWORD, device_id=device_id))
    assert_error(await alice.post(UPLOAD, identity.upload_body()), 403, "M_FORBIDDEN")


async def test_a_cross_signing_upload_lists_the_user_as_changed_for_room_mates(server):
    _, (alice, bob) = await room_with_members(server, 2)
    since = (await sync(bob))["next_batch"]
    bob_woken = await wake_signal(server, bob)
    await set_up_cross_signing(alice)
    assert bob_woken.is_set()
    assert (await sync(bob, since))["device_lists"]["changed"] == [alice.user_id]


async def test_cross_signing_upload_needs_an_access_token(server):
    response = await server.client.post(f"/_matrix/client/v3{UPLOAD}", json={})
    assert_error(response, 401, "M_MISSING_TOKEN")


# ---- signatures


async def test_a_device_signed_by_its_users_self_signing_key_shows_that_signature(server):
    alice, bob = await register(server), await register(server)
    device = await upload_device_keys(alice)
    identity = await set_up_cross_signing(alice)
    key_id = identity.key_id(identity.self_signing)
    signed = sign(device.device_keys(), alice.user_id, key_id, identity.self_signing)

    assert await upload_signatures(alice, {alice.user_id: {alice.device_id: signed}}) == {}

    shown = (await query_keys(bob, alice))["device_keys"][alice.user_id][alice.device_id]
    assert shown["signatures"][alice.user_id][key_id] == signed["signatures"][alice.user_id][key_id]
    assert f"ed25519:{alice.device_id}" in shown["signatures"][alice.user_id], "own kept"


async def test_a_device_may_sign_its_users_master_key(server):
    alice, bob = await register(server), await register(server)
    device = await upload_device_keys(alice)
    identity = await set_up_cross_signing(alice)
    master = device.sign(identity.upload_body()["master_key"])
    master_id = public_key(identity.master)

    assert await upload_signatures(alice, {alice.user_id: {master_id: master}}) == {}

    signatures = master_signatures(await query_keys(bob, alice), alice)
    assert (
        signatures[alice.user_id][device.key_id]
        == master["signatures"][alice.user_id][device.key_id]
    )


async def test_a_user_signing_signature_on_another_users_master_key_is_seen_only_by_its_maker(
    server,
):
    alice, bob, carol = await register(server), await register(server), await register(server)
    alice_identity = await set_up_cross_signing(alice)
    bob_identity = await set_up_cross_signing(bob)
    bob_master = bob_identity.upload_body()["master_key"]
    usk = alice_identity.user_signing
    signed = sign(bob_master, alice.user_id, alice_identity.key_id(usk), usk)

    failures = await upload_signatures(
        alice, {bob.user_id: {public_key(bob_identity.master): signed}}
    )

    assert failures == {}
    assert alice.user_id in master_signatures(await query_keys(alice, bob), bob)
    assert alice.user_id not in master_signatures(await query_keys(carol, bob), bob)
    assert alice.user_id not in master_signatures(await query_keys(bob, bob), bob)


async def test_a_forged_signature_is_reported_and_not_stored(server):
    alice = await register(server)
    device = await upload_device_keys(alice)
    identity = await set_up_cross_signing(alice)
    stored = (await query_keys(alice, alice))["device_keys"][alice.user_id][alice.device_id]
    forger = CrossSigningIdentity(alice.user_id).self_signing
    forged = sign(stored, alice.user_id, identity.key_id(identity.self_signing), forger)

    failures = await upload_signatures(alice, {alice.user_id: {alice.device_id: forged}})

    assert failures[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    shown = (await query_keys(alice, alice))["device_keys"][alice.user_id][alice.device_id]
    assert list(shown["signatures"][alice.user_id]) == [device.key_id]


async def test_a_signed_object_that_is_not_the_stored_key_is_reported(server):
    alice = await register(server)
    await upload_device_keys(alice)
    identity = await set_up_cross_signing(alice)
    other_keys = DeviceIdentity(alice.user_id, alice.device_id).device_keys()
    signed = sign(
        other_keys, alice.user_id, identity.key_id(identity.self_signing), identity.self_signing
    )
    failures = await upload_signatures(alice, {alice.user_id: {alice.device_id: signed}})
    assert failures[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"


async def test_a_signature_by_a_key_that_may_not_sign_that_key_is_reported(server):
    alice = await register(server)
    await upload_device_keys(alice)
    identity = await set_up_cross_signing(alice)
    stored = (await query_keys(alice, alice))["device_keys"][alice.user_id][alice.device_id]
    usk = identity.user_signing
    signed = sign(stored, alice.user_id, identity.key_id(usk), usk)
    failures = await upload_signatures(alice, {alice.user_id: {alice.device_id: signed}})
    assert failures[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"


async def test_signing_another_users_device_directly_is_reported_as_unknown(server):
    alice, bob = await register(server), await register(server)
    await upload_device_keys(bob)
    identity = await set_up_cross_signing(alice)
    bob_device = (await query_keys(alice, bob))["device_keys"][bob.user_id][bob.device_id]
    usk = identity.user_signing
    signed = sign(bob_device, alice.user_id, identity.key_id(usk), usk)
    failures = await upload_signatures(alice, {bob.user_id: {bob.device_id: signed}})
    assert failures[bob.user_id][bob.device_id]["errcode"] == "M_NOT_FOUND"


async def test_good_signatures_are_stored_even_when_others_in_the_request_fail(server):
    alice = await register(server)
    device = await upload_device_keys(alice)
    identity = await set_up_cross_signing(alice)
    master_id = public_key(identity.master)
    good = device.sign(identity.upload_body()["master_key"])
    request = {alice.user_id: {master_id: good, "NOSUCHDEVICE": {"user_id": alice.user_id}}}

    failures = await upload_signatures(alice, request)

    assert list(failures[alice.user_id]) == ["NOSUCHDEVICE"]
    assert device.key_id in master_signatures(await query_keys(alice, alice), alice)[alice.user_id]


async def test_an_uploaded_signature_lists_the_signed_user_as_changed_for_room_mates(server):
    _, (alice, bob) = await room_with_members(server, 2)
    device = await upload_device_keys(alice)
    identity = await set_up_cross_signing(alice)
    since = (await sync(bob))["next_batch"]
    master = device.sign(identity.upload_body()["master_key"])
    await upload_signatures(alice, {alice.user_id: {public_key(identity.master): master}})
    assert (await sync(bob, since))["device_lists"]["changed"] == [alice.user_id]


async def test_malformed_signature_uploads_are_refused(server):
    alice = await register(server)
    body = {alice.user_id: ["not", "an", "object"]}
    assert_error(await alice.post("/keys/signatures/upload", body), 400, "M_BAD_JSON")


# ---- secret storage: account data the server only stores


@pytest.mark.parametrize(
    ("event_type", "content"),
    [
        (
            "m.secret_storage.key.abcdef",
            {
                "name": "Recovery key",
                "algorithm": "m.secret_storage.v1.aes-hmac-sha2",
                "iv": "random+iv",
                "mac": "mac+of+zeros",
            },
        ),
        ("m.secret_storage.default_key", {"key": "abcdef"}),
        (
            "m.cross_signing.master",
            {"encrypted": {"abcdef": {"iv": "iv", "ciphertext": "secret", "mac": "mac"}}},
        ),
        (
            "m.megolm_backup.v1",
            {"encrypted": {"abcdef": {"iv": "iv", "ciphertext": "backup", "mac": "mac"}}},
        ),
    ],
)
async def test_secret_storage_account_data_round_trips_and_syncs(server, event_type, content):
    alice = await register(server)
    path = f"/user/{path_part(alice.user_id)}/account_data/{event_type}"
    ok(await alice.put(path, content))
    assert ok(await alice.get(path)) == content
    events = (await sync(alice))["account_data"]["events"]
    assert {"type": event_type, "content": content} in events
