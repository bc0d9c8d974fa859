"""`POST /createRoom`: presets, room versions, the initial state and its order.

Spec: `data/api/client-server/create_room.yaml` — the events of a new room
in the order it gives (create, the creator's join, power levels, canonical
alias, the preset's join rules / history visibility / guest access,
`initial_state`, name and topic, invites), the preset table, `room_version`
(unsupported: 400 `M_UNSUPPORTED_ROOM_VERSION`), `creation_content`,
`power_level_content_override`, `room_alias_name` (taken: 400
`M_ROOM_IN_USE`), `visibility`, `is_direct`; and
`content/client-server-api/_index.md`, "Room creation".
"""

from __future__ import annotations

import pytest

from tests.support.matrix import (
    assert_error,
    ok,
    path_part,
    register,
    state_of,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()

SPEC_ORDER_BEFORE_INITIAL_STATE = [
    ("m.room.create", ""),
    ("m.room.member", "creator"),
    ("m.room.power_levels", ""),
    ("m.room.canonical_alias", ""),
    ("m.room.join_rules", ""),
    ("m.room.history_visibility", ""),
    ("m.room.guest_access", ""),
]


async def room_state(user, room_id: str) -> list[dict]:
    return ok(await user.get(f"/rooms/{path_part(room_id)}/state"))


async def first_events(user, room_id: str) -> list[dict]:
    """The room's events from its start, oldest first."""
    return ok(await user.messages(room_id, dir="f", limit=50))["chunk"]


def content(state: list[dict], event_type: str, state_key: str = "") -> dict:
    event = state_of(state, event_type, state_key)
    assert event is not None, f"no {event_type} in the room's state"
    return event["content"]


async def test_initial_events_come_in_the_order_the_spec_gives(server: SharedServer):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(
        preset="private_chat",
        room_alias_name="ordered",
        initial_state=[{"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1"}}],
        name="Ordered",
        topic="In order",
        invite=[bob.user_id],
    )
    events = await first_events(alice, room_id)
    keys = [
        (e["type"], "creator" if e.get("state_key") == alice.user_id else e.get("state_key"))
        for e in events
    ]
    assert keys == [
        *SPEC_ORDER_BEFORE_INITIAL_STATE,
        ("m.room.encryption", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.member", bob.user_id),
    ]
    assert events[-1]["content"]["membership"] == "invite"


@pytest.mark.parametrize(
    ("preset", "join_rule", "history_visibility", "guest_access"),
    [
        ("private_chat", "invite", "shared", "can_join"),
        ("trusted_private_chat", "invite", "shared", "can_join"),
        ("public_chat", "public", "shared", "forbidden"),
    ],
)
async def test_preset_sets_the_spec_table_state(
    server: SharedServer, preset, join_rule, history_visibility, guest_access
):
    alice = await register(server)
    room_id = await alice.create_room(preset=preset)
    state = await room_state(alice, room_id)
    assert content(state, "m.room.join_rules") == {"join_rule": join_rule}
    assert content(state, "m.room.history_visibility") == {"history_visibility": history_visibility}
    assert content(state, "m.room.guest_access") == {"guest_access": guest_access}


async def test_visibility_public_without_preset_means_public_chat_and_a_listed_room(
    server: SharedServer,
):
    alice = await register(server)
    room_id = await alice.create_room(visibility="public")
    state = await room_state(alice, room_id)
    assert content(state, "m.room.join_rules")["join_rule"] == "public"
    listed = ok(await server.client.get(f"/_matrix/client/v3/directory/list/room/{room_id}"))
    assert listed == {"visibility": "public"}


async def test_room_without_visibility_is_private_and_not_listed(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    state = await room_state(alice, room_id)
    assert content(state, "m.room.join_rules")["join_rule"] == "invite"
    listed = ok(await server.client.get(f"/_matrix/client/v3/directory/list/room/{room_id}"))
    assert listed == {"visibility": "private"}


async def test_creator_has_power_100_in_rooms_before_version_12(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room(room_version="10")
    levels = content(await room_state(alice, room_id), "m.room.power_levels")
    assert levels["users"] == {alice.user_id: 100}
    assert levels["events"]["m.room.tombstone"] == 100


async def test_creator_is_not_listed_in_power_levels_of_version_12_rooms(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room(room_version="12")
    state = await room_state(alice, room_id)
    levels = content(state, "m.room.power_levels")
    assert alice.user_id not in levels["users"]
    assert levels["events"]["m.room.tombstone"] > levels["state_default"]
    create = state_of(state, "m.room.create")
    assert create["sender"] == alice.user_id
    assert room_id == "!" + create["event_id"][1:]


async def test_trusted_private_chat_gives_invitees_the_creators_power(server: SharedServer):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(
        preset="trusted_private_chat", invite=[bob.user_id], room_version="10"
    )
    levels = content(await room_state(alice, room_id), "m.room.power_levels")
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 100}


async def test_trusted_private_chat_in_v12_makes_invitees_additional_creators(
    server: SharedServer,
):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(
        preset="trusted_private_chat", invite=[bob.user_id], room_version="12"
    )
    create = content(await room_state(alice, room_id), "m.room.create")
    assert create["additional_creators"] == [bob.user_id]


async def test_room_version_defaults_to_the_configured_default(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room()
    create = content(await room_state(alice, room_id), "m.room.create")
    assert create["room_version"] == server.config.default_room_version


@pytest.mark.parametrize("version", ["1", "3", "7", "9", "11", "12"])
async def test_requested_room_version_is_used(server: SharedServer, version: str):
    alice = await register(server)
    room_id = await alice.create_room(room_version=version, name=f"v{version}")
    state = await room_state(alice, room_id)
    assert content(state, "m.room.create")["room_version"] == version
    assert content(state, "m.room.name") == {"name": f"v{version}"}


async def test_unsupported_room_version_is_400_unsupported_room_version(server: SharedServer):
    alice = await register(server)
    response = await alice.post("/createRoom", {"room_version": "999"})
    assert_error(response, 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert await alice.joined_rooms() == []


async def test_creation_content_is_added_but_creator_and_version_are_the_servers(
    server: SharedServer,
):
    alice = await register(server)
    room_id = await alice.create_room(
        room_version="10",
        creation_content={
            "m.federate": False,
            "type": "m.space",
            "creator": "@mallory:localhost",
            "room_version": "1",
        },
    )
    create = content(await room_state(alice, room_id), "m.room.create")
    assert create["m.federate"] is False
    assert create["type"] == "m.space"
    assert create["creator"] == alice.user_id
    assert create["room_version"] == "10"


async def test_initial_state_overrides_the_preset_and_name_overrides_initial_state(
    server: SharedServer,
):
    alice = await register(server)
    room_id = await alice.create_room(
        preset="private_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
            {"type": "m.room.name", "state_key": "", "content": {"name": "from initial_state"}},
            {"type": "org.example.custom", "state_key": "k", "content": {"x": 1}},
        ],
        name="from name",
    )
    state = await room_state(alice, room_id)
    assert content(state, "m.room.history_visibility") == {"history_visibility": "joined"}
    assert content(state, "m.room.name") == {"name": "from name"}
    assert content(state, "org.example.custom", "k") == {"x": 1}


async def test_name_and_topic_become_state(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room(name="Garden", topic="Plants and such")
    state = await room_state(alice, room_id)
    assert content(state, "m.room.name") == {"name": "Garden"}
    assert content(state, "m.room.topic")["topic"] == "Plants and such"


async def test_invited_users_get_invites_and_see_the_room_as_invited(server: SharedServer):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(invite=[bob.user_id], is_direct=True)
    member = content(await room_state(alice, room_id), "m.room.member", bob.user_id)
    assert member["membership"] == "invite"
    assert member["is_direct"] is True
    assert await bob.joined_rooms() == []
    await bob.join(room_id)
    assert await bob.joined_rooms() == [room_id]


async def test_without_is_direct_invites_carry_no_is_direct_flag(server: SharedServer):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(invite=[bob.user_id])
    member = content(await room_state(alice, room_id), "m.room.member", bob.user_id)
    assert "is_direct" not in member


async def test_power_level_content_override_is_applied_on_top_of_the_defaults(
    server: SharedServer,
):
    alice = await register(server)
    bob = await register(server)
    room_id = await alice.create_room(
        preset="public_chat",
        power_level_content_override={
            "events_default": 20,
            "users": {alice.user_id: 100, bob.user_id: 20},
        },
    )
    levels = content(await room_state(alice, room_id), "m.room.power_levels")
    assert levels["events_default"] == 20
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 20}
    assert levels["ban"] == 50  # the rest of the defaults stay
    await bob.join(room_id)
    await bob.send(room_id, "bob has 20, enough")


async def test_override_that_leaves_the_creator_powerless_is_invalid_room_state(
    server: SharedServer,
):
    alice = await register(server)
    response = await alice.post(
        "/createRoom",
        {
            "room_version": "10",
            "name": "needs power 50",
            "power_level_content_override": {"users": {alice.user_id: 0}},
        },
    )
    assert_error(response, 400, "M_INVALID_ROOM_STATE")


async def test_room_alias_name_creates_the_alias_and_the_canonical_alias(server: SharedServer):
    alice = await register(server)
    room_id = await alice.create_room(room_alias_name="garden")
    alias = "#garden:localhost"
    state = await room_state(alice, room_id)
    assert content(state, "m.room.canonical_alias") == {"alias": alias}
    resolved = ok(await alice.get(f"/directory/room/{path_part(alias)}"))
    assert resolved["room_id"] == room_id


async def test_room_alias_name_already_taken_is_400_room_in_use(server: SharedServer):
    alice = await register(server)
    await alice.create_room(room_alias_name="taken")
    response = await alice.post("/createRoom", {"room_alias_name": "taken"})
    assert_error(response, 400, "M_ROOM_IN_USE")
    assert len(await alice.joined_rooms()) == 1


async def test_room_alias_name_with_a_server_part_is_400(server: SharedServer):
    alice = await register(server)
    response = await alice.post("/createRoom", {"room_alias_name": "garden:localhost"})
    assert_error(response, 400, "M_INVALID_PARAM")
    assert await alice.joined_rooms() == []


@pytest.mark.parametrize(
    "body",
    [
        {"preset": "everyone_welcome"},
        {"visibility": "secret"},
        {"room_version": 10},
        {"initial_state": {"type": "m.room.name"}},
        {"initial_state": [{"content": {}}]},
        {"invite": "@bob:localhost"},
        {"name": 5},
    ],
    ids=[
        "unknown-preset",
        "unknown-visibility",
        "version-not-string",
        "initial-state-not-list",
        "state-without-type",
        "invite-not-list",
        "name-not-string",
    ],
)
async def test_malformed_request_is_400_and_creates_nothing(server: SharedServer, body: dict):
    alice = await register(server)
    response = await alice.post("/createRoom", body)
    assert response.status_code == 400
    assert response.json()["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM")
    assert await alice.joined_rooms() == []


async def test_creating_a_room_needs_an_access_token(server: SharedServer):
    response = await server.client.post("/_matrix/client/v3/createRoom", json={})
    assert_error(response, 401, "M_MISSING_TOKEN")


async def test_creator_joins_with_their_profile(server: SharedServer):
    alice = await register(server)
    ok(await alice.put(f"/profile/{alice.user_id}/displayname", {"displayname": "Alice A."}))
    room_id = await alice.create_room()
    member = content(await room_state(alice, room_id), "m.room.member", alice.user_id)
    assert member == {"membership": "join", "displayname": "Alice A."}
