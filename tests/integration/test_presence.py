"""Presence over HTTP: set one's own, read one's own and that of users one shares a room with.

Spec: `content/client-server-api/modules/presence.md` ("Presence information is
published to all users who share a room with the target user"),
`data/api/client-server/presence.yaml`. Timeouts and positions:
`tests/unit/service/test_presence.py`.
"""

from __future__ import annotations

import pytest

from tests.support.matrix import User, assert_error, ok, path_part, register, room_with_members
from tests.support.server import TestServer


def status_path(user: User | str) -> str:
    user_id = user if isinstance(user, str) else user.user_id
    return f"/presence/{path_part(user_id)}/status"


async def test_a_user_sets_and_reads_their_own_presence_and_status(server: TestServer):
    alice = await register(server)
    body = {"presence": "online", "status_msg": "I am here."}
    assert ok(await alice.put(status_path(alice), body)) == {}

    presence = ok(await alice.get(status_path(alice)))

    assert presence["presence"] == "online"
    assert presence["status_msg"] == "I am here."
    assert presence["currently_active"] is True
    assert isinstance(presence["last_active_ago"], int)


async def test_a_put_without_status_msg_keeps_it_and_null_removes_it(server: TestServer):
    alice = await register(server)
    ok(await alice.put(status_path(alice), {"presence": "online", "status_msg": "busy"}))
    ok(await alice.put(status_path(alice), {"presence": "unavailable"}))
    kept = ok(await alice.get(status_path(alice)))
    assert (kept["presence"], kept["status_msg"]) == ("unavailable", "busy")

    ok(await alice.put(status_path(alice), {"presence": "online", "status_msg": None}))
    assert "status_msg" not in ok(await alice.get(status_path(alice)))


async def test_users_who_share_a_room_see_each_others_presence(server: TestServer):
    _, (alice, bob) = await room_with_members(server, 2)
    ok(await alice.put(status_path(alice), {"presence": "unavailable", "status_msg": "lunch"}))

    seen = ok(await bob.get(status_path(alice)))

    assert (seen["presence"], seen["status_msg"]) == ("unavailable", "lunch")


async def test_a_member_who_never_set_presence_reads_as_offline(server: TestServer):
    _, (alice, bob) = await room_with_members(server, 2)
    assert ok(await bob.get(status_path(alice)))["presence"] == "offline"


async def test_users_who_share_no_room_get_403(server: TestServer):
    _, (alice,) = await room_with_members(server, 1)
    stranger = await register(server)
    ok(await alice.put(status_path(alice), {"presence": "online"}))
    assert_error(await stranger.get(status_path(alice)), 403, "M_FORBIDDEN")
    assert_error(await stranger.get(status_path("@nobody:localhost")), 403, "M_FORBIDDEN")


async def test_a_user_who_left_the_shared_room_no_longer_sees_presence(server: TestServer):
    room_id, (alice, bob) = await room_with_members(server, 2)
    await bob.leave(room_id)
    assert_error(await bob.get(status_path(alice)), 403, "M_FORBIDDEN")


async def test_nobody_sets_another_users_presence(server: TestServer):
    _, (alice, bob) = await room_with_members(server, 2)
    response = await bob.put(status_path(alice), {"presence": "offline"})
    assert_error(response, 403, "M_FORBIDDEN")
    assert server.services.presence.get(alice.user_id)["presence"] == "offline"


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"presence": "busy"}, "M_INVALID_PARAM"),
        ({"status_msg": "no state"}, "M_MISSING_PARAM"),
        ({"presence": True}, "M_BAD_JSON"),
        ({"presence": "online", "status_msg": 42}, "M_BAD_JSON"),
    ],
    ids=["unknown state", "no state", "state not a string", "message not a string"],
)
async def test_a_presence_body_of_the_wrong_shape_is_400(server: TestServer, body, errcode):
    alice = await register(server)
    assert_error(await alice.put(status_path(alice), body), 400, errcode)
    assert server.services.presence.changes_since([alice.user_id], 0) == []


async def test_a_user_id_that_is_not_one_is_400_m_invalid_param(server: TestServer):
    alice = await register(server)
    assert_error(await alice.get(status_path("not-a-user")), 400, "M_INVALID_PARAM")


async def test_setting_presence_wakes_the_syncs_of_those_who_share_a_room(server: TestServer):
    _, (alice, bob) = await room_with_members(server, 2)
    stranger = await register(server)
    notifier = server.services.notifier
    bob_listener, stranger_listener = (
        notifier.listener(bob.user_id),
        notifier.listener(stranger.user_id),
    )

    ok(await alice.put(status_path(alice), {"presence": "online", "status_msg": "hi"}))

    assert bob_listener.is_set()
    assert not stranger_listener.is_set()
    changes = server.services.presence.changes_since([alice.user_id], 0)
    assert [(event["sender"], event["content"]["status_msg"]) for event in changes] == [
        (alice.user_id, "hi")
    ]
