"""Push rules, pushers, `/notifications` and delivery to a push gateway.

Spec: `content/client-server-api/modules/push.md`, `data/api/client-server/`
`pushrules.yaml`, `pusher.yaml`, `notifications.yaml`, and
`content/push-gateway-api.md`.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.support.matrix import User, assert_error, ok, register, room_with_members
from tests.support.push_gateway import start_gateway
from tests.support.server import TestServer, free_port, make_config, start_server


def pusher_body(url: str, pushkey: str = "key-1", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "app_id": "org.example.app",
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": url, "format": "full", "custom": "kept"},
        **extra,
    }


async def test_new_user_has_the_default_push_rules(server: TestServer):
    alice = await register(server)
    rules = ok(await alice.get("/pushrules/"))["global"]
    override_ids = [rule["rule_id"] for rule in rules["override"]]
    assert override_ids[0] == ".m.rule.master"
    for rule_id in (".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone"):
        assert rule_id in override_ids
    underride_ids = [rule["rule_id"] for rule in rules["underride"]]
    for rule_id in (".m.rule.call", ".m.rule.encrypted", ".m.rule.encrypted_room_one_to_one"):
        assert rule_id in underride_ids


async def test_default_rules_are_in_the_first_sync_account_data(server: TestServer):
    alice = await register(server)
    account_data = ok(await alice.get("/sync"))["account_data"]["events"]
    assert "m.push_rules" in [event["type"] for event in account_data]


async def test_user_rule_is_added_placed_and_deleted(server: TestServer):
    alice = await register(server)
    ok(
        await alice.put(
            "/pushrules/global/content/cake", {"pattern": "cake", "actions": ["notify"]}
        )
    )
    ok(
        await alice.request(
            "PUT",
            "/pushrules/global/content/pie",
            body={"pattern": "pie", "actions": ["notify"]},
            params={"before": "cake"},
        )
    )
    content = ok(await alice.get("/pushrules/global/"))["content"]
    assert [rule["rule_id"] for rule in content][:2] == ["pie", "cake"]
    assert ok(await alice.get("/pushrules/global/content/cake"))["enabled"] is True
    ok(await alice.request("DELETE", "/pushrules/global/content/cake"))
    assert_error(await alice.get("/pushrules/global/content/cake"), 404, "M_NOT_FOUND")


async def test_rule_relative_to_an_unknown_rule_is_400(server: TestServer):
    alice = await register(server)
    response = await alice.request(
        "PUT",
        "/pushrules/global/override/mine",
        body={"actions": ["notify"], "conditions": []},
        params={"after": "nope"},
    )
    assert_error(response, 400, "M_UNKNOWN")


async def test_server_default_rule_ids_cannot_be_created_or_deleted(server: TestServer):
    alice = await register(server)
    response = await alice.put("/pushrules/global/override/.mine", {"actions": []})
    assert response.status_code == 400
    response = await alice.request("DELETE", "/pushrules/global/override/.m.rule.master")
    assert response.status_code == 400


async def test_enabled_and_actions_can_be_changed_on_default_rules(server: TestServer):
    alice = await register(server)
    path = "/pushrules/global/override/.m.rule.master"
    ok(await alice.put(path + "/enabled", {"enabled": True}))
    assert ok(await alice.get(path + "/enabled")) == {"enabled": True}
    ok(await alice.put("/pushrules/global/underride/.m.rule.message/actions", {"actions": []}))
    assert ok(await alice.get("/pushrules/global/underride/.m.rule.message/actions")) == {
        "actions": []
    }


async def test_master_rule_silences_the_unread_counts(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await bob.put("/pushrules/global/override/.m.rule.master/enabled", {"enabled": True}))
    await alice.send(room_id, "quiet please")
    counts = ok(await bob.get("/sync"))["rooms"]["join"][room_id]["unread_notifications"]
    assert counts == {"notification_count": 0, "highlight_count": 0}


async def test_pusher_is_set_listed_and_deleted(server: TestServer):
    alice = await register(server)
    url = "http://127.0.0.1:9/_matrix/push/v1/notify"
    ok(await alice.post("/pushers/set", pusher_body(url)))
    (pusher,) = ok(await alice.get("/pushers"))["pushers"]
    assert pusher["pushkey"] == "key-1" and pusher["data"]["url"] == url
    ok(await alice.post("/pushers/set", {**pusher_body(url), "kind": None}))
    assert ok(await alice.get("/pushers"))["pushers"] == []


async def test_pusher_with_a_wrong_url_path_is_refused(server: TestServer):
    alice = await register(server)
    response = await alice.post("/pushers/set", pusher_body("https://push.example/notify"))
    assert_error(response, 400, "M_INVALID_PARAM")


async def test_pusher_without_required_fields_is_refused(server: TestServer):
    alice = await register(server)
    body = pusher_body("https://push.example/_matrix/push/v1/notify")
    del body["lang"]
    assert_error(await alice.post("/pushers/set", body), 400, "M_MISSING_PARAM")


async def test_notifications_list_mentions_and_marks_read(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    first = await alice.send(room_id, "plain")
    await alice.send(room_id, "for you", **{"m.mentions": {"user_ids": [bob.user_id]}})
    listed = ok(await bob.get("/notifications"))["notifications"]
    assert [n["event"]["content"]["body"] for n in listed] == ["for you", "plain"]
    assert all(n["read"] is False for n in listed)
    highlights = ok(await bob.get("/notifications", only="highlight"))["notifications"]
    assert [n["event"]["content"]["body"] for n in highlights] == ["for you"]
    ok(await bob.post(f"/rooms/{room_id}/receipt/m.read/{first}", {}))
    listed = ok(await bob.get("/notifications"))["notifications"]
    assert [n["read"] for n in listed] == [False, True]


async def test_notifications_paginate_with_next_token(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    for number in range(5):
        await alice.send(room_id, f"n{number}")
    page = ok(await bob.get("/notifications", limit=3))
    assert [n["event"]["content"]["body"] for n in page["notifications"]] == ["n4", "n3", "n2"]
    rest = ok(await bob.get("/notifications", limit=3, **{"from": page["next_token"]}))
    assert [n["event"]["content"]["body"] for n in rest["notifications"]] == ["n1", "n0"]
    assert "next_token" not in rest


async def _two_in_a_room(server: TestServer, gateway_url: str) -> tuple[str, User, User]:
    room_id, (alice, bob) = await room_with_members(server, 2)
    ok(await bob.post("/pushers/set", pusher_body(gateway_url)))
    return room_id, alice, bob


async def test_gateway_receives_the_notification_with_tweaks_and_data(server: TestServer, nursery):
    gateway = await start_gateway(nursery)
    room_id, alice, _bob = await _two_in_a_room(server, gateway.url)
    event_id = await alice.send(room_id, "ping")
    (body,) = await gateway.wait_for(1)
    notification = body["notification"]
    assert notification["event_id"] == event_id
    assert notification["room_id"] == room_id
    assert notification["sender"] == alice.user_id
    assert notification["content"]["body"] == "ping"
    assert notification["counts"]["unread"] >= 1
    (device,) = notification["devices"]
    assert device["pushkey"] == "key-1"
    assert device["data"] == {"format": "full", "custom": "kept"}
    assert device["tweaks"] == {"sound": "default"}  # .m.rule.room_one_to_one


async def test_own_messages_and_suppressed_notices_are_not_pushed(server: TestServer, nursery):
    gateway = await start_gateway(nursery)
    room_id, alice, bob = await _two_in_a_room(server, gateway.url)
    await bob.send(room_id, "my own")
    await alice.send(room_id, "a notice", msgtype="m.notice")
    await alice.send(room_id, "real one")
    (body,) = await gateway.wait_for(1)
    assert body["notification"]["content"]["body"] == "real one"


async def test_failed_push_is_retried_until_delivered(server: TestServer, nursery):
    gateway = await start_gateway(nursery)
    gateway.failures_left = 1
    room_id, alice, _bob = await _two_in_a_room(server, gateway.url)
    await alice.send(room_id, "try again")
    (body,) = await gateway.wait_for(1)
    assert body["notification"]["content"]["body"] == "try again"
    assert gateway.attempts == 2


async def test_rejected_pushkey_removes_the_pusher(server: TestServer, nursery):
    gateway = await start_gateway(nursery)
    gateway.rejected = ["key-1"]
    room_id, alice, bob = await _two_in_a_room(server, gateway.url)
    await alice.send(room_id, "last one")
    await gateway.wait_for(1)
    with trio.fail_after(10):
        while ok(await bob.get("/pushers"))["pushers"]:
            await trio.sleep(0.02)


async def test_queued_push_survives_a_restart(nursery, tmp_path):
    """A push queued while the gateway is down is delivered after the server restarts."""
    config = make_config(tmp_path / "db")
    gateway_port = free_port()
    url = f"http://127.0.0.1:{gateway_port}/_matrix/push/v1/notify"
    async with trio.open_nursery() as first_run:
        server = await start_server(first_run, config)
        room_id, alice, _bob = await _two_in_a_room(server, url)
        await alice.send(room_id, "while the gateway sleeps")
        await server.client.aclose()
        await server.stop()
    gateway = await start_gateway(nursery, gateway_port)
    second = await start_server(nursery, config)
    try:
        (body,) = await gateway.wait_for(1)
        assert body["notification"]["content"]["body"] == "while the gateway sleeps"
    finally:
        await second.client.aclose()
        await second.stop()
