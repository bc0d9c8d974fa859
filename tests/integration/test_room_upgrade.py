"""Room upgrades: `POST /rooms/{roomId}/upgrade`.

Spec: `content/client-server-api/modules/room_upgrades.md`, "Server
behaviour" (tombstone power, a replacement room whose create event names its
`predecessor` and copies `type`, transferable state replicated, local
aliases moved, `m.room.tombstone` in the old room, old power levels
restricted) and `data/api/client-server/room_upgrades.yaml` (unsupported
version: 400 `M_UNSUPPORTED_ROOM_VERSION`; no permission: 403
`M_FORBIDDEN`). Members are invited to the replacement of an invite-only
room, so they can follow the tombstone.
"""

from __future__ import annotations

from tests.support.matrix import (
    User,
    assert_error,
    ok,
    path_part,
    register,
    register_many,
    room_with_members,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()


async def upgrade(user: User, room_id: str, new_version: str, **body):
    return await user.post(
        f"/rooms/{path_part(room_id)}/upgrade", {"new_version": new_version, **body}
    )


async def state_content(user: User, room_id: str, event_type: str, state_key: str = "") -> dict:
    return ok(await user.get_state(room_id, event_type, state_key))


async def test_upgrade_tombstones_the_old_room_and_names_the_new_one(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room(room_version="9")
    new = ok(await upgrade(alice, old, "10"))["replacement_room"]
    assert new != old
    tombstone = await state_content(alice, old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new
    assert isinstance(tombstone["body"], str)
    assert new in await alice.joined_rooms()


async def test_replacement_room_has_the_new_version_and_a_predecessor(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room(room_version="9")
    await alice.send(old, "last words")
    new = ok(await upgrade(alice, old, "11"))["replacement_room"]
    create = await state_content(alice, new, "m.room.create")
    assert create["room_version"] == "11"
    assert create["predecessor"]["room_id"] == old
    # the tombstone's id, as Synapse and Conduit set it (tests/integration/test_client_shapes.py)
    old_state = ok(await alice.get(f"/rooms/{path_part(old)}/state"))
    tombstone = next(e for e in old_state if e["type"] == "m.room.tombstone")
    assert create["predecessor"]["event_id"] == tombstone["event_id"]


async def test_upgrade_to_v12_gives_a_room_id_from_the_create_event(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room(room_version="11")
    new = ok(await upgrade(alice, old, "12"))["replacement_room"]
    create = ok(await alice.get(f"/rooms/{path_part(new)}/state/m.room.create/", format="event"))
    assert new == "!" + create["event_id"][1:]
    assert create["content"]["predecessor"]["room_id"] == old
    levels = await state_content(alice, new, "m.room.power_levels")
    assert alice.user_id not in levels["users"]  # v12 creators are implicit


async def test_upgrade_copies_the_room_type(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room(creation_content={"type": "m.space"})
    new = ok(await upgrade(alice, old, "10"))["replacement_room"]
    assert (await state_content(alice, new, "m.room.create"))["type"] == "m.space"


async def test_upgrade_without_type_gives_no_type(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room()
    new = ok(await upgrade(alice, old, "10"))["replacement_room"]
    assert "type" not in await state_content(alice, new, "m.room.create")


async def test_upgrade_replicates_the_transferable_state(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room(
        preset="public_chat",
        name="Old name",
        topic="Old topic",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
            {"type": "m.room.avatar", "content": {"url": "mxc://localhost/avatar"}},
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
            {"type": "org.example.private", "content": {"not": "copied"}},
        ],
        power_level_content_override={"events_default": 10, "state_default": 60},
    )
    new = ok(await upgrade(alice, old, "10"))["replacement_room"]
    for event_type in (
        "m.room.name",
        "m.room.topic",
        "m.room.history_visibility",
        "m.room.avatar",
        "m.room.encryption",
        "m.room.join_rules",
        "m.room.guest_access",
    ):
        old_content = await state_content(alice, old, event_type)
        assert await state_content(alice, new, event_type) == old_content, event_type
    levels = await state_content(alice, new, "m.room.power_levels")
    assert levels["state_default"] == 60
    assert levels["events_default"] == 10
    assert levels["users"][alice.user_id] == 100
    response = await alice.get_state(new, "org.example.private")
    assert_error(response, 404, "M_NOT_FOUND")


async def test_upgrade_moves_local_aliases_to_the_new_room(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room(room_alias_name="moving")
    new = ok(await upgrade(alice, old, "10"))["replacement_room"]
    resolved = ok(await alice.get(f"/directory/room/{path_part('#moving:localhost')}"))
    assert resolved["room_id"] == new
    assert ok(await alice.get(f"/rooms/{path_part(new)}/aliases"))["aliases"] == [
        "#moving:localhost"
    ]
    assert ok(await alice.get(f"/rooms/{path_part(old)}/aliases"))["aliases"] == []


async def test_members_of_an_invite_only_room_are_invited_to_the_new_room(server: SharedServer):
    alice, bob, carol = await register_many(server, 3)
    old = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    await bob.join(old)
    new = ok(await upgrade(alice, old, "10"))["replacement_room"]
    member = await state_content(alice, new, "m.room.member", bob.user_id)
    assert member["membership"] == "invite"
    await bob.join(new)
    assert sorted(await bob.joined_rooms()) == sorted([old, new])
    assert_error(await carol.post(f"/join/{path_part(new)}"), 403, "M_FORBIDDEN")


async def test_members_of_a_public_room_can_join_the_new_room(server: SharedServer):
    old, (alice, bob) = await room_with_members(server, 2)
    new = ok(await upgrade(alice, old, "10"))["replacement_room"]
    await bob.join(new)
    assert new in await bob.joined_rooms()


async def test_old_room_power_levels_are_restricted(server: SharedServer):
    old, (alice, bob) = await room_with_members(server, 2)
    ok(await upgrade(alice, old, "10"))
    levels = await state_content(alice, old, "m.room.power_levels")
    assert levels["events_default"] >= 50
    assert levels["invite"] >= 50
    response = await bob.send_event(old, "m.room.message", {"body": "anyone here?"})
    assert_error(response, 403, "M_FORBIDDEN")


async def test_member_without_tombstone_power_cannot_upgrade(server: SharedServer):
    old, (alice, bob) = await room_with_members(server, 2)
    assert_error(await upgrade(bob, old, "10"), 403, "M_FORBIDDEN")
    assert_error(await alice.get_state(old, "m.room.tombstone"), 404, "M_NOT_FOUND")
    assert len(await alice.joined_rooms()) == 1


async def test_non_member_cannot_upgrade(server: SharedServer):
    alice, mallory = await register_many(server, 2)
    old = await alice.create_room(preset="public_chat")
    assert_error(await upgrade(mallory, old, "10"), 403, "M_FORBIDDEN")


async def test_upgrade_to_an_unsupported_version_is_400(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room()
    assert_error(await upgrade(alice, old, "999"), 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert await alice.joined_rooms() == [old]


async def test_upgrade_needs_new_version(server: SharedServer):
    alice = await register(server)
    old = await alice.create_room()
    response = await alice.post(f"/rooms/{path_part(old)}/upgrade", {})
    assert response.status_code == 400


async def test_upgrade_to_v12_with_additional_creators(server: SharedServer):
    alice, bob = await register_many(server, 2)
    old = await alice.create_room(room_version="11")
    new = ok(await upgrade(alice, old, "12", additional_creators=[bob.user_id]))["replacement_room"]
    create = await state_content(alice, new, "m.room.create")
    assert create["additional_creators"] == [bob.user_id]


async def test_upgrade_from_v5_writes_string_and_float_levels_as_integers(server: SharedServer):
    """Rooms v1–v9 accept `" 0100 "` and v1–v5 `50.5` as levels; v10 only integers
    (`content/rooms/v10.md`, "Values in power levels events must be integers")."""
    alice = await register(server)
    room_id = await alice.create_room(room_version="5")
    levels = await state_content(alice, room_id, "m.room.power_levels")
    levels.update({"kick": " 0060 ", "redact": 50.5, "events": {"m.room.name": "75"}})
    ok(await alice.put_state(room_id, "m.room.power_levels", levels))

    new_room = ok(await upgrade(alice, room_id, "10"))["replacement_room"]

    new_levels = await state_content(alice, new_room, "m.room.power_levels")
    assert (new_levels["kick"], new_levels["redact"]) == (60, 50)
    assert new_levels["events"]["m.room.name"] == 75
    assert new_levels["users"][alice.user_id] == 100
