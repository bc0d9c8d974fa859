"""Device keys over HTTP: upload, query, claim, `/keys/changes`, and the E2EE parts of `/sync`.

Spec: `content/client-server-api/modules/end_to_end_encryption.md` ("One-time
and fallback keys", "Uploading keys", "Tracking the device list for a user",
"Extensions to /sync") and `data/api/client-server/keys.yaml`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.accounts import password_auth
from tests.support.e2ee import (
    SIGNED_CURVE25519,
    identity_of,
    query_keys,
    sync,
    upload_device_keys,
    wake_signal,
)
from tests.support.matrix import (
    User,
    assert_error,
    new_device,
    ok,
    path_part,
    register,
    room_with_members,
)
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

PASSWORD = "key test password"


async def upload(user: User, body: dict[str, Any]) -> dict[str, int]:
    return ok(await user.post("/keys/upload", body))["one_time_key_counts"]


async def claim(user: User, owner: User, algorithm: str = SIGNED_CURVE25519) -> dict[str, Any]:
    body = {"one_time_keys": {owner.user_id: {owner.device_id: algorithm}}}
    return ok(await user.post("/keys/claim", body))


def claimed_key(response: dict[str, Any], owner: User) -> dict[str, Any] | None:
    return response["one_time_keys"].get(owner.user_id, {}).get(owner.device_id)


async def key_changes(user: User, since: str, until: str) -> dict[str, list[str]]:
    return ok(await user.get("/keys/changes", **{"from": since, "to": until}))


# ---- upload and query


async def test_uploaded_device_keys_are_what_others_query_with_the_device_name(server):
    alice, bob = await register(server), await register(server)
    ok(await alice.put(f"/devices/{path_part(alice.device_id)}", {"display_name": "Phone"}))
    identity = identity_of(alice)
    device_keys = identity.device_keys()
    ok(await alice.post("/keys/upload", {"device_keys": device_keys}))

    answer = await query_keys(bob, alice)

    shown = answer["device_keys"][alice.user_id][alice.device_id]
    assert shown == {**device_keys, "unsigned": {"device_display_name": "Phone"}}
    assert answer["failures"] == {}


async def test_upload_answers_the_unclaimed_one_time_key_count_per_algorithm(server):
    alice = await register(server)
    identity = identity_of(alice)
    assert await upload(alice, {}) == {}
    assert await upload(alice, {"one_time_keys": identity.one_time_keys(3)}) == {
        SIGNED_CURVE25519: 3
    }
    plain = {"curve25519:PLAIN1": "a bare curve25519 key"}
    counts = await upload(alice, {"one_time_keys": {**identity.one_time_keys(2), **plain}})
    assert counts == {SIGNED_CURVE25519: 5, "curve25519": 1}


async def test_a_one_time_key_sent_again_is_kept_once_and_a_different_key_under_its_id_refused(
    server,
):
    alice = await register(server)
    keys = identity_of(alice).one_time_keys(2)
    await upload(alice, {"one_time_keys": keys})
    assert await upload(alice, {"one_time_keys": keys}) == {SIGNED_CURVE25519: 2}

    name = next(iter(keys))
    changed = {name: identity_of(alice).one_time_keys(1).popitem()[1]}
    response = await alice.post("/keys/upload", {"one_time_keys": changed})
    assert_error(response, 400, "M_INVALID_PARAM")
    assert await upload(alice, {}) == {SIGNED_CURVE25519: 2}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"user_id": "@someone.else:localhost"}, "another user's keys"),
        ({"device_id": "OTHERDEVICE"}, "another device's keys"),
        ({"keys": {"curve25519:X": "abc"}}, "no ed25519 key of the device"),
        ({"algorithms": "m.olm.v1.curve25519-aes-sha2"}, "algorithms not a list"),
        ({"signatures": None}, "no signatures"),
    ],
)
async def test_device_keys_that_are_not_this_devices_are_refused(server, change, why):
    alice = await register(server)
    device_keys = {**identity_of(alice).device_keys(), **change}
    response = await alice.post("/keys/upload", {"device_keys": device_keys})
    assert_error(response, 400, "M_INVALID_PARAM")
    assert (await query_keys(alice, alice))["device_keys"][alice.user_id] == {}, why


@pytest.mark.parametrize(
    "one_time_keys",
    [
        {"no-algorithm-separator": {"key": "abc"}},
        {"signed_curve25519:K": 42},
        {"signed_curve25519:K": {"signatures": {}}},
    ],
)
async def test_malformed_one_time_keys_are_refused(server, one_time_keys):
    alice = await register(server)
    response = await alice.post("/keys/upload", {"one_time_keys": one_time_keys})
    assert_error(response, 400, "M_INVALID_PARAM")
    # not an object at all: malformed JSON (test_client_shapes.py)
    not_an_object = await alice.post("/keys/upload", {"one_time_keys": ["not", "an", "object"]})
    assert_error(not_an_object, 400, "M_BAD_JSON")


async def test_only_one_fallback_key_per_algorithm_may_be_uploaded(server):
    alice = await register(server)
    two = identity_of(alice).one_time_keys(2, fallback=True)
    assert_error(await alice.post("/keys/upload", {"fallback_keys": two}), 400, "M_INVALID_PARAM")


async def test_device_keys_sent_again_with_the_same_keys_keep_signatures_already_stored(server):
    alice = await register(server)
    identity = identity_of(alice)
    device_keys = identity.device_keys()
    ok(await alice.post("/keys/upload", {"device_keys": device_keys}))
    extra = {**device_keys, "signatures": {"@other:localhost": {"ed25519:X": "sig"}}}
    ok(await alice.post("/keys/upload", {"device_keys": extra}))

    stored = (await query_keys(alice, alice))["device_keys"][alice.user_id][alice.device_id]
    assert stored["signatures"][alice.user_id] == device_keys["signatures"][alice.user_id]


async def test_query_of_named_devices_returns_those_with_keys_and_skips_unknown_ones(server):
    alice = await register(server, password=PASSWORD)
    laptop = await new_device(server, alice)
    await upload_device_keys(alice)
    await upload_device_keys(laptop)
    body = {"device_keys": {alice.user_id: [laptop.device_id, "NOSUCHDEVICE"]}}

    answer = ok(await alice.post("/keys/query", body))

    assert set(answer["device_keys"][alice.user_id]) == {laptop.device_id}
    everything = await query_keys(alice, alice)
    assert set(everything["device_keys"][alice.user_id]) == {alice.device_id, laptop.device_id}


async def test_query_of_a_user_without_keys_gives_no_devices(server):
    alice, bob = await register(server), await register(server)
    answer = await query_keys(alice, bob, "@never-registered:localhost")
    assert answer["device_keys"] == {bob.user_id: {}, "@never-registered:localhost": {}}


async def test_query_and_claim_for_users_on_other_servers_report_those_servers_as_failures(
    server,
):
    alice = await register(server)
    answer = await query_keys(alice, "@bob:elsewhere.example")
    assert set(answer["failures"]) == {"elsewhere.example"}
    assert answer["device_keys"] == {}
    body = {"one_time_keys": {"@bob:elsewhere.example": {"DEVICE": SIGNED_CURVE25519}}}
    claimed = ok(await alice.post("/keys/claim", body))
    assert set(claimed["failures"]) == {"elsewhere.example"}
    assert claimed["one_time_keys"] == {}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"device_keys": ["@alice:localhost"]}, "M_BAD_JSON"),
        ({"device_keys": {"@alice:localhost": "ALL"}}, "M_BAD_JSON"),
        ({"device_keys": {"alice": []}}, "M_INVALID_PARAM"),
    ],
)
async def test_malformed_queries_are_refused(server, body, errcode):
    alice = await register(server)
    assert_error(await alice.post("/keys/query", body), 400, errcode)


async def test_malformed_claims_are_refused(server):
    alice = await register(server)
    assert_error(await alice.post("/keys/claim", {}), 400, "M_MISSING_PARAM")
    body = {"one_time_keys": {alice.user_id: {"DEVICE": 1}}}
    assert_error(await alice.post("/keys/claim", body), 400, "M_BAD_JSON")


async def test_key_endpoints_need_an_access_token(server):
    for path in ("/keys/upload", "/keys/query", "/keys/claim"):
        response = await server.client.post(f"/_matrix/client/v3{path}", json={})
        assert_error(response, 401, "M_MISSING_TOKEN")


# ---- claim


async def test_each_one_time_key_is_claimed_once_oldest_upload_first(server):
    alice, bob = await register(server), await register(server)
    identity = identity_of(alice)
    first, second = identity.one_time_keys(1), identity.one_time_keys(1)
    await upload(alice, {"one_time_keys": first})
    await upload(alice, {"one_time_keys": second})

    assert claimed_key(await claim(bob, alice), alice) == first
    assert claimed_key(await claim(bob, alice), alice) == second
    assert claimed_key(await claim(bob, alice), alice) is None
    assert await upload(alice, {}) == {}


async def test_a_claim_for_an_algorithm_the_device_has_no_key_for_gets_nothing(server):
    alice, bob = await register(server), await register(server)
    await upload(alice, {"one_time_keys": identity_of(alice).one_time_keys(1)})
    assert claimed_key(await claim(bob, alice, "curve25519"), alice) is None
    assert await upload(alice, {}) == {SIGNED_CURVE25519: 1}


async def test_with_no_one_time_keys_left_the_fallback_key_is_given_out_and_reported_used(server):
    alice, bob = await register(server), await register(server)
    identity = identity_of(alice)
    fallback = identity.one_time_keys(1, fallback=True)
    await upload(alice, {"fallback_keys": fallback, "one_time_keys": identity.one_time_keys(1)})
    assert (await sync(alice))["device_unused_fallback_key_types"] == [SIGNED_CURVE25519]

    one_time = claimed_key(await claim(bob, alice), alice)
    assert one_time is not None and one_time != fallback
    assert claimed_key(await claim(bob, alice), alice) == fallback
    assert claimed_key(await claim(bob, alice), alice) == fallback
    assert (await sync(alice))["device_unused_fallback_key_types"] == []

    await upload(alice, {"fallback_keys": fallback})
    assert (await sync(alice))["device_unused_fallback_key_types"] == [], "same key, still used"
    await upload(alice, {"fallback_keys": identity.one_time_keys(1, fallback=True)})
    assert (await sync(alice))["device_unused_fallback_key_types"] == [SIGNED_CURVE25519]


async def test_sync_counts_the_devices_unclaimed_one_time_keys(server):
    alice, bob = await register(server), await register(server)
    await upload(alice, {"one_time_keys": identity_of(alice).one_time_keys(4)})
    assert (await sync(alice))["device_one_time_keys_count"] == {SIGNED_CURVE25519: 4}
    await claim(bob, alice)
    assert (await sync(alice))["device_one_time_keys_count"] == {SIGNED_CURVE25519: 3}


# ---- who changed: /keys/changes and device_lists in /sync


async def test_key_changes_lists_room_mates_who_changed_keys_and_not_strangers(server):
    _, (alice, bob) = await room_with_members(server, 2)
    stranger = await register(server)
    since = (await sync(alice))["next_batch"]
    await upload_device_keys(bob)
    await upload_device_keys(stranger)
    until = (await sync(alice))["next_batch"]

    changes = await key_changes(alice, since, until)

    assert changes == {"changed": [bob.user_id], "left": []}
    assert await key_changes(alice, until, until) == {"changed": [], "left": []}


async def test_key_changes_after_the_to_token_wait_for_the_next_range(server):
    _, (alice, bob) = await room_with_members(server, 2)
    since = (await sync(alice))["next_batch"]
    until = (await sync(alice))["next_batch"]
    await upload_device_keys(bob)
    assert (await key_changes(alice, since, until))["changed"] == []


async def test_key_changes_needs_a_from_token_and_rejects_foreign_ones(server):
    alice = await register(server)
    assert_error(await alice.get("/keys/changes", to="5"), 400, "M_MISSING_PARAM")
    response = await alice.get("/keys/changes", **{"from": "yesterday", "to": "5"})
    assert_error(response, 400, "M_INVALID_PARAM")


async def test_incremental_sync_lists_a_room_mate_who_uploaded_keys_once(server):
    _, (alice, bob) = await room_with_members(server, 2)
    first = await sync(alice)
    await upload_device_keys(bob)

    second = await sync(alice, first["next_batch"])
    assert second["device_lists"]["changed"] == [bob.user_id]
    third = await sync(alice, second["next_batch"])
    assert third["device_lists"] == {"changed": [], "left": []}


async def test_uploading_keys_wakes_the_syncs_of_room_mates_only(server):
    _, (alice, bob) = await room_with_members(server, 2)
    stranger = await register(server)
    alice_woken = await wake_signal(server, alice)
    stranger_woken = await wake_signal(server, stranger)
    await upload_device_keys(bob)
    assert alice_woken.is_set()
    assert not stranger_woken.is_set()


async def test_one_time_keys_alone_are_no_device_list_change(server):
    _, (alice, bob) = await room_with_members(server, 2)
    since = (await sync(alice))["next_batch"]
    await upload(bob, {"one_time_keys": identity_of(bob).one_time_keys(2)})
    assert (await sync(alice, since))["device_lists"]["changed"] == []


async def test_a_user_joining_a_shared_room_is_listed_as_changed(server):
    room_id, (alice,) = await room_with_members(server, 1)
    bob = await register(server)
    await upload_device_keys(bob)
    since = (await sync(alice))["next_batch"]
    await bob.join(room_id)
    assert (await sync(alice, since))["device_lists"]["changed"] == [bob.user_id]


async def test_joining_a_room_lists_all_its_members_as_changed(server):
    room_id, (alice, bob) = await room_with_members(server, 2)
    carol = await register(server)
    since = (await sync(carol))["next_batch"]
    await carol.join(room_id)
    changed = (await sync(carol, since))["device_lists"]["changed"]
    assert set(changed) == {alice.user_id, bob.user_id, carol.user_id}


async def test_a_user_leaving_the_last_shared_room_is_listed_as_left(server):
    room_id, (alice, bob) = await room_with_members(server, 2)
    since = (await sync(alice))["next_batch"]
    await bob.leave(room_id)
    device_lists = (await sync(alice, since))["device_lists"]
    assert device_lists == {"changed": [], "left": [bob.user_id]}


async def test_a_user_leaving_one_room_while_sharing_another_is_not_listed_as_left(server):
    room_id, (alice, bob) = await room_with_members(server, 2)
    other_room = await alice.create_room(preset="public_chat")
    await bob.join(other_room)
    since = (await sync(alice))["next_batch"]
    await bob.leave(room_id)
    assert (await sync(alice, since))["device_lists"]["left"] == []


async def test_leaving_a_room_lists_its_members_who_share_no_other_room_as_left(server):
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    other_room = await alice.create_room(preset="public_chat")
    await carol.join(other_room)
    since = (await sync(alice))["next_batch"]
    await alice.leave(room_id)
    assert (await sync(alice, since))["device_lists"]["left"] == [bob.user_id]


async def delete_device(user: User, device_id: str) -> None:
    """`DELETE /devices/{deviceId}`, confirming with the password (user-interactive auth)."""
    path = f"/devices/{path_part(device_id)}"
    challenge = await user.request("DELETE", path, body={})
    auth = password_auth(user.user_id, PASSWORD, session=challenge.json()["session"])
    ok(await user.request("DELETE", path, body={"auth": auth}))


async def test_deleting_a_device_deletes_its_keys_and_lists_its_user_as_changed(server):
    room_id, (bob,) = await room_with_members(server, 1)
    alice = await register(server, password=PASSWORD)
    await alice.join(room_id)
    laptop = await new_device(server, alice)
    await upload_device_keys(laptop)
    since = (await sync(bob))["next_batch"]
    bob_woken = await wake_signal(server, bob)

    await delete_device(alice, laptop.device_id)

    assert bob_woken.is_set()
    assert (await query_keys(bob, alice))["device_keys"][alice.user_id] == {}
    assert alice.user_id in (await sync(bob, since))["device_lists"]["changed"]
