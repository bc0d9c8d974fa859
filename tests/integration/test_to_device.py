"""Send-to-device messaging over HTTP: delivered by `/sync` exactly once, in order, per device.

Spec: `content/client-server-api/modules/send_to_device.md` ("Server
behaviour"), `data/api/client-server/to_device.yaml`, and
`content/client-server-api/_index.md`, "Transaction identifiers".
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.support.accounts import PASSWORD, log_in, password_auth
from tests.support.e2ee import sync, wake_signal
from tests.support.matrix import User, assert_error, new_device, ok, path_part, register
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

EVENT_TYPE = "org.example.ping"
_txn_ids = itertools.count(1)


async def send(
    sender: User,
    messages: dict[str, dict[str, Any]],
    *,
    event_type: str = EVENT_TYPE,
    txn_id: str | None = None,
) -> Any:
    path = f"/sendToDevice/{event_type}/{txn_id or f'todevice{next(_txn_ids)}'}"
    return await sender.put(path, {"messages": messages})


async def send_to(sender: User, recipient: User, content: dict[str, Any], **options: Any) -> None:
    ok(await send(sender, {recipient.user_id: {recipient.device_id: content}}, **options))


def to_device(response: dict[str, Any]) -> list[dict[str, Any]]:
    return response["to_device"]["events"]


def contents(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [event["content"] for event in to_device(response)]


async def test_a_message_reaches_the_addressed_device_with_its_type_and_sender(server):
    alice, bob = await register(server), await register(server)
    await send_to(alice, bob, {"n": 1})
    assert to_device(await sync(bob)) == [
        {"type": EVENT_TYPE, "sender": alice.user_id, "content": {"n": 1}}
    ]


async def test_messages_arrive_in_the_order_they_were_sent(server):
    alice, bob = await register(server), await register(server)
    for number in range(5):
        await send_to(alice, bob, {"n": number})
    assert contents(await sync(bob)) == [{"n": number} for number in range(5)]


async def test_a_message_is_delivered_again_until_a_sync_from_its_next_batch_acknowledges_it(
    server,
):
    alice, bob = await register(server), await register(server)
    start = await sync(bob)
    await send_to(alice, bob, {"n": 1})

    delivered = await sync(bob, start["next_batch"])
    response_lost = await sync(bob, start["next_batch"])
    acknowledged = await sync(bob, response_lost["next_batch"])

    assert contents(delivered) == [{"n": 1}]
    assert contents(response_lost) == [{"n": 1}], "not acknowledged, so delivered again"
    assert contents(acknowledged) == []
    assert contents(await sync(bob)) == [], "deleted once acknowledged"


async def test_only_the_addressed_device_gets_the_message(server):
    alice, bob = await register(server), await register(server)
    bob_laptop = await new_device(server, bob)
    await send_to(alice, bob_laptop, {"for": "laptop"})
    assert contents(await sync(bob)) == []
    assert contents(await sync(bob_laptop)) == [{"for": "laptop"}]


async def test_a_star_addresses_every_device_of_the_user(server):
    alice, bob = await register(server), await register(server)
    bob_laptop = await new_device(server, bob)
    alice_laptop = await new_device(server, alice)
    ok(await send(alice, {bob.user_id: {"*": {"to": "all"}}}))
    assert contents(await sync(bob)) == [{"to": "all"}]
    assert contents(await sync(bob_laptop)) == [{"to": "all"}]
    assert contents(await sync(alice_laptop)) == []


async def test_a_retransmitted_transaction_sends_nothing_again(server):
    alice, bob = await register(server), await register(server)
    await send_to(alice, bob, {"n": 1}, txn_id="same")
    await send_to(alice, bob, {"n": 2}, txn_id="same")
    assert contents(await sync(bob)) == [{"n": 1}]


async def test_a_transaction_id_is_scoped_to_the_device_and_the_endpoint_path(server):
    alice, bob = await register(server), await register(server)
    alice_laptop = await new_device(server, alice)
    await send_to(alice, bob, {"n": 1}, txn_id="same")
    await send_to(alice_laptop, bob, {"n": 2}, txn_id="same")
    await send_to(alice, bob, {"n": 3}, txn_id="same", event_type="org.example.other")
    assert contents(await sync(bob)) == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_unknown_users_devices_and_remote_users_are_skipped(server):
    alice, bob = await register(server), await register(server)
    messages = {
        "@nobody-here:localhost": {"DEVICE": {"n": 1}},
        bob.user_id: {"NOSUCHDEVICE": {"n": 2}, bob.device_id: {"n": 3}},
        "@bob:elsewhere.example": {"DEVICE": {"n": 4}},
    }
    assert ok(await send(alice, messages)) == {}
    assert contents(await sync(bob)) == [{"n": 3}]


async def test_a_sync_carries_at_most_the_delivery_limit_and_the_rest_follow(
    server, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("matrix_conduit.service.to_device.DELIVERY_LIMIT", 3)
    alice, bob = await register(server), await register(server)
    for number in range(5):
        await send_to(alice, bob, {"n": number})

    first = await sync(bob)
    second = await sync(bob, first["next_batch"])
    second_again = await sync(bob, first["next_batch"])
    third = await sync(bob, second_again["next_batch"])

    assert contents(first) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert contents(second) == [{"n": 3}, {"n": 4}]
    assert contents(second_again) == [{"n": 3}, {"n": 4}]
    assert contents(third) == []


async def test_sending_wakes_the_recipients_sync(server):
    alice, bob, carol = await register(server), await register(server), await register(server)
    bob_woken, carol_woken = await wake_signal(server, bob), await wake_signal(server, carol)
    await send_to(alice, bob, {"n": 1})
    assert bob_woken.is_set()
    assert not carol_woken.is_set()


async def test_a_deleted_devices_queue_is_gone_even_if_its_device_id_comes_back(server):
    alice, bob = await register(server), await register(server, password=PASSWORD)
    await send_to(alice, bob, {"n": 1})
    path = f"/devices/{path_part(bob.device_id)}"
    bob_phone = await new_device(server, bob)
    challenge = await bob_phone.request("DELETE", path, body={})
    auth = password_auth(bob.user_id, session=challenge.json()["session"])
    ok(await bob_phone.request("DELETE", path, body={"auth": auth}))

    again = ok(await log_in(server.client, bob.localpart, device_id=bob.device_id))
    bob_again = User(bob.user_id, bob.device_id, again["access_token"], bob.http, bob.server_name)
    assert contents(await sync(bob_again)) == []


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"messages": ["@bob:localhost"]}, "M_BAD_JSON"),
        ({"messages": {"@bob:localhost": {"DEVICE": "not an object"}}}, "M_BAD_JSON"),
        ({"messages": {"bob": {"DEVICE": {}}}}, "M_INVALID_PARAM"),
    ],
)
async def test_malformed_messages_are_refused(server, body, errcode):
    alice = await register(server)
    assert_error(await alice.put(f"/sendToDevice/{EVENT_TYPE}/bad", body), 400, errcode)


async def test_sending_needs_an_access_token(server):
    response = await server.client.put(
        f"/_matrix/client/v3/sendToDevice/{EVENT_TYPE}/1", json={"messages": {}}
    )
    assert_error(response, 401, "M_MISSING_TOKEN")
