"""Sliding sync lists over HTTP: windows of the room list by recency, filters, invites.

Spec: MSC4186 ("Lists and subscriptions", "Activity ordering",
"SlidingRoomFilter", "SyncListResult"), with MSC3575's request shape
(`ranges`) at `/_matrix/client/unstable/org.matrix.simplified_msc3575/sync`.
"""

from __future__ import annotations

from tests.support.matrix import ok
from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import Connection, room_list, user_without_rooms, window

running_server, server = shared_server_fixtures()


async def test_versions_advertises_simplified_sliding_sync(server):
    response = ok(await server.client.get("/_matrix/client/versions"))
    assert response["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_the_window_holds_the_most_recently_active_rooms_first(server):
    alice = await user_without_rooms(server)
    rooms = [await alice.create_room(name=f"room {n}") for n in range(5)]
    await alice.send(rooms[1], "bump")
    connection = Connection(alice)
    response = await connection.sync({"lists": {"all": room_list(2)}})
    assert response["lists"]["all"]["count"] == 5
    assert window(response, "all") == [rooms[1], rooms[4], rooms[3]]
    assert set(response["rooms"]) == {rooms[1], rooms[4], rooms[3]}


async def test_an_incremental_request_moves_a_room_with_a_new_message_into_the_window(server):
    """MSC4186 "Activity ordering": a message bumps its room; the room that drops
    out of the window is not sent again, the one that enters is."""
    alice = await user_without_rooms(server)
    rooms = [await alice.create_room(name=f"room {n}") for n in range(4)]
    connection = Connection(alice)
    first = await connection.sync({"lists": {"all": room_list(1, timeline_limit=1)}})
    assert window(first, "all") == [rooms[3], rooms[2]]

    await alice.send(rooms[0], "back to the top")
    second = await connection.sync()

    assert window(second, "all") == [rooms[0], rooms[3]]
    assert set(second["rooms"]) == {rooms[0]}, "room 2 left the window, room 3 has nothing new"
    assert second["rooms"][rooms[0]]["initial"] is True
    assert [e["content"]["body"] for e in second["rooms"][rooms[0]]["timeline"]] == [
        "back to the top"
    ]


async def test_a_room_that_comes_back_into_the_window_gets_only_what_it_missed(server):
    alice = await user_without_rooms(server)
    older = await alice.create_room(name="older")
    connection = Connection(alice)
    await connection.sync({"lists": {"all": room_list(0, timeline_limit=10)}})
    newer = await alice.create_room(name="newer")
    assert window(await connection.sync(), "all") == [newer]
    await alice.send(older, "one")
    await alice.send(older, "two")
    back = await connection.sync()
    assert window(back, "all") == [older]
    room = back["rooms"][older]
    assert "initial" not in room
    assert [e["content"]["body"] for e in room["timeline"]] == ["one", "two"]
    assert room["limited"] is False
    assert newer not in back["rooms"]


async def test_an_invite_appears_in_the_list_and_goes_when_rejected(server):
    """MSC4186: the server list holds invites (with `invite_state`); a rejected one leaves it."""
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    own = await bob.create_room(name="own")
    room_id = await alice.create_room(name="from alice")
    connection = Connection(bob)
    await connection.sync({"lists": {"all": room_list(9)}})

    await alice.invite(room_id, bob)
    invited = await connection.sync()
    assert window(invited, "all") == [room_id, own]
    entry = invited["rooms"][room_id]
    assert entry["membership"] == "invite"
    assert entry["initial"] is True
    assert {e["type"] for e in entry["invite_state"]} >= {"m.room.create", "m.room.member"}
    assert entry["name"] == "from alice"

    await bob.leave(room_id)
    rejected = await connection.sync()
    assert window(rejected, "all") == [own]
    assert rejected["lists"]["all"]["count"] == 1


async def test_a_room_left_after_it_was_sent_is_sent_once_more_with_the_leave(server):
    alice = await user_without_rooms(server)
    room_id = await alice.create_room(name="leaving")
    connection = Connection(alice)
    await connection.sync({"lists": {"all": room_list(9, timeline_limit=3)}})
    await alice.leave(room_id)
    response = await connection.sync()
    entry = response["rooms"][room_id]
    assert entry["membership"] == "leave"
    assert entry["timeline"][-1]["type"] == "m.room.member"
    assert entry["timeline"][-1]["content"]["membership"] == "leave"
    assert response["lists"]["all"]["count"] == 0
    assert room_id not in (await connection.sync())["rooms"]


async def test_filters_pick_invites_encrypted_rooms_dms_and_room_types(server):
    """MSC4186 "SlidingRoomFilter": `is_invite`, `is_encrypted`, `is_dm`, `room_types`,
    `not_room_types` (null: rooms without a type)."""
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    plain = await alice.create_room(name="plain")
    encrypted = await alice.create_room(
        initial_state=[
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ]
    )
    space = await alice.create_room(creation_content={"type": "m.space"})
    dm = await alice.create_room(is_direct=True)
    ok(await alice.put(f"/user/{alice.user_id}/account_data/m.direct", {bob.user_id: [dm]}))
    invite = await bob.create_room()
    await bob.invite(invite, alice)

    async def matching(**filters) -> list[str]:
        lists = {"l": room_list(99, **filters)}
        return window(await Connection(alice, "filters").sync({"lists": lists}), "l")

    assert await matching(is_invite=True) == [invite]
    assert await matching(is_encrypted=True) == [encrypted]
    assert await matching(is_dm=True) == [dm]
    assert await matching(room_types=["m.space"]) == [space]
    assert set(await matching(not_room_types=["m.space"])) == {plain, encrypted, dm, invite}
    assert set(await matching(room_types=[None], is_invite=False)) == {plain, encrypted, dm}
    lists = {"l": room_list(0, is_invite=False)}
    assert (await Connection(alice, "count").sync({"lists": lists}))["lists"]["l"]["count"] == 4


async def test_bad_list_fields_are_refused_with_their_name(server):
    alice = await user_without_rooms(server)
    connection = Connection(alice)
    cases = [
        ({"l": {"ranges": [[5, 1]], "timeline_limit": 1}}, 400, "M_INVALID_PARAM"),
        ({"l": {"ranges": "0-10", "timeline_limit": 1}}, 400, "M_BAD_JSON"),
        ({"l": {"ranges": [[0, 1]], "timeline_limit": -1}}, 400, "M_INVALID_PARAM"),
        ({"l": {"ranges": [[0, 1]], "required_state": [["m.room.name"]]}}, 400, "M_BAD_JSON"),
        ({"l": {"ranges": [[0, 1]], "filters": {"is_dm": "yes"}}}, 400, "M_BAD_JSON"),
    ]
    for lists, status, errcode in cases:
        response = await connection.raw({"lists": lists})
        assert response.status_code == status, lists
        assert response.json()["errcode"] == errcode, lists
        assert "lists.l" in response.json()["error"]


async def test_the_spaces_filter_keeps_the_children_of_a_joined_space(server):
    """MSC4186 `spaces`: rooms named by the space's `m.space.child` events (with `via`)."""
    alice = await user_without_rooms(server)
    space = await alice.create_room(creation_content={"type": "m.space"})
    child, removed, outside = [await alice.create_room() for _ in range(3)]
    await alice.set_state(space, "m.space.child", {"via": ["localhost"]}, child)
    await alice.set_state(space, "m.space.child", {}, removed)
    lists = {"l": room_list(9, spaces=[space])}
    assert window(await Connection(alice).sync({"lists": lists}), "l") == [child]
    del outside


async def test_the_tags_filters_keep_or_drop_tagged_rooms(server):
    alice = await user_without_rooms(server)
    favourite, plain = await alice.create_room(), await alice.create_room()
    tag_path = f"/user/{alice.user_id}/rooms/{favourite}/tags/m.favourite"
    ok(await alice.put(tag_path, {"order": 0.5}))
    tagged = window(
        await Connection(alice, "t").sync({"lists": {"l": room_list(9, tags=["m.favourite"])}}),
        "l",
    )
    untagged = window(
        await Connection(alice, "n").sync({"lists": {"l": room_list(9, not_tags=["m.favourite"])}}),
        "l",
    )
    assert tagged == [favourite]
    assert untagged == [plain]
