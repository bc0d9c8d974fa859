"""EDUs between two of our servers: what one server's users do, the other's clients see.

Spec: `content/server-server-api.md`, "EDUs", "Typing Notifications",
"Receipts", "Presence", "Device Management", "Send-to-device messaging".
Each EDU goes only to the servers of the rooms it concerns
(`../shared/notes/federation-lessons.md`, EDU storms); on the receiving
side it reaches the local clients' `/sync`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import trio

from matrix_conduit.core.signing import generate_signing_key
from matrix_conduit.service.federation.errors import RemoteError
from tests.support.e2ee import CrossSigningIdentity, upload_device_keys
from tests.support.federated_rooms import (
    SendLog,
    add_remote_member,
    install_recording_send,
    persist_foreign,
    share_room,
    wait_until,
)
from tests.support.federation import (
    ECHO_PATH,
    FederatingServer,
    restart,
    serve_https,
    start_federating,
)
from tests.support.matrix import User, new_device, ok, path_part, register
from tests.support.rooms import RemoteServer


async def sync_until(
    user: User, since: str | None, holds: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> dict[str, Any]:
    """Long-poll `/sync` from `since` until a response for which `holds` is true."""
    with trio.fail_after(timeout):
        while True:
            params: dict[str, Any] = {"timeout": 1000}
            if since is not None:
                params["since"] = since
            response = ok(await user.get("/sync", **params))
            if holds(response):
                return response
            since = response["next_batch"]


def ephemeral(response: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    room = response.get("rooms", {}).get("join", {}).get(room_id, {})
    events = room.get("ephemeral", {}).get("events", [])
    return [event["content"] for event in events if event["type"] == event_type]


async def two_servers(
    nursery, ca, tmp_path, monkeypatch
) -> tuple[SendLog, FederatingServer, FederatingServer, User, User, str]:
    """A on 127.0.0.2 with alice, B on 127.0.0.3 with bob, and alice's room they share."""
    sent = install_recording_send(monkeypatch)
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, bob = await register(a.server, "alice"), await register(b.server, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await share_room(a, b, room_id, bob.user_id)
    return sent, a, b, alice, bob, room_id


async def test_typing_reaches_the_other_servers_clients(nursery, ca, tmp_path, monkeypatch):
    sent, a, _b, alice, bob, room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    since = ok(await bob.get("/sync"))["next_batch"]

    typing_path = f"/rooms/{path_part(room_id)}/typing/{path_part(alice.user_id)}"
    ok(await alice.put(typing_path, {"typing": True, "timeout": 30000}))

    response = await sync_until(
        bob, since, lambda r: [{"user_ids": [alice.user_id]}] == ephemeral(r, room_id, "m.typing")
    )
    assert sent.edus(a.name, "m.typing")[-1] == {
        "room_id": room_id,
        "user_id": alice.user_id,
        "typing": True,
    }
    ok(await alice.put(typing_path, {"typing": False}))
    await sync_until(
        bob,
        response["next_batch"],
        lambda r: ephemeral(r, room_id, "m.typing") == [{"user_ids": []}],
    )


async def test_a_read_receipt_reaches_the_other_servers_clients(nursery, ca, tmp_path, monkeypatch):
    sent, a, _b, alice, bob, room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    event_id = await alice.send(room_id, "read me")
    since = ok(await bob.get("/sync"))["next_batch"]

    receipt_path = f"/rooms/{path_part(room_id)}/receipt/m.read/{path_part(event_id)}"
    ok(await alice.post(receipt_path, {}))

    def alice_read(response: dict[str, Any]) -> bool:
        return any(
            alice.user_id in content.get(event_id, {}).get("m.read", {})
            for content in ephemeral(response, room_id, "m.receipt")
        )

    await sync_until(bob, since, alice_read)
    (content,) = sent.edus(a.name, "m.receipt")
    assert content[room_id]["m.read"][alice.user_id]["event_ids"] == [event_id]


async def test_a_private_receipt_stays_on_its_server(nursery, ca, tmp_path, monkeypatch):
    sent, a, _b, alice, _bob, room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    event_id = await alice.send(room_id, "read me quietly")

    ok(await alice.post(f"/rooms/{path_part(room_id)}/receipt/m.read.private/{event_id}", {}))
    marker = await alice.send(room_id, "after the receipt")

    await wait_until(lambda: marker in sent.pdu_ids(a.name))
    assert sent.edus(a.name, "m.receipt") == []


async def test_presence_reaches_the_servers_that_share_a_room(nursery, ca, tmp_path, monkeypatch):
    sent, a, _b, alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    lonely = await start_federating(nursery, ca, tmp_path / "c", "127.0.0.4")
    since = ok(await bob.get("/sync"))["next_batch"]

    presence_path = f"/presence/{path_part(alice.user_id)}/status"
    ok(await alice.put(presence_path, {"presence": "unavailable", "status_msg": "lunch"}))

    def alice_away(response: dict[str, Any]) -> bool:
        return any(
            event["sender"] == alice.user_id
            and event["content"]["presence"] == "unavailable"
            and event["content"].get("status_msg") == "lunch"
            for event in response.get("presence", {}).get("events", [])
        )

    await sync_until(bob, since, alice_away)
    assert sent.edus(a.name, "m.presence")
    assert sent.received_by(lonely) == []  # it shares no room with alice


async def test_a_new_device_shows_in_the_other_servers_device_lists(
    nursery, ca, tmp_path, monkeypatch
):
    sent, a, b, alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    since = ok(await bob.get("/sync"))["next_batch"]

    phone = await new_device(a.server, alice)
    await upload_device_keys(phone)

    await sync_until(
        bob, since, lambda r: alice.user_id in r.get("device_lists", {}).get("changed", [])
    )
    await wait_until(lambda: len(sent.edus(a.name, "m.device_list_update")) == 2)
    added, keyed = sent.edus(a.name, "m.device_list_update")
    assert added["device_id"] == keyed["device_id"] == phone.device_id
    assert keyed["prev_id"] == [added["stream_id"]]
    assert added["prev_id"] and added["prev_id"][0] < added["stream_id"]  # registration's
    assert keyed["stream_id"] > added["stream_id"]
    known = b.server.services.remote_device_lists.device_list(alice.user_id)
    assert known["stream_id"] == keyed["stream_id"]
    assert known["devices"][phone.device_id]["keys"]["device_id"] == phone.device_id


async def test_a_deleted_device_is_sent_as_deleted(nursery, ca, tmp_path, monkeypatch):
    sent, a, b, alice, _bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    phone = await new_device(a.server, alice)
    await wait_until(lambda: len(sent.edus(a.name, "m.device_list_update")) == 1)

    a.server.services.devices.delete(alice.user_id, [phone.device_id])

    await wait_until(lambda: len(sent.edus(a.name, "m.device_list_update")) == 2)
    assert sent.edus(a.name, "m.device_list_update")[-1]["deleted"] is True
    known = b.server.services.remote_device_lists.device_list(alice.user_id)
    assert phone.device_id not in known["devices"]


async def test_cross_signing_keys_reach_the_other_server(nursery, ca, tmp_path, monkeypatch):
    sent, a, b, alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    identity = CrossSigningIdentity(alice.user_id)
    since = ok(await bob.get("/sync"))["next_batch"]

    ok(await alice.post("/keys/device_signing/upload", identity.upload_body()))

    await sync_until(
        bob, since, lambda r: alice.user_id in r.get("device_lists", {}).get("changed", [])
    )
    (update,) = sent.edus(a.name, "m.signing_key_update")
    assert update["master_key"] == identity.upload_body()["master_key"]
    assert "user_signing_key" not in update  # private to the user's own server
    known = b.server.services.remote_device_lists.device_list(alice.user_id)
    assert known["master_key"] == update["master_key"]


async def test_a_to_device_message_reaches_the_other_servers_device(
    nursery, ca, tmp_path, monkeypatch
):
    sent, a, _b, alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    since = ok(await bob.get("/sync"))["next_batch"]
    body = {"messages": {bob.user_id: {bob.device_id: {"secret": "for bob's device"}}}}

    ok(await alice.put("/sendToDevice/m.room_key_request/txn1", body))

    response = await sync_until(bob, since, lambda r: bool(r["to_device"]["events"]))
    assert response["to_device"]["events"] == [
        {
            "type": "m.room_key_request",
            "sender": alice.user_id,
            "content": {"secret": "for bob's device"},
        }
    ]
    (edu,) = sent.edus(a.name, "m.direct_to_device")
    assert edu["sender"] == alice.user_id and edu["message_id"]
    assert not a.server.services.to_device.deliver(bob.user_id, bob.device_id, None, 10**9)


async def test_a_to_device_message_sent_twice_by_its_server_is_delivered_once(
    nursery, ca, tmp_path, monkeypatch
):
    _sent, a, b, alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    edu = {
        "sender": alice.user_id,
        "type": "m.dummy",
        "message_id": "once",
        "messages": {bob.user_id: {"*": {"n": 1}}},
    }

    for _ in range(2):
        await b.server.services.edus.handle(a.name, "m.direct_to_device", edu)

    response = ok(await bob.get("/sync"))
    assert [event["content"] for event in response["to_device"]["events"]] == [{"n": 1}]


async def test_a_to_device_message_claiming_another_servers_sender_is_dropped(
    nursery, ca, tmp_path, monkeypatch
):
    _sent, a, b, _alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    edu = {
        "sender": bob.user_id,  # B's own user, "sent" by A
        "type": "m.dummy",
        "message_id": "forged",
        "messages": {bob.user_id: {"*": {"forged": True}}},
    }

    await b.server.services.edus.handle(a.name, "m.direct_to_device", edu)

    assert ok(await bob.get("/sync"))["to_device"]["events"] == []


async def test_an_update_with_an_unknown_prev_id_resyncs_the_device_list(
    nursery, ca, tmp_path, monkeypatch
):
    asked: list[str] = []
    devices = [{"device_id": "PHONE", "keys": {"device_id": "PHONE"}}, {"device_id": "LAPTOP"}]

    async def peer(method: str, path: str, body: object) -> tuple[int, object]:
        asked.append(f"{method} {path}")
        return 200, {"user_id": user_id, "stream_id": 7, "devices": devices}

    peer_name = await serve_https(nursery, ca, "127.0.0.12", peer)
    user_id = f"@carol:{peer_name}"
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    update = {"user_id": user_id, "device_id": "PHONE", "stream_id": 8, "prev_id": [5]}

    await b.server.services.edus.handle(peer_name, "m.device_list_update", update)

    lists = b.server.services.remote_device_lists
    await wait_until(lambda: lists.device_list(user_id) is not None)
    assert asked == [f"GET /_matrix/federation/v1/user/devices/{quote(user_id, safe='')}"]
    known = lists.device_list(user_id)
    assert known["stream_id"] == 7 and set(known["devices"]) == {"PHONE", "LAPTOP"}

    follow_up = {**update, "device_id": "TABLET", "stream_id": 9, "prev_id": [7]}
    await b.server.services.edus.handle(peer_name, "m.device_list_update", follow_up)
    assert set(lists.device_list(user_id)["devices"]) == {"PHONE", "LAPTOP", "TABLET"}
    assert len(asked) == 1  # the chain is known again: no second resync


async def test_to_device_and_device_list_updates_queued_while_the_peer_is_down_survive_a_restart(
    nursery, ca, tmp_path, monkeypatch
):
    _sent, a, b, alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    since = ok(await bob.get("/sync"))["next_batch"]
    await b.stop()
    body = {"messages": {bob.user_id: {"*": {"while": "down"}}}}

    ok(await alice.put("/sendToDevice/m.dummy/txn1", body))
    phone = await new_device(a.server, alice)
    await upload_device_keys(phone)  # /user/devices lists the devices with keys (the spec's)
    await a.stop()
    a = await restart(nursery, a)
    b = await restart(nursery, b)
    bob = User(bob.user_id, bob.device_id, bob.access_token, b.client, b.name)
    await b.federation.client.request(a.name, "GET", ECHO_PATH)  # B is back: A may send

    response = await sync_until(bob, since, lambda r: bool(r["to_device"]["events"]))
    assert [event["content"] for event in response["to_device"]["events"]] == [{"while": "down"}]
    await sync_until(
        bob, since, lambda r: alice.user_id in r.get("device_lists", {}).get("changed", [])
    )
    known = b.server.services.remote_device_lists.device_list(alice.user_id)
    assert phone.device_id in known["devices"]


async def test_a_server_that_missed_an_update_fetches_our_users_device_list(
    nursery, ca, tmp_path, monkeypatch
):
    _sent, a, b, alice, _bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    identity = await upload_device_keys(alice)
    ok(
        await alice.post(
            "/keys/device_signing/upload", CrossSigningIdentity(alice.user_id).upload_body()
        )
    )
    lists = b.server.services.remote_device_lists
    await wait_until(lambda: (lists.device_list(alice.user_id) or {}).get("master_key") is not None)
    current = a.server.services.edu_contents.user_devices(alice.user_id)["stream_id"]
    missed = {
        "user_id": alice.user_id,
        "device_id": "GONE",
        "stream_id": current + 2,
        "prev_id": [current + 1],
    }

    contents = a.server.services.edu_contents
    served: list[str] = []
    serve = contents.user_devices
    monkeypatch.setattr(
        contents, "user_devices", lambda user_id: served.append(user_id) or serve(user_id)
    )

    await b.server.services.edus.handle(a.name, "m.device_list_update", missed)

    await wait_until(lambda: served == [alice.user_id])
    await wait_until(lambda: lists.device_list(alice.user_id)["stream_id"] == current)
    known = lists.device_list(alice.user_id)
    assert known["devices"] == {alice.device_id: {"keys": identity.device_keys()}}
    assert known["master_key"]["user_id"] == alice.user_id


async def test_the_device_list_of_a_user_not_ours_or_unknown_is_refused(
    nursery, ca, tmp_path, monkeypatch
):
    _sent, a, b, _alice, bob, _room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    client = b.federation.client

    for user_id, status in ((bob.user_id, 400), (f"@nobody:{a.name}", 404)):
        path = f"/_matrix/federation/v1/user/devices/{quote(user_id, safe='')}"
        with pytest.raises(RemoteError) as refused:
            await client.request(a.name, "GET", path)
        assert refused.value.status == status


async def test_presence_changes_waiting_together_go_as_one_edu(nursery, ca, tmp_path, monkeypatch):
    sent, a, _b, alice, _bob, room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    carol = await register(a.server, "carol")
    await carol.join(room_id)
    await wait_until(lambda: bool(sent.pdu_ids(a.name)))
    presence = a.server.services.presence

    presence.set_presence(alice.user_id, "unavailable")
    presence.set_presence(carol.user_id, "unavailable")
    presence.set_presence(alice.user_id, "online", "back")  # replaces the first one

    await wait_until(lambda: bool(sent.edus(a.name, "m.presence")))
    (content,) = sent.edus(a.name, "m.presence")
    assert {(u["user_id"], u["presence"]) for u in content["push"]} == {
        (alice.user_id, "online"),
        (carol.user_id, "unavailable"),
    }


async def test_typing_and_receipts_from_a_server_the_room_denies_are_ignored(
    nursery, ca, tmp_path, monkeypatch
):
    _sent, a, b, alice, bob, room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    services = b.server.services
    evil = RemoteServer("evil.example", generate_signing_key())
    eve = "@eve:evil.example"
    await add_remote_member(services, room_id, eve, evil)
    event_id = await alice.send(room_id, "read me")
    await wait_until(lambda: services.rooms.timeline.get_event(event_id) is not None)
    a_server = RemoteServer(a.name, a.server.services.globals.signing_key)
    acl = {"allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": True}
    template = services.rooms.builder.template(room_id, alice.user_id, "m.room.server_acl", acl, "")
    room_version = services.rooms.timeline.room_version(room_id)
    checked = services.rooms.builder.check_foreign(
        a_server.sign(services, template), room_version, a_server.verify_keys
    )
    await persist_foreign(services, checked, room_version.identifier)

    typing = {"room_id": room_id, "user_id": eve, "typing": True}
    await services.edus.handle("evil.example", "m.typing", typing)
    receipt = {room_id: {"m.read": {eve: {"event_ids": [event_id], "data": {"ts": 1}}}}}
    await services.edus.handle("evil.example", "m.receipt", receipt)

    assert services.typing.typing_users(room_id) == []
    assert eve not in str(services.receipts.receipts_since(room_id, 0, bob.user_id))


async def test_a_receipt_for_an_event_of_another_room_or_no_thread_is_ignored(
    nursery, ca, tmp_path, monkeypatch
):
    """An `m.receipt` must name an event of its room (and a thread root of it, or "main"),
    or a client would be shown a read marker pointing nowhere."""
    _sent, a, b, alice, bob, room_id = await two_servers(nursery, ca, tmp_path, monkeypatch)
    services = b.server.services
    event_id = await alice.send(room_id, "read me")
    await wait_until(lambda: services.rooms.timeline.get_event(event_id) is not None)
    other_room = await bob.create_room()
    other_event = await bob.send(other_room, "elsewhere")

    def receipt(event: str, **data: object) -> dict:
        return {room_id: {"m.read": {alice.user_id: {"event_ids": [event], "data": data}}}}

    await services.edus.handle(a.name, "m.receipt", receipt(other_event, ts=1))
    await services.edus.handle(a.name, "m.receipt", receipt("$nowhere", ts=2))
    await services.edus.handle(a.name, "m.receipt", receipt(event_id, ts=3, thread_id="x" * 3000))
    assert alice.user_id not in str(services.receipts.receipts_since(room_id, 0, bob.user_id))

    await services.edus.handle(a.name, "m.receipt", receipt(event_id, ts=4, thread_id="main"))
    assert event_id in str(services.receipts.receipts_since(room_id, 0, bob.user_id))
