"""`/sync` correctness that clients rely on (issue #14): what an incremental sync sends.

Spec: `content/client-server-api/_index.md` ("Syncing", "Filtering",
"Lazy-loading room members", "Typing Notifications", "Presence") and
`data/api/client-server/sync.yaml`, `event_context.yaml`,
`message_pagination.yaml`. Each test was a bug a client saw: a profile change
re-downloading whole rooms, members missed across a rejoin, left rooms with
all or no state, presence missing for new room-mates, `limited` lying under a
filter, an empty `m.typing` in every initial sync, `/context` ignoring
lazy-loading and `/messages?dir=f` without `end`.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.matrix import (
    User,
    bodies,
    ok,
    path_part,
    register,
    room_with_members,
    state_of,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()


async def sync(user: User, **params: Any) -> dict[str, Any]:
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    params.setdefault("set_presence", "offline")
    return ok(await user.get("/sync", **params))


def members_in(events: list[dict[str, Any]]) -> dict[str, str]:
    """state_key -> membership of the `m.room.member` events among `events`."""
    return {
        event["state_key"]: event["content"]["membership"]
        for event in events
        if event["type"] == "m.room.member"
    }


def final_membership(entry: dict[str, Any], user_id: str) -> dict[str, Any] | None:
    """The user's member event a client ends up with: the timeline's last, else the state's."""
    for event in reversed(entry["timeline"]["events"]):
        if event["type"] == "m.room.member" and event["state_key"] == user_id:
            return event
    return state_of(entry["state"]["events"], "m.room.member", user_id)


MESSAGES_ONLY = {"room": {"timeline": {"types": ["m.room.message"]}}}


# ---- join -> join (a profile change)


async def test_a_profile_change_brings_only_the_new_events_in_the_next_sync(
    server: SharedServer,
):
    """sync.yaml `timeline`: events since `since`; a join -> join member event is not a join.

    Changing one's display name sends an `m.room.member` event with membership
    `join` again; the room stays joined, so the next sync is incremental.
    """
    room_id, (alice, bob) = await room_with_members(server, 2)
    for number in range(12):
        await bob.send(room_id, f"before {number}")
    start = await sync(alice)
    ok(await alice.put(f"/profile/{path_part(alice.user_id)}/displayname", {"displayname": "Al"}))
    await bob.send(room_id, "after")
    room = (await sync(alice, since=start["next_batch"]))["rooms"]["join"][room_id]
    timeline = room["timeline"]["events"]
    assert bodies(timeline) == ["after"]
    assert [e["type"] for e in timeline] == ["m.room.member", "m.room.message"]
    assert timeline[0]["content"]["displayname"] == "Al"
    assert room["timeline"]["limited"] is False
    assert room["state"]["events"] == []


# ---- leave and re-join


async def test_members_who_changed_while_a_user_was_away_arrive_after_the_rejoin(
    server: SharedServer,
):
    """Spec, "Syncing": state + timeline bring the client to the room's state at `next_batch`.

    With `history_visibility: joined` the events while alice was away are
    hidden from her timeline; the members who joined or left meanwhile must
    then be in `state`.
    """
    room_id, (alice, bob, carol) = await room_with_members(server, 3)
    await alice.set_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    start = await sync(alice)
    await alice.leave(room_id)
    dave = await register(server)
    await dave.join(room_id)
    await carol.leave(room_id)
    await bob.send(room_id, "while alice was away")
    await alice.join(room_id)
    room = (await sync(alice, since=start["next_batch"]))["rooms"]["join"][room_id]
    seen = members_in(room["state"]["events"]) | members_in(room["timeline"]["events"])
    assert seen.get(dave.user_id) == "join", room
    assert seen.get(carol.user_id) == "leave", room
    assert seen.get(alice.user_id) == "join"
    assert "while alice was away" not in bodies(room["timeline"]["events"])


async def test_a_rejoin_after_a_synced_leave_sends_the_members_of_the_gap(server: SharedServer):
    """As above, with a sync between leave and rejoin (the room came in `rooms.leave`)."""
    room_id, (alice, bob) = await room_with_members(server, 2)
    await alice.set_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    await sync(alice)
    await alice.leave(room_id)
    after_leave = await sync(alice)
    carol = await register(server)
    await carol.join(room_id)
    await bob.send(room_id, "hidden")
    await alice.join(room_id)
    room = (await sync(alice, since=after_leave["next_batch"]))["rooms"]["join"][room_id]
    seen = members_in(room["state"]["events"]) | members_in(room["timeline"]["events"])
    assert seen.get(carol.user_id) == "join", room


# ---- rooms.leave


async def test_leaving_a_synced_room_sends_the_leave_not_the_whole_state_again(
    server: SharedServer,
):
    """sync.yaml `rooms.leave`: like a joined room's incremental update, up to the leave."""
    room_id, (alice, bob) = await room_with_members(server, 2, name="Old news")
    start = await sync(alice)
    await bob.send(room_id, "bye")
    await alice.leave(room_id)
    left = (await sync(alice, since=start["next_batch"]))["rooms"]["leave"][room_id]
    assert bodies(left["timeline"]["events"]) == ["bye"]
    assert members_in(left["timeline"]["events"]) == {alice.user_id: "leave"}
    assert left["timeline"]["limited"] is False
    assert left["state"]["events"] == []


async def test_joining_and_leaving_in_one_batch_sends_the_rooms_state(server: SharedServer):
    """sync.yaml `rooms.leave.state`: a room the client never saw arrives with its state."""
    room_id, (bob,) = await room_with_members(server, 1, name="Brief visit")
    for number in range(12):
        await bob.send(room_id, f"chatter {number}")
    alice = await register(server)
    start = await sync(alice)
    await alice.join(room_id)
    await alice.leave(room_id)
    left = (await sync(alice, since=start["next_batch"]))["rooms"]["leave"][room_id]
    everything = left["state"]["events"] + left["timeline"]["events"]
    assert state_of(everything, "m.room.name")["content"] == {"name": "Brief visit"}
    assert state_of(everything, "m.room.create") is not None
    assert members_in(left["timeline"]["events"])[alice.user_id] == "leave"


async def test_a_stay_with_no_matching_events_still_sends_the_state_and_the_leave(
    server: SharedServer,
):
    """As above, with a timeline filter that leaves nothing of the stay in the timeline."""
    room_id, _ = await room_with_members(server, 1, name="Nothing said")
    alice = await register(server)
    start = await sync(alice, filter=MESSAGES_ONLY)
    await alice.join(room_id)
    await alice.leave(room_id)
    left = (await sync(alice, since=start["next_batch"], filter=MESSAGES_ONLY))["rooms"]["leave"]
    state = left[room_id]["state"]["events"]
    assert state_of(state, "m.room.name")["content"] == {"name": "Nothing said"}
    assert final_membership(left[room_id], alice.user_id)["content"]["membership"] == "leave"


async def test_a_kicked_user_sees_their_leave_event_sent_by_the_kicker(server: SharedServer):
    """sync.yaml `rooms.leave`: the room's timeline ends with the kick, `sender` the kicker."""
    room_id, (bob, alice) = await room_with_members(server, 2)
    for number in range(15):
        await bob.send(room_id, f"chatter {number}")
    start = await sync(alice, filter={"room": {"timeline": {"limit": 3}}})
    await bob.send(room_id, "you are out")
    ok(await bob.membership_action(room_id, "kick", alice, reason="testing"))
    for number in range(5):
        await bob.send(room_id, f"after the kick {number}")
    response = await sync(
        alice, since=start["next_batch"], filter={"room": {"timeline": {"limit": 3}}}
    )
    left = response["rooms"]["leave"][room_id]
    last = left["timeline"]["events"][-1]
    assert last["type"] == "m.room.member" and last["state_key"] == alice.user_id
    assert last["sender"] == bob.user_id
    assert last["content"]["membership"] == "leave"
    assert last["content"]["reason"] == "testing"
    assert "after the kick 0" not in bodies(left["timeline"]["events"])


async def test_an_initial_sync_with_include_leave_sends_a_kick_with_the_rooms_state(
    server: SharedServer,
):
    """Filtering: `include_leave` brings left rooms into an initial sync, state included."""
    room_id, (bob, alice) = await room_with_members(server, 2, name="Kicked out")
    ok(await bob.membership_action(room_id, "kick", alice))
    response = await sync(alice, filter={"room": {"include_leave": True}})
    left = response["rooms"]["leave"][room_id]
    everything = left["state"]["events"] + left["timeline"]["events"]
    assert state_of(everything, "m.room.name")["content"] == {"name": "Kicked out"}
    mine = final_membership(left, alice.user_id)
    assert mine["content"]["membership"] == "leave" and mine["sender"] == bob.user_id


async def test_a_kick_filtered_out_of_the_timeline_is_in_the_left_rooms_state(
    server: SharedServer,
):
    """sync.yaml `rooms.leave`: with only messages in the timeline, the kick is in `state`."""
    room_id, (bob, alice) = await room_with_members(server, 2)
    start = await sync(alice, filter=MESSAGES_ONLY)
    await bob.send(room_id, "you are out")
    ok(await bob.membership_action(room_id, "kick", alice))
    left = (await sync(alice, since=start["next_batch"], filter=MESSAGES_ONLY))["rooms"]["leave"]
    assert bodies(left[room_id]["timeline"]["events"]) == ["you are out"]
    mine = final_membership(left[room_id], alice.user_id)
    assert mine["content"]["membership"] == "leave" and mine["sender"] == bob.user_id


# ---- presence


async def test_a_new_room_mate_s_presence_arrives_with_the_room(server: SharedServer):
    """Presence: a user sees the presence of those they share a room with, from the start.

    Carol set her presence long before she and alice shared a room; the
    incremental sync that brings their shared room must carry it.
    """
    alice, carol = await register(server), await register(server)
    ok(
        await carol.put(
            f"/presence/{path_part(carol.user_id)}/status",
            {"presence": "online", "status_msg": "around"},
        )
    )
    start = await sync(alice)
    room_id = await carol.create_room(preset="public_chat")
    await alice.join(room_id)
    response = await sync(alice, since=start["next_batch"])
    assert room_id in response["rooms"]["join"]
    presence = {e["sender"]: e["content"] for e in response["presence"]["events"]}
    assert presence.get(carol.user_id, {}).get("status_msg") == "around", response["presence"]


async def test_someone_who_joins_a_room_of_yours_brings_their_presence(server: SharedServer):
    """Presence, as above, when the new room-mate joins a room the user is already in."""
    room_id, (alice,) = await room_with_members(server, 1)
    carol = await register(server)
    ok(
        await carol.put(
            f"/presence/{path_part(carol.user_id)}/status",
            {"presence": "unavailable", "status_msg": "busy"},
        )
    )
    start = await sync(alice)
    await carol.join(room_id)
    response = await sync(alice, since=start["next_batch"])
    presence = {e["sender"]: e["content"] for e in response["presence"]["events"]}
    assert presence.get(carol.user_id, {}).get("presence") == "unavailable", response["presence"]


# ---- timeline.limited


async def test_limited_says_only_whether_the_limit_left_events_out(server: SharedServer):
    """sync.yaml `limited`: "True if the number of events returned was limited by the
    `limit` on the filter" — not when the filter's types removed events."""
    room_id, (alice,) = await room_with_members(server, 1)
    await alice.send(room_id, "one")
    await alice.send(room_id, "two")
    messages_only = {"room": {"timeline": {"types": ["m.room.message"], "limit": 5}}}
    initial = (await sync(alice, filter=messages_only))["rooms"]["join"][room_id]
    assert bodies(initial["timeline"]["events"]) == ["one", "two"]
    assert initial["timeline"]["limited"] is False
    start = await sync(alice)
    await alice.set_state(room_id, "m.room.topic", {"topic": "filtered out"})
    await alice.send(room_id, "three")
    later = await sync(alice, since=start["next_batch"], filter=messages_only)
    assert bodies(later["rooms"]["join"][room_id]["timeline"]["events"]) == ["three"]
    assert later["rooms"]["join"][room_id]["timeline"]["limited"] is False
    not_senders = {"room": {"timeline": {"not_senders": [alice.user_id], "limit": 5}}}
    by_nobody = (await sync(alice, filter=not_senders))["rooms"]["join"][room_id]
    assert by_nobody["timeline"]["events"] == []
    assert by_nobody["timeline"]["limited"] is False
    cut = (await sync(alice, filter={"room": {"timeline": {"limit": 2}}}))["rooms"]["join"]
    assert cut[room_id]["timeline"]["limited"] is True


# ---- ephemeral


async def test_an_initial_sync_has_no_empty_typing_event(server: SharedServer):
    """Typing Notifications: `m.typing` says who types; nobody typing, nothing to say."""
    room_id, (alice, bob) = await room_with_members(server, 2)
    room = (await sync(alice))["rooms"]["join"][room_id]
    assert [e for e in room["ephemeral"]["events"] if e["type"] == "m.typing"] == []
    ok(
        await bob.put(
            f"/rooms/{path_part(room_id)}/typing/{path_part(bob.user_id)}",
            {"typing": True, "timeout": 30000},
        )
    )
    room = (await sync(alice))["rooms"]["join"][room_id]
    typing = [e for e in room["ephemeral"]["events"] if e["type"] == "m.typing"]
    assert typing == [{"type": "m.typing", "content": {"user_ids": [bob.user_id]}}]


# ---- /context and /messages


async def test_context_with_lazy_loading_sends_only_the_members_it_needs(server: SharedServer):
    """event_context.yaml `filter`, "Lazy-loading room members": `state` holds the
    members of the returned events' senders, not every member."""
    room_id, users = await room_with_members(server, 5)
    alice, bob = users[0], users[1]
    await alice.send(room_id, "before")
    middle = await bob.send(room_id, "middle")
    await bob.send(room_id, "after")
    lazy = json.dumps({"lazy_load_members": True})
    found = ok(
        await alice.get(
            f"/rooms/{path_part(room_id)}/context/{path_part(middle)}", limit=2, filter=lazy
        )
    )
    senders = {
        e["sender"] for e in [found["event"], *found["events_before"], *found["events_after"]]
    }
    assert set(members_in(found["state"])) == senders
    assert state_of(found["state"], "m.room.create") is not None
    everyone = ok(
        await alice.get(f"/rooms/{path_part(room_id)}/context/{path_part(middle)}", limit=2)
    )
    assert set(members_in(everyone["state"])) == {user.user_id for user in users}


async def test_messages_forward_gives_an_end_token_to_continue_from(server: SharedServer):
    """message_pagination.yaml `end`: with events returned, `end` lets the client go on;
    going forward, new events may arrive later, so the token comes with every page."""
    room_id, (alice,) = await room_with_members(server, 1)
    first = ok(await alice.messages(room_id, dir="b", limit=1))
    await alice.send(room_id, "one")
    await alice.send(room_id, "two")
    page = ok(await alice.messages(room_id, dir="f", limit=10, **{"from": first["start"]}))
    assert bodies(page["chunk"]) == ["one", "two"]
    assert "end" in page, page
    await alice.send(room_id, "three")
    following = ok(await alice.messages(room_id, dir="f", limit=10, **{"from": page["end"]}))
    assert bodies(following["chunk"]) == ["three"]
