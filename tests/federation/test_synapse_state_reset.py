"""A partition between our server and Synapse, conflicting state on both sides, a reconnect.

Spec: `content/server-server-api.md` § Room State Resolution,
`content/rooms/fragments/v2-state-res.md` and `content/rooms/v12.md` § State
resolution. The same scenario as `test_state_reset.py`, with Synapse as the
other side: Synapse is stopped while our server changes the room, our
server is stopped while Synapse (restarted) changes it; when both are up,
Synapse's catch-up sends its newest event, ours fetches the rest with
`/get_missing_events`, our outbox sends our branch, and both resolve the
fork. Both must hold the same current state, event for event.

- our branch: alice (ours, the creator) sets power levels (a user at 50) and
  kicks dave (Synapse's);
- Synapse's branch: carol (Synapse's, power 100) sets a topic, sets power
  levels (erin at 50) and invites erin (Synapse's).
The two power-levels events cite the same power levels and their senders
have the same power: resolution orders them by `origin_server_ts`, so
Synapse's, sent later, stays on both sides. The second test: what Synapse's
side did with a power ours took away meanwhile is undone on both; the third:
power levels sent by a user our side demoted fail resolution on both.

This module's Synapse is the test's own (it is stopped), with its backoff
cut short (`FAST_SYNAPSE_RETRIES`).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.federation import FederatingServer, restart, start_federating
from tests.support.matrix import ok, path_part
from tests.support.remote_membership import eventually
from tests.support.synapse import running_synapse
from tests.support.synapse_rooms import Account, has_bodies, our_errors, peers, shared_room

FAST_SYNAPSE_RETRIES = {
    "federation": {"destination_min_retry_interval": "2s", "destination_max_retry_interval": "5s"}
}


async def _synapse_state(account: Account, room_id: str) -> dict[tuple[str, str], str]:
    events = ok(await account.request("GET", f"/rooms/{path_part(room_id)}/state"))
    return {(e["type"], e["state_key"]): e["event_id"] for e in events}


def _our_state(ours: FederatingServer, room_id: str) -> dict[tuple[str, str], str]:
    return ours.server.services.rooms.state.current_state_ids(room_id)


def _content(ours: FederatingServer, room_id: str, event_type: str, key: str = "") -> Any:
    event = ours.server.services.rooms.timeline.state_event(room_id, event_type, key)
    return None if event is None else event["content"]


async def _set_power(account: Account, room_id: str, **levels: int) -> str:
    content = ok(await account.state(room_id, "m.room.power_levels"))
    content["users"] = {**content.get("users", {}), **levels}
    return ok(await account.put_state(room_id, "m.room.power_levels", content))["event_id"]


def _on(ours: FederatingServer, account: Account) -> Account:
    return Account(
        account.user_id, account.device_id, account.access_token, ours.client, account.server_name
    )


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_our_server_and_synapse_resolve_a_partitioned_fork_to_the_same_state(
    nursery, ca, tmp_path, caplog, room_version
):
    with running_synapse(ca, tmp_path / "synapse", **FAST_SYNAPSE_RETRIES) as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            alice, bystander = await both.our_account(), await both.our_account()
            carol, dave = await both.synapse_account(), await both.synapse_account()
            erin = await both.synapse_account()
            room_id, _, carol_sync = await shared_room(alice, carol, room_version=room_version)
            ok(await dave.join(room_id, server_name=ours.name))
            ok(await bystander.join(room_id))
            await _set_power(alice, room_id, **{carol.user_id: 100})

            async def agreed() -> bool:
                return _our_state(ours, room_id) == await _synapse_state(carol, room_id)

            await eventually(agreed, timeout=60)
            before = _our_state(ours, room_id)

            await trio.to_thread.run_sync(synapse.stop)  # our branch
            await _set_power(alice, room_id, **{bystander.user_id: 50})
            kick = await alice.room_action(room_id, "kick", {"user_id": dave.user_id})
            ok(kick)
            await ours.stop()
            await synapse.restart_async()  # Synapse's branch, with ours down
            carol = both.reconnected(carol)
            ok(await carol.put_state(room_id, "m.room.topic", {"topic": "set on Synapse"}))
            synapse_power_levels = await _set_power(carol, room_id, **{erin.user_id: 50})
            ok(await carol.room_action(room_id, "invite", {"user_id": erin.user_id}))
            ours = await restart(nursery, ours)
            alice = _on(ours, alice)

            await alice.send(room_id, "ours is back")  # ours calls Synapse: backoffs end

            async def merged() -> bool:
                theirs = await _synapse_state(carol, room_id)
                return (
                    theirs.get(("m.room.member", dave.user_id)) is not None
                    and _content(ours, room_id, "m.room.topic") == {"topic": "set on Synapse"}
                    and _our_state(ours, room_id) == theirs
                    and ok(await carol.state(room_id, "m.room.member", dave.user_id))["membership"]
                    == "leave"
                )

            await eventually(merged, timeout=120)

            resolved = _our_state(ours, room_id)
            assert resolved.keys() >= before.keys()
            assert resolved[("m.room.power_levels", "")] == synapse_power_levels
            levels = _content(ours, room_id, "m.room.power_levels")["users"]
            assert levels[carol.user_id] == 100 and levels[erin.user_id] == 50
            assert levels.get(alice.user_id, 100) == 100  # v12: the creator is not listed
            memberships = {
                user.user_id: _content(ours, room_id, "m.room.member", user.user_id)["membership"]
                for user in (alice, bystander, carol, dave, erin)
            }
            assert memberships == {
                alice.user_id: "join",
                bystander.user_id: "join",
                carol.user_id: "join",
                dave.user_id: "leave",
                erin.user_id: "invite",
            }
            await carol.send(room_id, "after the partition, from Synapse")
            alice_sync = alice.sync()
            await alice_sync.until(has_bodies(room_id, "after the partition, from Synapse"))
            await alice.send(room_id, "after the partition, from ours")
            carol_sync.account = carol
            await carol_sync.until(has_bodies(room_id, "after the partition, from ours"))
            await eventually(agreed, timeout=60)
        assert not our_errors(caplog.records), our_errors(caplog.records)


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_what_synapse_did_with_a_power_our_side_took_away_is_undone_on_both(
    nursery, ca, tmp_path, caplog, room_version
):
    """Power events first: while partitioned, alice (ours, 100) demotes carol (Synapse's,
    50) to 0 and makes the room invite-only; on Synapse carol sets the topic and dave
    joins the public room. Resolved, carol's topic and dave's join fail against the
    demotion and the join rule, on both sides."""
    with running_synapse(ca, tmp_path / "synapse", **FAST_SYNAPSE_RETRIES) as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            alice = await both.our_account()
            carol, dave = await both.synapse_account(), await both.synapse_account()
            room_id, _, _ = await shared_room(
                alice, carol, room_version=room_version, topic="from before"
            )
            await _set_power(alice, room_id, **{carol.user_id: 50})

            async def agreed() -> bool:
                return _our_state(ours, room_id) == await _synapse_state(carol, room_id)

            await eventually(agreed, timeout=60)

            await trio.to_thread.run_sync(synapse.stop)  # our branch
            await _set_power(alice, room_id, **{carol.user_id: 0})
            ok(await alice.put_state(room_id, "m.room.join_rules", {"join_rule": "invite"}))
            await ours.stop()
            await synapse.restart_async()  # Synapse's branch
            carol, dave = both.reconnected(carol), both.reconnected(dave)
            ok(await carol.put_state(room_id, "m.room.topic", {"topic": "carol's, partitioned"}))
            ok(await dave.join(room_id, server_name=synapse.server_name))
            ours = await restart(nursery, ours)
            alice = _on(ours, alice)

            await alice.send(room_id, "ours is back")

            async def merged() -> bool:
                rules = ok(await carol.state(room_id, "m.room.join_rules"))
                return rules["join_rule"] == "invite" and await agreed()

            await eventually(merged, timeout=120)

            assert _content(ours, room_id, "m.room.topic")["topic"] == "from before"
            assert ok(await carol.state(room_id, "m.room.topic"))["topic"] == "from before"
            assert _content(ours, room_id, "m.room.member", dave.user_id) is None
            levels = _content(ours, room_id, "m.room.power_levels")["users"]
            assert levels[carol.user_id] == 0
        assert not our_errors(caplog.records), our_errors(caplog.records)


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_power_levels_synapse_sent_for_a_user_we_demoted_are_rejected_on_both(
    nursery, ca, tmp_path, caplog, room_version
):
    """The iterative auth checks of the power events: our branch demotes carol (Synapse's,
    90) to 50; Synapse's branch, later, has carol set a topic (50 is enough) and power
    levels listing erin (90 needed). Both sides keep our power levels and her topic."""
    with running_synapse(ca, tmp_path / "synapse", **FAST_SYNAPSE_RETRIES) as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            alice = await both.our_account()
            carol, erin = await both.synapse_account(), await both.synapse_account()
            room_id, _, _ = await shared_room(alice, carol, room_version=room_version)
            levels = ok(await alice.state(room_id, "m.room.power_levels"))
            levels["users"][carol.user_id] = 90
            levels["events"]["m.room.power_levels"] = 90
            ok(await alice.put_state(room_id, "m.room.power_levels", levels))

            async def agreed() -> bool:
                return _our_state(ours, room_id) == await _synapse_state(carol, room_id)

            await eventually(agreed, timeout=60)

            await trio.to_thread.run_sync(synapse.stop)  # our branch
            ours_last = await _set_power(alice, room_id, **{carol.user_id: 50})
            await ours.stop()
            await synapse.restart_async()  # Synapse's branch
            carol = both.reconnected(carol)
            topic = ok(await carol.put_state(room_id, "m.room.topic", {"topic": "carol's"}))
            await _set_power(carol, room_id, **{erin.user_id: 50})
            ours = await restart(nursery, ours)
            alice = _on(ours, alice)

            await alice.send(room_id, "ours is back")

            async def merged() -> bool:
                theirs = await _synapse_state(carol, room_id)
                return (
                    theirs.get(("m.room.power_levels", "")) == ours_last
                    and theirs.get(("m.room.topic", "")) == topic["event_id"]
                    and await agreed()
                )

            await eventually(merged, timeout=120)
            levels = _content(ours, room_id, "m.room.power_levels")["users"]
            assert levels[carol.user_id] == 50 and erin.user_id not in levels
        assert not our_errors(caplog.records), our_errors(caplog.records)
