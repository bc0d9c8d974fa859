"""Sliding sync room entries over HTTP: every field, `required_state`, subscriptions, long-polling.

Spec: MSC4186 ("Room results", "RoomResult", "Combining room configs",
"Changing room configs", "Subscriptions"), MSC3575's `required_state` pairs
(`*`, `$LAZY`, `$ME`), and `content/client-server-api/_index.md` "Syncing"
(long-polling with `timeout`; `prev_batch` for `/messages`).
"""

from __future__ import annotations

import trio

from tests.support.matrix import ok, path_part
from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import (
    ALL_STATE,
    Connection,
    bodies,
    room_list,
    user_without_rooms,
)

running_server, server = shared_server_fixtures()


def state_keys(room: dict) -> set[tuple[str, str]]:
    return {(event["type"], event["state_key"]) for event in room["required_state"]}


async def test_a_room_entry_carries_name_avatar_counts_timeline_and_bump_stamp(server):
    alice, bob, carol = [await user_without_rooms(server) for _ in range(3)]
    room_id = await alice.create_room(name="Fields")
    await alice.set_state(room_id, "m.room.avatar", {"url": "mxc://localhost/avatar"})
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    await alice.invite(room_id, carol)
    await bob.send(room_id, "one")
    await bob.send(room_id, "two for alice", **{"m.mentions": {"user_ids": [alice.user_id]}})
    response = await Connection(alice).sync(
        {"lists": {"all": room_list(0, timeline_limit=2, required_state=[["m.room.name", ""]])}}
    )
    room = response["rooms"][room_id]
    assert room["name"] == "Fields"
    assert room["avatar"] == "mxc://localhost/avatar"
    assert "heroes" not in room, "heroes only when the room has no name"
    assert room["joined_count"] == 2
    assert room["invited_count"] == 1
    assert room["notification_count"] == 2
    assert room["highlight_count"] == 1, "the second message mentions alice"
    assert bodies(room) == ["one", "two for alice"]
    assert room["limited"] is True
    assert room["initial"] is True
    assert room["num_live"] == 0, "nothing is live on a connection's first request"
    assert room["membership"] == "join"
    assert isinstance(room["bump_stamp"], int)
    assert [e["type"] for e in room["required_state"]] == ["m.room.name"]
    assert all("room_id" not in e for e in room["timeline"])


async def test_prev_batch_pages_back_from_the_timeline_with_messages(server):
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    for n in range(4):
        await alice.send(room_id, f"m{n}")
    response = await Connection(alice).sync({"lists": {"all": room_list(0, timeline_limit=2)}})
    room = response["rooms"][room_id]
    assert bodies(room) == ["m2", "m3"]
    older = ok(await alice.messages(room_id, **{"from": room["prev_batch"], "limit": 2}))
    assert [e["content"]["body"] for e in older["chunk"]] == ["m1", "m0"]


async def test_heroes_name_the_other_members_of_an_unnamed_room(server):
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    ok(await bob.put(f"/profile/{path_part(bob.user_id)}/displayname", {"displayname": "Bob"}))
    room = (await Connection(alice).sync({"lists": {"all": room_list(0)}}))["rooms"][room_id]
    assert "name" not in room
    assert room["heroes"] == [{"user_id": bob.user_id, "displayname": "Bob"}]


async def test_num_live_counts_the_events_since_the_previous_request(server):
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    connection = Connection(alice)
    await connection.sync({"lists": {"all": room_list(0, timeline_limit=5)}})
    await alice.send(room_id, "live one")
    await alice.send(room_id, "live two")
    room = (await connection.sync())["rooms"][room_id]
    assert bodies(room) == ["live one", "live two"]
    assert room["num_live"] == 2


async def test_required_state_wildcards_me_and_lazy_members(server):
    alice, bob, carol = [await user_without_rooms(server) for _ in range(3)]
    room_id = await alice.create_room(name="state")
    for user in (bob, carol):
        await alice.invite(room_id, user)
        await user.join(room_id)
    await alice.set_state(room_id, "org.example.thing", {"n": 1}, "a")
    await alice.set_state(room_id, "org.example.thing", {"n": 2}, "b")
    await bob.send(room_id, "from bob")

    async def keys(required_state: list[list[str]]) -> set[tuple[str, str]]:
        lists = {"l": room_list(0, timeline_limit=1, required_state=required_state)}
        return state_keys((await Connection(alice, "rs").sync({"lists": lists}))["rooms"][room_id])

    assert await keys([["org.example.thing", "*"]]) == {
        ("org.example.thing", "a"),
        ("org.example.thing", "b"),
    }
    assert await keys([["m.room.member", "$ME"]]) == {("m.room.member", alice.user_id)}
    assert await keys([["m.room.member", "$LAZY"]]) == {("m.room.member", bob.user_id)}
    everything = await keys(ALL_STATE)
    assert {("m.room.create", ""), ("m.room.member", carol.user_id)} <= everything
    assert await keys([["*", "b"]]) == {("org.example.thing", "b")}


async def test_required_state_sends_state_changes_and_grows_on_a_live_connection(server):
    """MSC4186 "Changes to `required_state`": new pairs send the state they match at once."""
    alice = await user_without_rooms(server)
    room_id = await alice.create_room(name="before")
    connection = Connection(alice)
    lists = {"l": room_list(0, timeline_limit=1, required_state=[["m.room.name", ""]])}
    await connection.sync({"lists": lists})

    await alice.set_state(room_id, "m.room.name", {"name": "after"})
    changed = (await connection.sync())["rooms"][room_id]
    assert [e["content"] for e in changed["required_state"] if "content" in e] in (
        [],
        [{"name": "after"}],
    )
    assert changed["name"] == "after"

    await alice.set_state(room_id, "m.room.topic", {"topic": "hello"})
    await alice.send(room_id, "no topic asked for")
    plain = (await connection.sync())["rooms"][room_id]
    assert state_keys(plain) == set()

    grown = {
        "l": room_list(
            0, timeline_limit=1, required_state=[["m.room.name", ""], ["m.room.topic", ""]]
        )
    }
    expanded = (await connection.sync({"lists": grown}))["rooms"][room_id]
    assert state_keys(expanded) == {("m.room.topic", "")}
    assert "initial" not in expanded


async def test_a_larger_timeline_limit_sends_the_latest_events_again(server):
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    for n in range(3):
        await alice.send(room_id, f"m{n}")
    connection = Connection(alice)
    await connection.sync({"lists": {"l": room_list(0, timeline_limit=1)}})
    room = (await connection.sync({"lists": {"l": room_list(0, timeline_limit=3)}}))["rooms"][
        room_id
    ]
    assert bodies(room) == ["m0", "m1", "m2"]
    assert room["expanded_timeline"] is True


async def test_a_room_subscription_sends_a_room_outside_every_list(server):
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    subscribed = await alice.create_room(name="subscribed")
    await alice.create_room(name="on top")
    secret = await bob.create_room(name="not alice's")
    connection = Connection(alice)
    response = await connection.sync(
        {
            "lists": {"l": room_list(0, timeline_limit=1)},
            "room_subscriptions": {
                subscribed: {"timeline_limit": 1, "required_state": [["m.room.create", ""]]},
                secret: {"timeline_limit": 1, "required_state": []},
            },
        }
    )
    assert subscribed in response["rooms"]
    assert state_keys(response["rooms"][subscribed]) == {("m.room.create", "")}
    assert secret not in response["rooms"], "rooms the user may not see are ignored"
    await alice.send(subscribed, "update")
    assert bodies((await connection.sync())["rooms"][subscribed]) == ["update"]


async def test_is_dm_is_sent_for_rooms_in_m_direct(server):
    alice, bob = await user_without_rooms(server), await user_without_rooms(server)
    dm = await alice.create_room(is_direct=True)
    ok(await alice.put(f"/user/{alice.user_id}/account_data/m.direct", {bob.user_id: [dm]}))
    room = (await Connection(alice).sync({"lists": {"l": room_list(0)}}))["rooms"][dm]
    assert room["is_dm"] is True


async def test_a_long_poll_returns_when_a_message_arrives(server):
    """Long-polling on the notifier `/sync` uses: no `timeout` runs out in this test."""
    alice = await user_without_rooms(server)
    room_id = await alice.create_room()
    connection = Connection(alice)
    await connection.sync({"lists": {"l": room_list(0)}})
    results = []

    async def poll() -> None:
        results.append(await connection.sync(timeout=60_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(0.2)
        await alice.send(room_id, "wake up")
    assert bodies(results[0]["rooms"][room_id]) == ["wake up"]


async def test_a_request_with_nothing_new_keeps_its_pos(server):
    alice = await user_without_rooms(server)
    await alice.create_room()
    connection = Connection(alice)
    first = await connection.sync({"lists": {"l": room_list(0)}})
    again = await connection.sync(timeout=50)
    assert again["pos"] == first["pos"]
    assert again["rooms"] == {}


async def test_a_room_subscription_lasts_until_unsubscribe_rooms_names_it(server):
    """MSC3575's sticky subscriptions, as matrix-js-sdk sends them: once, then
    `unsubscribe_rooms` to end them."""
    alice = await user_without_rooms(server)
    subscribed = await alice.create_room(name="subscribed")
    await alice.create_room(name="on top")
    connection = Connection(alice)
    sub = {"timeline_limit": 1, "required_state": []}
    await connection.sync({"lists": {}, "room_subscriptions": {subscribed: sub}})
    await alice.send(subscribed, "still subscribed")
    kept = await connection.sync({"lists": {}})
    assert bodies(kept["rooms"][subscribed]) == ["still subscribed"]
    await connection.sync({"lists": {}, "unsubscribe_rooms": [subscribed]})
    await alice.send(subscribed, "no longer")
    assert subscribed not in (await connection.sync({"lists": {}}))["rooms"]
