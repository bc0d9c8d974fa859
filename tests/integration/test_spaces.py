"""`GET /rooms/{roomId}/hierarchy`: walking a space's children.

Spec: `content/client-server-api/modules/spaces.md`,
`data/api/client-server/space_hierarchy.yaml`.
"""

from __future__ import annotations

from tests.support.matrix import CLIENT_V1, User, assert_error, ok, path_part, register
from tests.support.server import TestServer


async def add_child(space_owner: User, space_id: str, child_id: str, **extra) -> None:
    await space_owner.set_state(
        space_id, "m.space.child", {"via": [space_owner.server_name], **extra}, child_id
    )


async def hierarchy(user: User, room_id: str, **params) -> dict:
    return ok(
        await user.request(
            "GET", f"/rooms/{path_part(room_id)}/hierarchy", params=params or None, prefix=CLIENT_V1
        )
    )


async def test_hierarchy_walks_children_breadth_first(server: TestServer):
    alice = await register(server)
    space = await alice.create_room(creation_content={"type": "m.space"}, name="Space")
    child = await alice.create_room(name="Child", preset="public_chat")
    grandchild = await alice.create_room(name="Grandchild", preset="public_chat")
    await add_child(alice, space, child)
    await add_child(alice, child, grandchild)
    rooms = (await hierarchy(alice, space))["rooms"]
    assert [room["room_id"] for room in rooms] == [space, child, grandchild]
    assert rooms[0]["room_type"] == "m.space"
    assert rooms[0]["children_state"][0]["state_key"] == child
    shallow = await hierarchy(alice, space, max_depth="0")
    assert [room["room_id"] for room in shallow["rooms"]] == [space]


async def test_hierarchy_hides_private_rooms_and_honours_suggested_only(server: TestServer):
    alice = await register(server)
    bob = await register(server)
    space = await alice.create_room(preset="public_chat", creation_content={"type": "m.space"})
    public = await alice.create_room(preset="public_chat")
    private = await alice.create_room(preset="private_chat")
    await add_child(alice, space, public, suggested=True)
    await add_child(alice, space, private)
    seen_by_bob = [room["room_id"] for room in (await hierarchy(bob, space))["rooms"]]
    assert seen_by_bob == [space, public]
    suggested = await hierarchy(alice, space, suggested_only="true")
    assert [room["room_id"] for room in suggested["rooms"]] == [space, public]


async def test_hierarchy_paginates(server: TestServer):
    alice = await register(server)
    space = await alice.create_room(creation_content={"type": "m.space"})
    for _ in range(3):
        await add_child(alice, space, await alice.create_room(preset="public_chat"))
    first = await hierarchy(alice, space, limit="2")
    rest = await hierarchy(alice, space, limit="2", **{"from": first["next_batch"]})
    assert len(first["rooms"]) == 2 and len(rest["rooms"]) == 2
    assert "next_batch" not in rest


async def test_hierarchy_of_a_space_one_cannot_see_is_403(server: TestServer):
    alice = await register(server)
    bob = await register(server)
    space = await alice.create_room(creation_content={"type": "m.space"})
    response = await bob.request("GET", f"/rooms/{path_part(space)}/hierarchy", prefix=CLIENT_V1)
    assert_error(response, 403, "M_FORBIDDEN")
