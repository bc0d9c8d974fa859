"""Room tags over HTTP: kept as the `m.tag` room account data, only one's own.

Spec: `content/client-server-api/modules/tags.md` (tag names at most 255
bytes, `order` a number), `data/api/client-server/tags.yaml`.
"""

from __future__ import annotations

from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.server import TestServer


def tags_path(user: User, room_id: str, tag: str | None = None) -> str:
    path = f"/user/{path_part(user.user_id)}/rooms/{path_part(room_id)}/tags"
    return path if tag is None else f"{path}/{path_part(tag)}"


async def get_tags(user: User, room_id: str) -> dict:
    return ok(await user.get(tags_path(user, room_id)))["tags"]


async def test_a_room_without_tags_has_an_empty_tag_map(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    assert await get_tags(alice, room_id) == {}


async def test_tags_put_on_a_room_are_listed_with_their_order(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(tags_path(alice, room_id, "m.favourite"), {"order": 0.25}))
    ok(await alice.put(tags_path(alice, room_id, "u.Work"), {}))

    assert await get_tags(alice, room_id) == {"m.favourite": {"order": 0.25}, "u.Work": {}}


async def test_putting_a_tag_again_replaces_its_info(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(tags_path(alice, room_id, "u.Work"), {"order": 0.7}))
    ok(await alice.put(tags_path(alice, room_id, "u.Work"), {"order": 0.1}))
    assert await get_tags(alice, room_id) == {"u.Work": {"order": 0.1}}


async def test_deleting_a_tag_removes_only_that_tag(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(tags_path(alice, room_id, "m.favourite"), {}))
    ok(await alice.put(tags_path(alice, room_id, "m.lowpriority"), {}))

    ok(await alice.request("DELETE", tags_path(alice, room_id, "m.favourite")))

    assert await get_tags(alice, room_id) == {"m.lowpriority": {}}


async def test_deleting_a_tag_the_room_does_not_have_succeeds(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    assert ok(await alice.request("DELETE", tags_path(alice, room_id, "u.none"))) == {}


async def test_tags_are_the_m_tag_room_account_data(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(tags_path(alice, room_id, "u.Customers"), {"order": 0.5}))

    account_data_path = (
        f"/user/{path_part(alice.user_id)}/rooms/{path_part(room_id)}/account_data/m.tag"
    )
    assert ok(await alice.get(account_data_path)) == {"tags": {"u.Customers": {"order": 0.5}}}
    changes = server.services.account_data.changes_since(alice.user_id, room_id, 0)
    assert changes == [{"type": "m.tag", "content": {"tags": {"u.Customers": {"order": 0.5}}}}]


async def test_tags_are_per_room(server: TestServer):
    alice = await register(server)
    tagged, untagged = await alice.create_room(), await alice.create_room()
    ok(await alice.put(tags_path(alice, tagged, "m.favourite"), {}))
    assert await get_tags(alice, untagged) == {}


async def test_an_order_that_is_not_a_number_is_400_m_bad_json(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    for order in ("first", True, [0.5]):
        response = await alice.put(tags_path(alice, room_id, "u.Work"), {"order": order})
        assert_error(response, 400, "M_BAD_JSON")
    assert await get_tags(alice, room_id) == {}


async def test_a_tag_name_over_255_bytes_is_refused(server: TestServer):
    alice = await register(server)
    room_id = await alice.create_room()
    longest = "u." + "é" * 126  # 254 bytes
    ok(await alice.put(tags_path(alice, room_id, longest), {}))
    assert_error(await alice.put(tags_path(alice, room_id, longest + "xy"), {}), 400, "M_BAD_JSON")
    assert list(await get_tags(alice, room_id)) == [longest]


async def test_nobody_reads_or_changes_another_users_tags(server: TestServer):
    alice, mallory = await register(server), await register(server)
    room_id = await alice.create_room()
    ok(await alice.put(tags_path(alice, room_id, "m.favourite"), {}))
    path = tags_path(alice, room_id)

    assert_error(await mallory.get(path), 403, "M_FORBIDDEN")
    assert_error(await mallory.put(f"{path}/u.mine", {}), 403, "M_FORBIDDEN")
    assert_error(await mallory.request("DELETE", f"{path}/m.favourite"), 403, "M_FORBIDDEN")
    assert await get_tags(alice, room_id) == {"m.favourite": {}}
