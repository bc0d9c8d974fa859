"""Small answer shapes that broke real clients (issue #14), each against the spec's schema.

Spec: `data/api/client-server/device_management.yaml`, `members.yaml`
(`joined_members`), `data/event-schemas/schema/m.room.topic.yaml`,
`room_event_by_timestamp.yaml`, `search.yaml`, `pusher.yaml`, `keys.yaml`,
`filter.yaml`, `redaction.yaml`, `admin.yaml`, `versions.yaml`,
`cross_signing.yaml`, `room_upgrades.yaml`, `pushrules.yaml`, `joining.yaml`.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from nio import AsyncClient, DevicesResponse, JoinedMembersResponse

from tests.support.matrix import (
    CLIENT_V1,
    User,
    assert_error,
    ok,
    path_part,
    register,
    room_with_members,
)
from tests.support.nio import in_asyncio
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()

UNSTABLE = "/_matrix/client/unstable"


def device_keys_of(user: User) -> dict[str, Any]:
    """Well-formed (unsigned-by-a-real-key) device keys for the user's device."""
    return {
        "user_id": user.user_id,
        "device_id": user.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{user.device_id}": "curve+key",
            f"ed25519:{user.device_id}": "ed+key",
        },
        "signatures": {user.user_id: {f"ed25519:{user.device_id}": "sig"}},
    }


# ---- /devices


async def test_nio_lists_devices_whose_name_and_last_seen_are_unknown(server: SharedServer):
    """device_management.yaml: `display_name`, `last_seen_ip`, `last_seen_ts` are
    nullable; matrix-nio's `devices()` requires the keys, so they are sent as null
    (as Synapse does) rather than left out."""
    alice = await register(server)
    raw = ok(await alice.get("/devices"))["devices"]
    never_seen = [d for d in raw if d["device_id"] == alice.device_id]
    assert never_seen and set(never_seen[0]) >= {"display_name", "last_seen_ip", "last_seen_ts"}

    async def scenario() -> Any:
        client = AsyncClient(server.base_url, alice.user_id)
        client.access_token = alice.access_token
        client.user_id = alice.user_id
        client.device_id = alice.device_id
        try:
            return await client.devices()
        finally:
            await client.close()

    listed = await in_asyncio(scenario)
    assert isinstance(listed, DevicesResponse), listed
    assert [device.id for device in listed.devices] == [alice.device_id]
    one = ok(await alice.get(f"/devices/{path_part(alice.device_id)}"))
    assert one["display_name"] is None


# ---- joined_members, m.room.topic


async def test_joined_members_leaves_out_unset_display_names_and_avatars(server: SharedServer):
    """members.yaml `RoomMember`: `display_name`/`avatar_url` are optional strings, not null."""
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await bob.put(f"/profile/{path_part(bob.user_id)}/displayname", {"displayname": None}))
    joined = ok(await alice.get(f"/rooms/{path_part(room_id)}/joined_members"))["joined"]
    assert joined[bob.user_id] == {}
    assert set(joined[alice.user_id]) == {"display_name"}
    assert isinstance(joined[alice.user_id]["display_name"], str)

    async def scenario() -> Any:
        client = AsyncClient(server.base_url, alice.user_id)
        client.access_token, client.user_id = alice.access_token, alice.user_id
        try:
            return await client.joined_members(room_id)
        finally:
            await client.close()

    members = await in_asyncio(scenario)  # matrix-nio reads the shape as before
    assert isinstance(members, JoinedMembersResponse), members
    assert {m.user_id: m.display_name for m in members.members}[bob.user_id] is None


async def test_a_rooms_topic_has_the_m_topic_object_of_the_schema(server: SharedServer):
    """m.room.topic: `m.topic` is an object whose `m.text` is a list of renderings."""
    alice = await register(server)
    room_id = await alice.create_room(topic="Gardening")
    content = ok(await alice.get_state(room_id, "m.room.topic"))
    assert content == {
        "topic": "Gardening",
        "m.topic": {"m.text": [{"body": "Gardening", "mimetype": "text/plain"}]},
    }


# ---- /timestamp_to_event


async def timestamp_to_event(user: User, room_id: str, ts: int, direction: str) -> Any:
    return await user.request(
        "GET",
        f"/rooms/{path_part(room_id)}/timestamp_to_event",
        params={"ts": ts, "dir": direction},
        prefix=CLIENT_V1,
    )


async def test_timestamp_to_event_between_two_messages_gives_the_one_on_each_side(
    server: SharedServer,
):
    """room_event_by_timestamp.yaml: "the closest event to the given timestamp in the
    given direction"."""
    alice = await register(server)
    room_id = await alice.create_room()
    sent = []
    for number in range(4):
        event_id = await alice.send(room_id, f"m{number}")
        event = ok(await alice.get(f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}"))
        sent.append((event_id, event["origin_server_ts"]))
        await trio.sleep(0.02)  # distinct timestamps, the server's own clock
    (_, ts1), (second, ts2), (third, ts3) = sent[0], sent[1], sent[2]
    between = ts2 + (ts3 - ts2) // 2
    assert ts2 < between < ts3
    forwards = ok(await timestamp_to_event(alice, room_id, between, "f"))
    assert forwards == {"event_id": third, "origin_server_ts": ts3}
    backwards = ok(await timestamp_to_event(alice, room_id, between, "b"))
    assert backwards == {"event_id": second, "origin_server_ts": ts2}
    assert ts1 < ts2


async def test_timestamp_to_event_skips_events_the_user_may_not_see(server: SharedServer):
    """room_event_by_timestamp.yaml with history visibility: the closest event on that
    side *the user may see* (not a 404 because a hidden one is closer)."""
    alice, bob = await register(server), await register(server)
    room_id = await alice.create_room(preset="public_chat")
    await alice.set_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    first = await alice.send(room_id, "before bob")
    await trio.sleep(0.02)
    await alice.send(room_id, "still before bob")
    await trio.sleep(0.02)
    await bob.join(room_id)
    joined = ok(await bob.get_state(room_id, "m.room.member", bob.user_id))
    assert joined["membership"] == "join"
    first_ts = ok(await alice.get(f"/rooms/{path_part(room_id)}/event/{path_part(first)}"))[
        "origin_server_ts"
    ]
    found = ok(await timestamp_to_event(bob, room_id, first_ts + 1, "f"))
    event = ok(await bob.get(f"/rooms/{path_part(room_id)}/event/{path_part(found['event_id'])}"))
    assert event["type"] == "m.room.member" and event["state_key"] == bob.user_id
    assert ok(await timestamp_to_event(alice, room_id, first_ts, "f"))["event_id"] == first


# ---- bad input refused with the spec's errcode


async def test_search_without_search_categories_is_400(server: SharedServer):
    """search.yaml: `search_categories` is required."""
    alice = await register(server)
    assert_error(await alice.post("/search", {}), 400, "M_MISSING_PARAM")
    assert_error(await alice.post("/search", {"search_categories": []}), 400, "M_BAD_JSON")


async def test_an_http_pusher_without_data_url_is_400_missing_param(server: SharedServer):
    """pusher.yaml: `data.url` "is required if `kind` is `http`"."""
    alice = await register(server)
    body = {
        "kind": "http",
        "app_id": "org.example.app",
        "pushkey": "key-1",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"format": "event_id_only"},
    }
    assert_error(await alice.post("/pushers/set", body), 400, "M_MISSING_PARAM")
    body["data"] = {"url": 7}
    assert_error(await alice.post("/pushers/set", body), 400, "M_BAD_JSON")


async def test_key_uploads_of_the_wrong_shape_are_bad_json(server: SharedServer):
    """keys.yaml: `device_keys`, `one_time_keys`, `fallback_keys` are objects: another
    type is malformed JSON (M_BAD_JSON); keys of another device are a wrong value
    (M_INVALID_PARAM)."""
    alice = await register(server)
    for field in ("device_keys", "one_time_keys", "fallback_keys"):
        assert_error(await alice.post("/keys/upload", {field: ["x"]}), 400, "M_BAD_JSON")
    someone_else = device_keys_of(alice) | {"device_id": "NOTMINE"}
    response = await alice.post("/keys/upload", {"device_keys": someone_else})
    assert_error(response, 400, "M_INVALID_PARAM")


async def test_queried_device_keys_always_carry_unsigned(server: SharedServer):
    """keys.yaml `DeviceInformation.unsigned` (sytest "Can query device keys using POST"):
    an object even when the device has no display name, which is then left out."""
    alice = await register(server)
    ok(await alice.post("/keys/upload", {"device_keys": device_keys_of(alice)}))
    queried = ok(await alice.post("/keys/query", {"device_keys": {alice.user_id: []}}))
    keys = queried["device_keys"][alice.user_id][alice.device_id]
    assert keys["unsigned"] == {}
    ok(await alice.put(f"/devices/{path_part(alice.device_id)}", {"display_name": "Phone"}))
    queried = ok(await alice.post("/keys/query", {"device_keys": {alice.user_id: []}}))
    keys = queried["device_keys"][alice.user_id][alice.device_id]
    assert keys["unsigned"] == {"device_display_name": "Phone"}


async def test_filters_naming_malformed_room_or_user_ids_are_refused(server: SharedServer):
    """filter.yaml: `rooms`/`not_rooms` list room ids, `senders`/`not_senders` user ids."""
    alice = await register(server)
    path = f"/user/{path_part(alice.user_id)}/filter"
    for bad in (
        {"room": {"rooms": ["not-a-room"]}},
        {"room": {"not_rooms": ["#alias:localhost"]}},
        {"room": {"timeline": {"senders": ["alice"]}}},
        {"room": {"state": {"not_senders": ["@"]}}},
        {"presence": {"senders": ["nobody"]}},
        {"room": {"timeline": {"rooms": ["!"]}}},
    ):
        assert_error(await alice.post(path, bad), 400, "M_BAD_JSON")
    good = {"room": {"rooms": ["!abc:localhost"], "timeline": {"senders": [alice.user_id]}}}
    ok(await alice.post(path, good))
    inline = json.dumps({"room": {"rooms": ["nope"]}})
    assert_error(await alice.get("/sync", filter=inline), 400, "M_BAD_JSON")


async def test_a_redaction_of_an_event_of_another_room_is_refused(server: SharedServer):
    """redaction.yaml: the event to redact is one of *this* room's events."""
    alice = await register(server)
    first, second = await alice.create_room(), await alice.create_room()
    elsewhere = await alice.send(second, "not from the first room")
    response = await alice.put(
        f"/rooms/{path_part(first)}/redact/{path_part(elsewhere)}/txn-redact", {}
    )
    assert_error(response, 400, "M_INVALID_PARAM")
    event = ok(await alice.get(f"/rooms/{path_part(second)}/event/{path_part(elsewhere)}"))
    assert event["content"]["body"] == "not from the first room"


async def test_whois_names_the_user_agent_of_each_connection(server: SharedServer):
    """admin.yaml `ConnectionInfo`: `ip`, `last_seen` and `user_agent`."""
    alice = await register(server)
    response = await alice.http.get(
        f"/_matrix/client/v3/admin/whois/{path_part(alice.user_id)}",
        headers={"Authorization": f"Bearer {alice.access_token}", "User-Agent": "Garden/1.0"},
    )
    connection = ok(response)["devices"][alice.device_id]["sessions"][0]["connections"][0]
    assert connection["user_agent"] == "Garden/1.0"
    assert connection["ip"] == "127.0.0.1"


# ---- what Element and bridges rely on


async def test_versions_advertise_cross_signing_for_element(server: SharedServer):
    """Element sets up cross-signing at registration only with `org.matrix.e2e_cross_signing`
    in `unstable_features` (else every message shows "not verified by its owner")."""
    body = ok(await server.client.get("/_matrix/client/versions"))
    assert body["unstable_features"]["org.matrix.e2e_cross_signing"] is True


async def test_the_unstable_device_signing_upload_path_is_served(server: SharedServer):
    """Element asks `POST /unstable/keys/device_signing/upload` for its auth stages: the
    v3 route's answer (401 with the flows), not 404."""
    alice = await register(server)
    for prefix in (UNSTABLE, "/_matrix/client/v3"):
        response = await alice.request(
            "POST", "/keys/device_signing/upload", body={}, prefix=prefix
        )
        assert response.status_code in (200, 401), (prefix, response.text)
    master = {
        "user_id": alice.user_id,
        "usage": ["master"],
        "keys": {"ed25519:masterkey": "masterkey"},
    }
    uploaded = await alice.request(
        "POST", "/keys/device_signing/upload", body={"master_key": master}, prefix=UNSTABLE
    )
    ok(uploaded)


async def test_an_upgraded_rooms_predecessor_names_the_tombstone(server: SharedServer):
    """room_upgrades: `predecessor.event_id` is the old room's tombstone, as Synapse and
    Conduit set it (clients and bridges follow it back to the tombstone)."""
    alice = await register(server)
    old = await alice.create_room(room_version="10")
    await alice.send(old, "last words")
    new = ok(await alice.post(f"/rooms/{path_part(old)}/upgrade", {"new_version": "11"}))
    new_room = new["replacement_room"]
    create = ok(await alice.get_state(new_room, "m.room.create"))
    tombstone_events = [
        event
        for event in ok(await alice.get(f"/rooms/{path_part(old)}/state"))
        if event["type"] == "m.room.tombstone"
    ]
    assert create["predecessor"] == {"room_id": old, "event_id": tombstone_events[0]["event_id"]}
    assert tombstone_events[0]["content"]["replacement_room"] == new_room


async def test_push_rules_of_one_kind_are_listed(server: SharedServer):
    """`GET /pushrules/global/{kind}/` lists that kind's rules (as Synapse answers)."""
    alice = await register(server)
    everything = ok(await alice.get("/pushrules/global/"))
    for kind in ("override", "content", "room", "sender", "underride"):
        assert ok(await alice.get(f"/pushrules/global/{kind}/")) == everything[kind]
    assert_error(await alice.get("/pushrules/global/nonsense/"), 400, "M_INVALID_PARAM")


async def test_joining_again_with_nothing_changed_sends_no_new_event(server: SharedServer):
    """joining.yaml: a join with unchanged content is a no-op (Synapse sends no event)."""
    room_id, (alice, bob) = await room_with_members(server, 2)
    before = ok(await alice.get_state(room_id, "m.room.member", bob.user_id))
    timeline_before = await alice.timeline(room_id)
    assert await bob.join(room_id) == room_id
    ok(await bob.post(f"/rooms/{path_part(room_id)}/join"))
    assert await alice.timeline(room_id) == timeline_before
    assert ok(await alice.get_state(room_id, "m.room.member", bob.user_id)) == before
    with_reason = ok(await bob.post(f"/rooms/{path_part(room_id)}/join", {"reason": "again"}))
    assert with_reason["room_id"] == room_id
    assert len(await alice.timeline(room_id)) == len(timeline_before) + 1
