"""Sliding sync connections over HTTP: `conn_id`, `pos`, expiry, and restarts.

Spec: MSC4186 ("Connections": a `pos` may be retried, connections per
`conn_id` are independent, an expired connection is 400 `M_UNKNOWN_POS`),
MSC3885 (to-device in sliding sync), `send_to_device.md` ("Server behaviour":
messages deleted once acknowledged, i.e. delivered exactly once).
"""

from __future__ import annotations

import dataclasses

import trio

from tests.support.matrix import assert_error, ok, register
from tests.support.server import make_config, serving
from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import Connection, bodies, room_list, user_without_rooms

running_server, server = shared_server_fixtures()

TO_DEVICE = {"extensions": {"to_device": {"enabled": True}}}


async def send_to_device(sender, recipient, n: int) -> None:
    ok(
        await sender.put(
            f"/sendToDevice/org.example.ping/t{n}-{recipient.device_id}",
            {"messages": {recipient.user_id: {recipient.device_id: {"n": n}}}},
        )
    )


async def to_device_sync(connection: Connection, since: str | None) -> dict:
    extension = {"enabled": True, **({"since": since} if since else {})}
    return (await connection.sync({"extensions": {"to_device": extension}}))["extensions"][
        "to_device"
    ]


async def test_a_pos_the_server_never_gave_is_unknown(server):
    alice = await user_without_rooms(server)
    response = await Connection(alice).raw({"lists": {}}, pos="12345")
    assert_error(response, 400, "M_UNKNOWN_POS")
    assert_error(await Connection(alice).raw({}, pos="not-a-pos"), 400, "M_UNKNOWN_POS")


async def test_an_expired_connection_answers_m_unknown_pos_and_a_new_one_starts_over(server):
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    connection = Connection(alice)
    await connection.sync({"lists": {"l": room_list(0)}})

    async def expire_all() -> None:
        server.services.sliding_sync.connections.ttl_ms = -1

    async def restore() -> None:
        server.services.sliding_sync.connections.ttl_ms = 7 * 24 * 3600 * 1000

    await server.call(expire_all)
    try:
        assert_error(await connection.raw(pos=connection.pos), 400, "M_UNKNOWN_POS")
    finally:
        await server.call(restore)
    connection.pos = None
    fresh = await connection.sync()
    assert fresh["rooms"][room_id]["initial"] is True


async def test_retrying_a_pos_gives_the_same_events_again_and_the_next_pos_goes_on(server):
    """MSC4186: the server cannot assume a response arrived until its `pos` comes back."""
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    connection = Connection(alice)
    await connection.sync({"lists": {"l": room_list(0)}})
    before = connection.pos
    await alice.send(room_id, "once")
    lost = await connection.sync()
    connection.pos = before  # the response never reached the client
    retried = await connection.sync()
    assert bodies(lost["rooms"][room_id]) == bodies(retried["rooms"][room_id]) == ["once"]
    await alice.send(room_id, "twice")
    assert bodies((await connection.sync())["rooms"][room_id]) == ["twice"]
    assert_error(await connection.raw(pos=lost["pos"]), 400, "M_UNKNOWN_POS")


async def test_two_connections_of_one_device_follow_their_own_positions(server):
    """Element X keeps `room-list` and `encryption` connections side by side."""
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    room_list_connection = Connection(alice, "room-list")
    encryption = Connection(alice, "encryption")
    await room_list_connection.sync({"lists": {"l": room_list(0)}})
    await encryption.sync({"extensions": {"e2ee": {"enabled": True}}})
    await alice.send(room_id, "seen by room-list")
    assert bodies((await room_list_connection.sync())["rooms"][room_id]) == ["seen by room-list"]
    quiet = await encryption.sync()
    assert quiet["rooms"] == {}
    assert "e2ee" in quiet["extensions"]
    assert room_list_connection.pos != encryption.pos


async def test_to_device_messages_are_delivered_until_acknowledged_then_never_again(server):
    alice, bob = await register(server), await register(server)
    connection = Connection(bob, "encryption")
    start = await to_device_sync(connection, None)
    await send_to_device(alice, bob, 1)
    delivered = await to_device_sync(connection, start["next_batch"])
    assert [e["content"] for e in delivered["events"]] == [{"n": 1}]
    again = await to_device_sync(connection, start["next_batch"])
    assert [e["content"] for e in again["events"]] == [{"n": 1}], "not acknowledged yet"
    acknowledged = await to_device_sync(connection, again["next_batch"])
    assert acknowledged["events"] == []


async def test_to_device_messages_acknowledged_by_sliding_sync_are_not_sent_by_sync(server):
    """The two APIs share the device's queue: a message goes to the device once."""
    alice, bob = await register(server), await register(server)
    connection = Connection(bob, "encryption")
    start = await to_device_sync(connection, None)
    await send_to_device(alice, bob, 7)
    delivered = await to_device_sync(connection, start["next_batch"])
    assert [e["content"] for e in delivered["events"]] == [{"n": 7}]
    await to_device_sync(connection, delivered["next_batch"])
    assert ok(await bob.get("/sync"))["to_device"]["events"] == []


async def test_to_device_messages_acknowledged_by_sync_are_not_sent_by_sliding_sync(server):
    alice, bob = await register(server), await register(server)
    first = ok(await bob.get("/sync"))
    await send_to_device(alice, bob, 8)
    delivered = ok(await bob.get("/sync", since=first["next_batch"]))
    assert [e["content"] for e in delivered["to_device"]["events"]] == [{"n": 8}]
    ok(await bob.get("/sync", since=delivered["next_batch"]))
    assert (await to_device_sync(Connection(bob, "encryption"), None))["events"] == []


async def test_a_restart_keeps_connections_and_delivers_every_event_exactly_once(tmp_path):
    """Connections are on disk: after a restart the same `pos` goes on, with no event
    sent twice or skipped, and to-device messages not acknowledged are sent once more
    and then never."""
    config = make_config(tmp_path / "db")
    async with trio.open_nursery() as nursery, serving(nursery, config) as first:
        alice, bob = await user_without_rooms(first), await register(first)
        room_id = await alice.create_room()
        connection = Connection(alice)
        body = {"lists": {"l": room_list(0)}, **TO_DEVICE}
        started = await connection.sync(body)
        await alice.send(room_id, "before")
        await send_to_device(bob, alice, 1)
        before = await connection.sync(
            {
                **body,
                "extensions": {
                    "to_device": {
                        "enabled": True,
                        "since": started["extensions"]["to_device"]["next_batch"],
                    }
                },
            }
        )
        assert bodies(before["rooms"][room_id]) == ["before"]
        assert [e["content"] for e in before["extensions"]["to_device"]["events"]] == [{"n": 1}]
        since = before["extensions"]["to_device"]["next_batch"]

    async with trio.open_nursery() as nursery, serving(nursery, config) as second:
        alice = dataclasses.replace(alice, http=second.client)
        connection.user = alice
        await alice.send(room_id, "after")
        after = await connection.sync(
            {**body, "extensions": {"to_device": {"enabled": True, "since": since}}}
        )
        assert bodies(after["rooms"][room_id]) == ["after"]
        assert "initial" not in after["rooms"][room_id]
        assert after["extensions"]["to_device"]["events"] == []
