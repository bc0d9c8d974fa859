"""Joins between two of our servers over TLS: by room id (with `via`/`server_name`), by a
remote alias, for room versions 1, 6, 10 and 12; then messages both ways.

Spec: `content/server-server-api.md` "Joining Rooms" (make_join, send_join v1/v2),
"Querying for information" (`/query/directory`); `content/client-server-api/_index.md`
"Joining rooms" (`server_name`, `via`; rooms v12 ids have no server part).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from matrix_conduit.service.federation.errors import RemoteError
from tests.support.federation import FederatingServer, start_federating
from tests.support.matrix import User, assert_error, ok, path_part, register, state_of
from tests.support.remote_membership import eventually, join, refuse_v2


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def timeline_bodies(user: User, room_id: str) -> list[str]:
    """The message bodies of the room's timeline in the user's initial `/sync`."""
    joined = ok(await user.get("/sync"))["rooms"]["join"].get(room_id, {})
    events = joined.get("timeline", {}).get("events", [])
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


@pytest.mark.parametrize("room_version", ["1", "6", "10", "12"])
async def test_a_user_joins_a_room_of_another_server_by_id_through_via(pair, room_version):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(
        preset="public_chat", room_version=room_version, name="Over there"
    )

    assert ok(await join(bob, room_id, via=a.name))["room_id"] == room_id

    joined = ok(await bob.get("/sync"))["rooms"]["join"][room_id]
    assert state_of(joined["state"]["events"], "m.room.name")["content"]["name"] == "Over there"
    assert state_of(joined["state"]["events"], "m.room.member", alice.user_id)
    assert [e["type"] for e in joined["timeline"]["events"]] == ["m.room.member"]
    assert bob.user_id in a.server.services.rooms.state_cache.joined_members(room_id)


async def test_server_name_names_the_server_to_join_through_too(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", room_version="12")

    ok(await join(bob, room_id, server_name=a.name))

    assert room_id in await bob.joined_rooms()


async def test_a_v12_room_id_alone_gives_no_server_to_join_through(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", room_version="12")

    assert_error(await join(bob, room_id), 404, "M_NOT_FOUND")


async def test_a_user_joins_by_an_alias_of_another_server(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", room_alias_name="lobby")
    alias = f"#lobby:{a.name}"

    assert ok(await join(bob, alias))["room_id"] == room_id

    assert room_id in await bob.joined_rooms()


async def test_an_unknown_remote_alias_is_not_found(pair):
    a, b = pair
    bob = await register(b.server)

    assert_error(await join(bob, f"#nowhere:{a.name}"), 404, "M_NOT_FOUND")


async def test_make_join_refuses_a_server_without_the_rooms_version(pair):
    a, b = pair
    alice = await register(a.server)
    room_id = await alice.create_room(preset="public_chat", room_version="10")

    with pytest.raises(RemoteError) as raised:
        await b.federation.client.request(
            a.name,
            "GET",
            f"/_matrix/federation/v1/make_join/{path_part(room_id)}/{path_part('@x:' + b.name)}",
            query={"ver": ["1", "2"]},
        )

    assert (raised.value.status, raised.value.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")


async def test_after_a_join_messages_go_both_ways(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    ok(await join(bob, room_id, via=a.name))

    await bob.send(room_id, "hello from b")
    await eventually(lambda: _has(alice, room_id, "hello from b"))
    await alice.send(room_id, "hello from a")
    await eventually(lambda: _has(bob, room_id, "hello from a"))


async def _has(user: User, room_id: str, body: str) -> bool:
    return body in await timeline_bodies(user, room_id)


async def test_a_restricted_room_is_joined_with_the_residents_signature(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    allowed = await alice.create_room(preset="public_chat")
    ok(await join(bob, allowed, via=a.name))
    join_rules = {
        "type": "m.room.join_rules",
        "state_key": "",
        "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": allowed}],
        },
    }
    room_id = await alice.create_room(room_version="10", initial_state=[join_rules])

    ok(await join(bob, room_id, via=a.name))

    member = ok(await alice.get_state(room_id, "m.room.member", bob.user_id))
    assert member["join_authorised_via_users_server"] == alice.user_id
    join_event_id = b.server.services.rooms.state.current_state_ids(room_id)[
        ("m.room.member", bob.user_id)
    ]
    stored = b.server.services.rooms.timeline.get_event(join_event_id)
    assert set(stored["signatures"]) == {a.name, b.name}


async def test_a_restricted_room_refuses_a_user_in_none_of_its_allowed_rooms(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    allowed = await alice.create_room(preset="public_chat")
    join_rules = {
        "type": "m.room.join_rules",
        "state_key": "",
        "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": allowed}],
        },
    }
    room_id = await alice.create_room(room_version="10", initial_state=[join_rules])

    assert_error(await join(bob, room_id, via=a.name), 403, "M_FORBIDDEN")


async def _federation_error(
    server: FederatingServer, destination: str, method: str, path: str, **kwargs: Any
) -> tuple[int, str]:
    with pytest.raises(RemoteError) as raised:
        await server.federation.client.request(destination, method, path, **kwargs)
    return raised.value.status, raised.value.errcode


async def test_make_join_is_only_for_the_asking_servers_users_and_known_rooms(pair):
    a, b = pair
    alice = await register(a.server)
    room_id = await alice.create_room(preset="public_chat")
    make_join = "/_matrix/federation/v1/make_join"

    assert await _federation_error(
        b,
        a.name,
        "GET",
        f"{make_join}/{path_part(room_id)}/{path_part(alice.user_id)}",
        query={"ver": ["10"]},
    ) == (403, "M_FORBIDDEN")
    unknown = f"!nowhere:{a.name}"
    assert await _federation_error(
        b, a.name, "GET", f"{make_join}/{path_part(unknown)}/{path_part('@x:' + b.name)}"
    ) == (404, "M_NOT_FOUND")


async def test_send_join_refuses_an_event_that_is_not_a_join(pair):
    a, b = pair
    alice = await register(a.server)
    room_id = await alice.create_room(preset="public_chat")
    user_id = f"@mallory:{b.name}"
    template = await b.federation.client.request(
        a.name,
        "GET",
        f"/_matrix/federation/v1/make_join/{path_part(room_id)}/{path_part(user_id)}",
        query={"ver": ["10"]},
    )
    event = {**template["event"], "content": {"membership": "leave"}}
    assert template["room_version"] == "10"

    assert await _federation_error(
        b,
        a.name,
        "PUT",
        f"/_matrix/federation/v2/send_join/{path_part(room_id)}/{path_part('$x')}",
        body=event,
    ) == (400, "M_INVALID_PARAM")


async def test_a_remote_users_profile_is_asked_of_their_server(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    ok(await alice.put(f"/profile/{path_part(alice.user_id)}/displayname", {"displayname": "Al"}))

    assert ok(await bob.get(f"/profile/{path_part(alice.user_id)}"))["displayname"] == "Al"
    assert ok(await bob.get(f"/profile/{path_part(alice.user_id)}/displayname")) == {
        "displayname": "Al"
    }
    assert_error(
        await bob.get(f"/profile/{path_part(alice.user_id)}/avatar_url"), 404, "M_NOT_FOUND"
    )
    assert_error(await bob.get(f"/profile/{path_part('@ghost:' + a.name)}"), 404, "M_NOT_FOUND")


async def test_a_join_falls_back_to_send_join_v1(pair, monkeypatch):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", room_version="1")
    paths = refuse_v2(monkeypatch, b)

    ok(await join(bob, room_id, via=a.name))

    assert any(path.startswith("/_matrix/federation/v1/send_join/") for path in paths)
    assert bob.user_id in a.server.services.rooms.state_cache.joined_members(room_id)
    assert room_id in await bob.joined_rooms()


async def test_a_member_who_left_rejoins_through_the_servers_it_knew(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", room_version="12")
    ok(await join(bob, room_id, via=a.name))
    await bob.leave(room_id)
    await eventually(lambda: _left_on(a, room_id, bob))

    ok(await join(bob, room_id))

    assert bob.user_id in a.server.services.rooms.state_cache.joined_members(room_id)
    await alice.send(room_id, "welcome back")
    await eventually(lambda: _has(bob, room_id, "welcome back"))


async def _left_on(server: FederatingServer, room_id: str, user: User) -> bool:
    return user.user_id not in server.server.services.rooms.state_cache.joined_members(room_id)


async def test_a_server_the_rooms_acl_denies_cannot_join(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    await alice.set_state(room_id, "m.room.server_acl", {"allow": ["*"], "deny": ["127.0.0.3"]})

    assert_error(await join(bob, room_id, via=a.name), 403, "M_FORBIDDEN")


def tamper_send_join(
    monkeypatch: pytest.MonkeyPatch, resident: FederatingServer, change: Any
) -> None:
    """The resident's `send_join` answers what `change(answer)` makes of its real answer."""
    membership = resident.server.services.resident_membership
    real_send_join = membership.send_join

    async def send_join(*args: Any) -> dict[str, Any]:
        return change(await real_send_join(*args))

    monkeypatch.setattr(membership, "send_join", send_join)


async def test_a_join_answer_without_the_rooms_create_event_is_refused(pair, monkeypatch):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    tamper_send_join(
        monkeypatch,
        a,
        lambda answer: {
            **answer,
            "state": [e for e in answer["state"] if e["type"] != "m.room.create"],
        },
    )

    assert_error(await join(bob, room_id, via=a.name), 404, "M_NOT_FOUND")
    assert room_id not in await bob.joined_rooms()


async def test_a_forged_state_event_in_a_join_answer_is_left_out(pair, monkeypatch):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", topic="the real topic")

    def forge_topic(answer: dict[str, Any]) -> dict[str, Any]:
        state = []
        for event in answer["state"]:
            if event["type"] == "m.room.topic":
                event = {**event, "content": {"topic": "forged"}, "signatures": {}}
            state.append(event)
        return {**answer, "state": state}

    tamper_send_join(monkeypatch, a, forge_topic)

    ok(await join(bob, room_id, via=a.name))

    topic = await bob.get_state(room_id, "m.room.topic")
    assert topic.status_code == 404, topic.text  # dropped: its signatures do not hold


async def test_two_users_joining_one_remote_room_at_once_are_both_in_it(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    dave = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    answers = []

    async def join_now(user: User) -> None:
        answers.append((await join(user, room_id, via=a.name)).status_code)

    async with trio.open_nursery() as joins:
        joins.start_soon(join_now, bob)
        joins.start_soon(join_now, dave)

    assert answers == [200, 200]
    for server in (a, b):
        members = server.server.services.rooms.state_cache.joined_members(room_id)
        assert {bob.user_id, dave.user_id} <= members
    await alice.send(room_id, "to both")
    await eventually(lambda: _has(dave, room_id, "to both"))
