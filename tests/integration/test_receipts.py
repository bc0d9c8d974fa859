"""Read receipts and read markers over HTTP, and what `/sync` reads of them.

Spec: `content/client-server-api/modules/receipts.md` (one receipt per user,
type and thread; private receipts reach only their owner; threaded
receipts), `read_markers.md` (`m.fully_read` is room account data, set only
through `/read_markers` or the receipt endpoint), `data/api/client-server/receipts.yaml`,
`read_markers.yaml`, event `m.receipt`.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.matrix import User, assert_error, ok, path_part, register, room_with_members
from tests.support.server import TestServer, make_config, serving


async def send_receipt(
    user: User, room_id: str, receipt_type: str, event_id: str, body: Any = None
):
    path = f"/rooms/{path_part(room_id)}/receipt/{receipt_type}/{path_part(event_id)}"
    return await user.post(path, body)


async def read_markers(user: User, room_id: str, body: Any):
    return await user.post(f"/rooms/{path_part(room_id)}/read_markers", body)


def receipts_of(server: TestServer, room_id: str, viewer: User, since: int = 0) -> dict | None:
    return server.services.receipts.receipts_since(room_id, since, viewer.user_id)


def fully_read(server: TestServer, user: User, room_id: str) -> dict | None:
    return server.services.account_data.get(user.user_id, room_id, "m.fully_read")


async def test_a_read_receipt_is_seen_by_every_member_with_the_servers_timestamp(
    server: TestServer,
):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await bob.send(room_id)
    assert ok(await send_receipt(alice, room_id, "m.read", event_id, {})) == {}

    content = receipts_of(server, room_id, bob)

    assert list(content) == [event_id]
    assert list(content[event_id]) == ["m.read"]
    receipt = content[event_id]["m.read"][alice.user_id]
    assert list(receipt) == ["ts"]
    assert isinstance(receipt["ts"], int)


async def test_the_receipt_body_may_be_left_out(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    path = f"/rooms/{path_part(room_id)}/receipt/m.read/{path_part(event_id)}"
    ok(await alice.request("POST", path))
    assert alice.user_id in receipts_of(server, room_id, alice)[event_id]["m.read"]


async def test_a_private_receipt_is_seen_only_by_its_owner(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await bob.send(room_id)
    ok(await send_receipt(alice, room_id, "m.read.private", event_id, {}))

    assert receipts_of(server, room_id, bob) is None
    own = receipts_of(server, room_id, alice)
    assert list(own[event_id]["m.read.private"]) == [alice.user_id]


async def test_a_new_receipt_replaces_the_users_previous_one(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    first, second = await bob.send(room_id, "one"), await bob.send(room_id, "two")
    ok(await send_receipt(alice, room_id, "m.read", first, {}))
    ok(await send_receipt(alice, room_id, "m.read", second, {}))

    assert list(receipts_of(server, room_id, bob)) == [second]


async def test_receipts_since_a_position_has_only_the_receipts_changed_after_it(
    server: TestServer,
):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await alice.send(room_id)
    ok(await send_receipt(alice, room_id, "m.read", event_id, {}))
    position = server.services.globals.current_count()
    assert receipts_of(server, room_id, bob, since=position) is None

    ok(await send_receipt(bob, room_id, "m.read", event_id, {}))

    assert list(receipts_of(server, room_id, bob, since=position)[event_id]["m.read"]) == [
        bob.user_id
    ]


async def test_sending_the_same_receipt_again_is_no_change(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    ok(await send_receipt(alice, room_id, "m.read", event_id, {}))
    position = server.services.globals.current_count()
    ok(await send_receipt(alice, room_id, "m.read", event_id, {}))
    assert receipts_of(server, room_id, alice, since=position) is None


async def test_each_thread_keeps_its_own_receipt_apart_from_the_unthreaded_one(
    server: TestServer,
):
    room_id, (alice, bob) = await room_with_members(server, 2)
    root, in_main, in_thread = [await bob.send(room_id, text) for text in ("root", "a", "b")]
    ok(await send_receipt(alice, room_id, "m.read", root, {}))
    ok(await send_receipt(alice, room_id, "m.read", in_main, {"thread_id": "main"}))
    ok(await send_receipt(alice, room_id, "m.read", in_thread, {"thread_id": root}))

    content = receipts_of(server, room_id, bob)

    assert content[root]["m.read"][alice.user_id].keys() == {"ts"}
    assert content[in_main]["m.read"][alice.user_id]["thread_id"] == "main"
    assert content[in_thread]["m.read"][alice.user_id]["thread_id"] == root


@pytest.mark.parametrize(
    ("body", "errcode"),
    [({"thread_id": ""}, "M_INVALID_PARAM"), ({"thread_id": 7}, "M_BAD_JSON")],
    ids=["empty", "not a string"],
)
async def test_a_thread_id_must_be_a_non_empty_string(server: TestServer, body, errcode):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    assert_error(await send_receipt(alice, room_id, "m.read", event_id, body), 400, errcode)
    assert receipts_of(server, room_id, alice) is None


async def test_an_unknown_receipt_type_is_400_m_invalid_param(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    response = await send_receipt(alice, room_id, "m.seen", event_id, {})
    assert_error(response, 400, "M_INVALID_PARAM")


async def test_a_receipt_needs_an_event_of_that_room(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    elsewhere = await alice.create_room()
    event_elsewhere = await alice.send(elsewhere)
    for event_id in ("$unknown:localhost", event_elsewhere):
        response = await send_receipt(alice, room_id, "m.read", event_id, {})
        assert_error(response, 404, "M_NOT_FOUND")
    assert receipts_of(server, room_id, alice) is None


async def test_only_members_send_receipts(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    outsider = await register(server)
    assert_error(await send_receipt(outsider, room_id, "m.read", event_id, {}), 403, "M_FORBIDDEN")


async def test_a_receipt_wakes_the_members_and_a_private_one_only_its_owner(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await bob.send(room_id)
    notifier = server.services.notifier

    bob_listener = notifier.listener(bob.user_id)
    alice_listener = notifier.listener(alice.user_id)
    ok(await send_receipt(alice, room_id, "m.read.private", event_id, {}))
    assert alice_listener.is_set()
    assert not bob_listener.is_set()

    ok(await send_receipt(alice, room_id, "m.read", event_id, {}))
    assert bob_listener.is_set()


# ---------------------------------------------------------------- the fully read marker


async def test_m_fully_read_through_the_receipt_endpoint_moves_the_read_marker(
    server: TestServer,
):
    room_id, (alice, bob) = await room_with_members(server, 2)
    event_id = await bob.send(room_id)
    ok(await send_receipt(alice, room_id, "m.fully_read", event_id, {}))

    assert fully_read(server, alice, room_id) == {"event_id": event_id}
    assert receipts_of(server, room_id, alice) is None  # a marker, not a receipt


async def test_m_fully_read_takes_no_thread_id(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    response = await send_receipt(alice, room_id, "m.fully_read", event_id, {"thread_id": "main"})
    assert_error(response, 400, "M_INVALID_PARAM")
    assert fully_read(server, alice, room_id) is None


async def test_read_markers_set_the_marker_and_both_receipts(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    marker, public, private = [await bob.send(room_id, text) for text in ("a", "b", "c")]

    body = {"m.fully_read": marker, "m.read": public, "m.read.private": private}
    assert ok(await read_markers(alice, room_id, body)) == {}

    assert fully_read(server, alice, room_id) == {"event_id": marker}
    own = receipts_of(server, room_id, alice)
    assert alice.user_id in own[public]["m.read"]
    assert alice.user_id in own[private]["m.read.private"]
    assert server.services.account_data.changes_since(alice.user_id, room_id, 0) == [
        {"type": "m.fully_read", "content": {"event_id": marker}}
    ]


async def test_read_markers_with_an_unknown_event_change_nothing(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    body = {"m.fully_read": event_id, "m.read": "$unknown:localhost"}
    assert_error(await read_markers(alice, room_id, body), 404, "M_NOT_FOUND")
    assert fully_read(server, alice, room_id) is None
    assert receipts_of(server, room_id, alice) is None


async def test_read_markers_must_be_event_id_strings(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    assert_error(await read_markers(alice, room_id, {"m.read": 5}), 400, "M_BAD_JSON")


async def test_read_markers_only_in_rooms_one_is_in(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    event_id = await alice.send(room_id)
    outsider = await register(server)
    response = await read_markers(outsider, room_id, {"m.fully_read": event_id})
    assert_error(response, 403, "M_FORBIDDEN")


# ---------------------------------------------------------------- for unread counts


async def test_read_event_is_the_furthest_main_timeline_receipt_public_or_private(
    server: TestServer,
):
    room_id, (alice, bob) = await room_with_members(server, 2)
    first, second, third, fourth = [await bob.send(room_id, str(n)) for n in range(4)]
    receipts = server.services.receipts
    assert receipts.read_event(room_id, alice.user_id) is None

    ok(await send_receipt(alice, room_id, "m.read", first, {}))
    assert receipts.read_event(room_id, alice.user_id) == first
    ok(await send_receipt(alice, room_id, "m.read.private", third, {}))
    ok(await send_receipt(alice, room_id, "m.read", second, {"thread_id": "main"}))
    assert receipts.read_event(room_id, alice.user_id) == third
    ok(await send_receipt(alice, room_id, "m.read", fourth, {"thread_id": first}))
    assert receipts.read_event(room_id, alice.user_id) == third  # a thread's own receipt


async def test_receipts_and_the_read_marker_survive_a_restart(tmp_path):
    config = make_config(tmp_path / "db")
    async with trio.open_nursery() as nursery, serving(nursery, config) as first:
        alice = await register(first)
        room_id = await alice.create_room()
        event_id = await alice.send(room_id)
        body = {"m.fully_read": event_id, "m.read": event_id}
        ok(await read_markers(alice, room_id, body))

    async with trio.open_nursery() as nursery, serving(nursery, config) as second:
        assert second.services.receipts.read_event(room_id, alice.user_id) == event_id
        assert receipts_of(second, room_id, alice)[event_id]["m.read"].keys() == {alice.user_id}
        assert fully_read(second, alice, room_id) == {"event_id": event_id}
