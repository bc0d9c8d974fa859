"""Typing notifications over HTTP: only oneself, only in joined rooms, until the timeout.

Spec: `content/client-server-api/modules/typing_notifications.md`,
`data/api/client-server/typing.yaml`. Expiry and positions in detail:
`tests/unit/service/test_typing.py`.
"""

from __future__ import annotations

import trio

from tests.support.matrix import User, assert_error, ok, path_part, register, room_with_members
from tests.support.server import TestServer


async def put_typing(user: User, room_id: str, body: object, user_id: str | None = None):
    path = f"/rooms/{path_part(room_id)}/typing/{path_part(user_id or user.user_id)}"
    return await user.put(path, body)


async def test_a_member_who_starts_typing_is_listed_until_they_stop(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    typing = server.services.typing

    ok(await put_typing(alice, room_id, {"typing": True, "timeout": 30_000}))
    ok(await put_typing(bob, room_id, {"typing": True}))  # the timeout may be left out
    assert typing.typing_users(room_id) == [alice.user_id, bob.user_id]

    assert ok(await put_typing(alice, room_id, {"typing": False})) == {}
    assert typing.typing_users(room_id) == [bob.user_id]


async def test_a_notice_ends_by_itself_when_its_timeout_runs_out(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    ok(await put_typing(alice, room_id, {"typing": True, "timeout": 50}))

    with trio.fail_after(10):  # a hang guard: the test waits for the state, not for a time
        while server.services.typing.typing_users(room_id):
            await trio.sleep(0.01)


async def test_nobody_can_say_someone_else_is_typing(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    response = await put_typing(bob, room_id, {"typing": True}, user_id=alice.user_id)
    assert_error(response, 403, "M_FORBIDDEN")
    assert server.services.typing.typing_users(room_id) == []


async def test_only_joined_members_can_type(server: TestServer):
    room_id, (alice, leaver) = await room_with_members(server, 2)
    await leaver.leave(room_id)
    outsider = await register(server)

    async def refused(user: User, room: str) -> None:
        assert_error(await put_typing(user, room, {"typing": True}), 403, "M_FORBIDDEN")

    await refused(leaver, room_id)
    await refused(outsider, room_id)
    await refused(alice, "!nosuchroom:localhost")
    assert server.services.typing.typing_users(room_id) == []


async def test_a_body_of_the_wrong_shape_is_refused(server: TestServer):
    room_id, (alice,) = await room_with_members(server, 1)
    assert_error(await put_typing(alice, room_id, {"timeout": 1000}), 400, "M_MISSING_PARAM")
    assert_error(await put_typing(alice, room_id, {"typing": "yes"}), 400, "M_BAD_JSON")
    wrong_timeout = {"typing": True, "timeout": "soon"}
    assert_error(await put_typing(alice, room_id, wrong_timeout), 400, "M_BAD_JSON")
    assert_error(await put_typing(alice, room_id, [True]), 400, "M_BAD_JSON")
    assert server.services.typing.typing_users(room_id) == []


async def test_starting_to_type_wakes_the_other_members_syncs(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    bob_listener = server.services.notifier.listener(bob.user_id)
    before = server.services.typing.last_change(room_id)

    ok(await put_typing(alice, room_id, {"typing": True, "timeout": 30_000}))

    assert bob_listener.is_set()
    assert server.services.typing.last_change(room_id) > before
