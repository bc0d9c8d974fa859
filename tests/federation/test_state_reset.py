"""A partition between two of our servers, conflicting state on both sides, then a reconnect.

Spec: `content/server-server-api.md` § Room State Resolution (the current
state of a room whose forward extremities diverge is the resolution of the
states after them), `content/rooms/fragments/v2-state-res.md` (versions
2–11) and `content/rooms/v12.md` § State resolution (v2.1: the conflicted
state subgraph, resolution from an empty state). State resets are the
field's best-known federation bug (`../shared/notes/federation-lessons.md`,
"State and extremities"): after a partition heals, both servers must hold
the same resolved state, and nobody's power or membership may go back to
what it was before the partition.

The partition is real: B is stopped while A changes the room, then A is
stopped while B (restarted) changes it; each change waits in its server's
outbox. When both are up again and in contact, the outboxes deliver, and
each server resolves the fork over the same two branches.

The first test: both admins (alice on A, bob on B) are at power 100
throughout, so neither branch's events fail against the other's state
(nothing is soft-failed):
- A's branch: alice sets power levels (carol 50) and kicks dave (of B);
- B's branch: bob sets a topic, sets power levels (erin 50) and invites
  erin (of B).
Both power-levels events cite the same power levels and their senders
have the same power, so state resolution orders them by
`origin_server_ts`: B's, sent later, is applied last and stays.

The second: what one side did with a power the other side took away
meanwhile (a topic by a demoted user, a join after the room became
invite-only) is undone on both. The third: power levels sent by a user the
other side demoted fail the iterative auth checks of resolution.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.support.federation import ECHO_PATH, FederatingServer, restart, start_federating
from tests.support.matrix import User, ok, register
from tests.support.remote_membership import eventually, join


def _state(server: FederatingServer, room_id: str) -> dict[tuple[str, str], str]:
    return server.server.services.rooms.state.current_state_ids(room_id)


def _content(server: FederatingServer, room_id: str, event_type: str, key: str = "") -> Any:
    event = server.server.services.rooms.timeline.state_event(room_id, event_type, key)
    return None if event is None else event["content"]


def _on(server: FederatingServer, user: User) -> User:
    """`user` talking to `server` as it runs now (after a restart)."""
    return dataclasses.replace(user, http=server.client)


async def _power_levels(user: User, room_id: str) -> dict[str, Any]:
    return ok(await user.get_state(room_id, "m.room.power_levels"))


async def _set_power(user: User, room_id: str, **levels: int) -> str:
    content = await _power_levels(user, room_id)
    content["users"] = {**content["users"], **levels}
    return await user.set_state(room_id, "m.room.power_levels", content)


async def _reconnect(a: FederatingServer, b: FederatingServer) -> None:
    """Each server contacts the other: both lift their backoff and send their queues."""
    await a.federation.client.request(b.name, "GET", ECHO_PATH, ignore_backoff=True)
    await b.federation.client.request(a.name, "GET", ECHO_PATH, ignore_backoff=True)


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_both_servers_resolve_a_partitioned_fork_to_the_same_state(
    nursery, ca, tmp_path, room_version
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, carol = await register(a.server, "alice"), await register(a.server, "carol")
    bob, dave = await register(b.server, "bob"), await register(b.server, "dave")
    erin = await register(b.server, "erin")
    room_id = await alice.create_room(preset="public_chat", room_version=room_version)
    ok(await join(bob, room_id, via=a.name))
    ok(await join(dave, room_id, via=a.name))
    await carol.join(room_id)
    await _set_power(alice, room_id, **{bob.user_id: 100})
    await eventually(
        lambda: _async(
            _content(b, room_id, "m.room.power_levels")["users"].get(bob.user_id) == 100
            and _state(a, room_id) == _state(b, room_id)
        )
    )
    before = _state(a, room_id)

    await b.stop()  # the partition: A's branch
    await _set_power(alice, room_id, **{carol.user_id: 50})
    kick = await alice.membership_action(room_id, "kick", dave, reason="partitioned")
    ok(kick)
    await a.stop()
    b = await restart(nursery, b)  # B's branch, with A down
    bob = _on(b, bob)
    await bob.set_state(room_id, "m.room.topic", {"topic": "set on B"})
    b_power_levels = await _set_power(bob, room_id, **{erin.user_id: 50})
    await bob.invite(room_id, erin)
    a = await restart(nursery, a)
    alice = _on(a, alice)

    await _reconnect(a, b)
    await eventually(
        lambda: _async(
            _content(a, room_id, "m.room.topic") == {"topic": "set on B"}
            and _content(b, room_id, "m.room.member", dave.user_id)["membership"] == "leave"
            and _state(a, room_id) == _state(b, room_id)
        ),
        timeout=60,
    )

    resolved = _state(a, room_id)
    assert resolved.keys() >= before.keys()
    assert resolved[("m.room.power_levels", "")] == b_power_levels  # the later ones stay
    levels = _content(a, room_id, "m.room.power_levels")["users"]
    assert levels[bob.user_id] == 100 and levels[erin.user_id] == 50
    assert levels.get(alice.user_id, 100) == 100  # v12: the creator is not listed, and infinite
    assert carol.user_id not in levels
    memberships = {
        user.user_id: _content(a, room_id, "m.room.member", user.user_id)["membership"]
        for user in (alice, bob, carol, dave, erin)
    }
    assert memberships == {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "join",
        dave.user_id: "leave",
        erin.user_id: "invite",
    }
    # Both still write to the room, and each sees what the other writes.
    from_a = await alice.send(room_id, "after the partition, from A")
    from_b = await bob.send(room_id, "after the partition, from B")
    await eventually(lambda: _in_timeline(bob, room_id, from_a))
    await eventually(lambda: _in_timeline(alice, room_id, from_b))
    assert _state(a, room_id) == _state(b, room_id)


async def _async(value: Any) -> Any:
    return value


async def _in_timeline(user: User, room_id: str, event_id: str) -> bool:
    return event_id in [event["event_id"] for event in await user.timeline(room_id, limit=20)]


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_what_one_side_did_with_power_the_other_side_took_away_is_undone_on_both(
    nursery, ca, tmp_path, room_version
):
    """§ Room State Resolution, power events first: while partitioned, alice (A, 100)
    demotes bob (B, 50) to 0 and makes the room invite-only, and on B bob sets the topic
    (state_default 50) and dave (B) joins the public room. Resolved, the demotion and the
    join rule come first, so bob's topic and dave's join fail against them: on both
    servers the topic is the one from before and dave is not in the room (A soft-fails
    them on arrival; B drops them from its state when it resolves)."""
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice = await register(a.server, "alice")
    bob, dave = await register(b.server, "bob"), await register(b.server, "dave")
    room_id = await alice.create_room(
        preset="public_chat", room_version=room_version, topic="from before"
    )
    ok(await join(bob, room_id, via=a.name))
    await _set_power(alice, room_id, **{bob.user_id: 50})
    await eventually(
        lambda: _async(
            _content(b, room_id, "m.room.power_levels")["users"].get(bob.user_id) == 50
            and _state(a, room_id) == _state(b, room_id)
        )
    )

    await b.stop()  # A's branch
    await _set_power(alice, room_id, **{bob.user_id: 0})
    await alice.set_state(room_id, "m.room.join_rules", {"join_rule": "invite"})
    await a.stop()
    b = await restart(nursery, b)  # B's branch
    bob, dave = _on(b, bob), _on(b, dave)
    await bob.set_state(room_id, "m.room.topic", {"topic": "bob's, while partitioned"})
    await dave.join(room_id)
    assert _content(b, room_id, "m.room.member", dave.user_id)["membership"] == "join"
    a = await restart(nursery, a)
    alice = _on(a, alice)

    await _reconnect(a, b)
    await eventually(
        lambda: _async(
            _content(b, room_id, "m.room.join_rules") == {"join_rule": "invite"}
            and _state(a, room_id) == _state(b, room_id)
        ),
        timeout=60,
    )

    for server in (a, b):
        assert _content(server, room_id, "m.room.topic")["topic"] == "from before"
        assert _content(server, room_id, "m.room.member", dave.user_id) is None
        assert not server.server.services.rooms.state_cache.is_joined(dave.user_id, room_id)
        levels = _content(server, room_id, "m.room.power_levels")["users"]
        assert levels[bob.user_id] == 0
    assert _content(a, room_id, "m.room.member", bob.user_id)["membership"] == "join"
    from_a = await alice.send(room_id, "after the partition, from A")
    await eventually(lambda: _in_timeline(bob, room_id, from_a))
    assert _state(a, room_id) == _state(b, room_id)


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_power_levels_sent_by_a_user_the_other_side_demoted_are_rejected_in_resolution(
    nursery, ca, tmp_path, room_version
):
    """§ Room State Resolution, the iterative auth checks of the power events: A's branch
    demotes bob (B, 90) to 50 and then lists carol at 50; B's branch, later, has bob
    set a topic (50 is enough) and power levels listing erin (90 needed). Ordered by the
    rules, bob's power levels come after his demotion and fail against it: both servers
    keep A's last power levels and bob's topic; A soft-fails bob's power levels."""
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    alice, carol = await register(a.server, "alice"), await register(a.server, "carol")
    bob, erin = await register(b.server, "bob"), await register(b.server, "erin")
    room_id = await alice.create_room(preset="public_chat", room_version=room_version)
    ok(await join(bob, room_id, via=a.name))
    levels = await _power_levels(alice, room_id)
    levels["users"][bob.user_id] = 90
    levels["events"]["m.room.power_levels"] = 90
    await alice.set_state(room_id, "m.room.power_levels", levels)
    await eventually(
        lambda: _async(
            _content(b, room_id, "m.room.power_levels")["users"].get(bob.user_id) == 90
            and _state(a, room_id) == _state(b, room_id)
        )
    )

    await b.stop()  # A's branch
    await _set_power(alice, room_id, **{bob.user_id: 50})
    a_power_levels = await _set_power(alice, room_id, **{carol.user_id: 50})
    await a.stop()
    b = await restart(nursery, b)  # B's branch
    bob = _on(b, bob)
    topic = await bob.set_state(room_id, "m.room.topic", {"topic": "bob's"})
    await _set_power(bob, room_id, **{erin.user_id: 50})
    a = await restart(nursery, a)

    await _reconnect(a, b)
    await eventually(
        lambda: _async(
            _state(b, room_id).get(("m.room.power_levels", "")) == a_power_levels
            and _state(a, room_id).get(("m.room.topic", "")) == topic
            and _state(a, room_id) == _state(b, room_id)
        ),
        timeout=60,
    )

    levels = _content(a, room_id, "m.room.power_levels")["users"]
    assert levels[bob.user_id] == 50 and levels[carol.user_id] == 50
    assert erin.user_id not in levels
