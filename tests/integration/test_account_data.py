"""Account data over HTTP: global and per room, only one's own, server-managed types refused.

Spec: `content/client-server-api/modules/account_data.md` ("Client Config",
"Server Behaviour": 405 for `m.fully_read` and `m.push_rules`),
`ignore_users.md` (`m.ignored_user_list`), `data/api/client-server/account-data.yaml`.
What `/sync` reads (`changes_since`) is checked on the service of the running server.
"""

from __future__ import annotations

import dataclasses

import pytest
import trio

from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.server import TestServer, make_config, serving

CUSTOM = "org.example.config"


def custom_changes(changes: list[dict]) -> list[dict]:
    """The changes of this test's own types (the server may set others, e.g. push rules)."""
    return [change for change in changes if change["type"].startswith("org.example.")]


def global_path(user: User | str, event_type: str = CUSTOM) -> str:
    user_id = user if isinstance(user, str) else user.user_id
    return f"/user/{path_part(user_id)}/account_data/{event_type}"


def room_path(user: User | str, room_id: str, event_type: str = CUSTOM) -> str:
    user_id = user if isinstance(user, str) else user.user_id
    return f"/user/{path_part(user_id)}/rooms/{path_part(room_id)}/account_data/{event_type}"


async def test_global_account_data_reads_back_what_was_put(server: TestServer):
    alice = await register(server)
    assert ok(await alice.put(global_path(alice), {"theme": "dark"})) == {}
    assert ok(await alice.get(global_path(alice))) == {"theme": "dark"}


async def test_putting_again_replaces_the_whole_content(server: TestServer):
    alice = await register(server)
    ok(await alice.put(global_path(alice), {"theme": "dark", "font": "large"}))
    ok(await alice.put(global_path(alice), {"theme": "light"}))
    assert ok(await alice.get(global_path(alice))) == {"theme": "light"}


async def test_room_account_data_is_separate_from_global_with_no_fallback(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(global_path(alice), {"scope": "global"}))
    assert_error(await alice.get(room_path(alice, room_id)), 404, "M_NOT_FOUND")

    ok(await alice.put(room_path(alice, room_id), {"scope": "room"}))
    assert ok(await alice.get(room_path(alice, room_id))) == {"scope": "room"}
    assert ok(await alice.get(global_path(alice))) == {"scope": "global"}


async def test_account_data_never_set_is_404_m_not_found(server: TestServer):
    alice = await register(server)
    assert_error(await alice.get(global_path(alice)), 404, "M_NOT_FOUND")


async def test_nobody_reads_or_writes_another_users_account_data(server: TestServer):
    alice, mallory = await register(server), await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(global_path(alice), {"secret": 1}))
    ok(await alice.put(room_path(alice, room_id), {"secret": 2}))

    for path in (global_path(alice), room_path(alice, room_id)):
        assert_error(await mallory.get(path), 403, "M_FORBIDDEN")
        assert_error(await mallory.put(path, {"secret": 3}), 403, "M_FORBIDDEN")
    assert ok(await alice.get(global_path(alice))) == {"secret": 1}
    assert ok(await alice.get(room_path(alice, room_id))) == {"secret": 2}


@pytest.mark.parametrize("event_type", ["m.fully_read", "m.push_rules"])
@pytest.mark.parametrize("scope", ["global", "room"])
async def test_types_the_server_manages_cannot_be_set_405_m_bad_json(
    server: TestServer, event_type: str, scope: str
):
    alice = await register(server)
    room_id = await alice.create_room()
    path = (
        global_path(alice, event_type)
        if scope == "global"
        else room_path(alice, room_id, event_type)
    )
    assert_error(await alice.put(path, {"event_id": "$x"}), 405, "M_BAD_JSON")


async def test_the_content_must_be_a_json_object(server: TestServer):
    alice = await register(server)
    assert_error(await alice.put(global_path(alice), ["not", "an", "object"]), 400, "M_BAD_JSON")
    not_json = await alice.http.put(
        "/_matrix/client/v3" + global_path(alice),
        content=b"{nope",
        headers={"Authorization": f"Bearer {alice.access_token}"},
    )
    assert_error(not_json, 400, "M_NOT_JSON")


async def test_a_room_id_that_is_not_one_is_400_m_invalid_param(server: TestServer):
    alice = await register(server)
    for response in (
        await alice.get(room_path(alice, "@not-a-room:localhost")),
        await alice.put(room_path(alice, "not-a-room"), {}),
    ):
        assert_error(response, 400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"ignored_users": ["@bob:localhost"]},
        {"ignored_users": {"bob": {}}},
        {"ignored_users": {"@bob:localhost": True}},
    ],
    ids=["missing", "a list", "not a user id", "value not an object"],
)
async def test_an_ignored_user_list_of_the_wrong_shape_is_400_m_bad_json(
    server: TestServer, content: dict
):
    alice = await register(server)
    response = await alice.put(global_path(alice, "m.ignored_user_list"), content)
    assert_error(response, 400, "M_BAD_JSON")
    assert server.services.account_data.ignored_users(alice.user_id) == set()


async def test_ignored_users_are_those_in_the_ignored_user_list(server: TestServer):
    alice = await register(server)
    ignored = {"@bob:localhost": {}, "@carol:example.org": {}}
    ok(await alice.put(global_path(alice, "m.ignored_user_list"), {"ignored_users": ignored}))
    assert server.services.account_data.ignored_users(alice.user_id) == set(ignored)

    ok(await alice.put(global_path(alice, "m.ignored_user_list"), {"ignored_users": {}}))
    assert server.services.account_data.ignored_users(alice.user_id) == set()


async def test_setting_account_data_wakes_that_users_syncs_only(server: TestServer):
    alice, bob = await register(server), await register(server)
    notifier = server.services.notifier
    alice_listener, bob_listener = notifier.listener(alice.user_id), notifier.listener(bob.user_id)
    ok(await alice.put(global_path(alice), {"a": 1}))
    assert alice_listener.is_set()
    assert not bob_listener.is_set()


# ---------------------------------------------------------------- what /sync reads


async def test_changes_since_zero_has_each_type_once_with_its_latest_content(server: TestServer):
    alice = await register(server)
    ok(await alice.put(global_path(alice, "org.example.a"), {"version": 1}))
    ok(await alice.put(global_path(alice, "org.example.b"), {"version": 1}))
    ok(await alice.put(global_path(alice, "org.example.a"), {"version": 2}))

    changes = server.services.account_data.changes_since(alice.user_id, None, 0)

    assert custom_changes(changes) == [
        {"type": "org.example.b", "content": {"version": 1}},
        {"type": "org.example.a", "content": {"version": 2}},
    ]


async def test_changes_since_a_position_has_only_types_changed_after_it(server: TestServer):
    alice = await register(server)
    ok(await alice.put(global_path(alice, "org.example.old"), {}))
    position = server.services.globals.current_count()
    ok(await alice.put(global_path(alice, "org.example.new"), {}))

    changes = server.services.account_data.changes_since(alice.user_id, None, position)

    assert [change["type"] for change in changes] == ["org.example.new"]
    current = server.services.globals.current_count()
    assert server.services.account_data.changes_since(alice.user_id, None, current) == []


async def test_changes_are_kept_apart_by_user_and_by_room(server: TestServer):
    alice, bob = await register(server), await register(server)
    room_id = await alice.create_room()
    other_room = await alice.create_room()
    ok(await alice.put(global_path(alice, "org.example.global"), {}))
    ok(await alice.put(room_path(alice, room_id, "org.example.room"), {}))
    ok(await bob.put(global_path(bob, "org.example.bobs"), {}))
    account_data = server.services.account_data

    def types(user: User, room: str | None) -> list[str]:
        changes = account_data.changes_since(user.user_id, room, 0)
        return [change["type"] for change in custom_changes(changes)]

    assert types(alice, None) == ["org.example.global"]
    assert types(alice, room_id) == ["org.example.room"]
    assert types(alice, other_room) == []
    assert types(bob, None) == ["org.example.bobs"]


async def test_account_data_survives_a_restart(tmp_path):
    config = make_config(tmp_path / "db")
    async with trio.open_nursery() as nursery, serving(nursery, config) as first:
        alice = await register(first)
        ok(await alice.put(global_path(alice), {"kept": True}))

    async with trio.open_nursery() as nursery, serving(nursery, config) as second:
        alice = dataclasses.replace(alice, http=second.client)
        assert ok(await alice.get(global_path(alice))) == {"kept": True}
