"""Restarts with a real Synapse: what our server queued for it while it was down arrives.

This module's Synapse is the test's own (`running_synapse` with the ordinary
`ca` fixture), since the test stops it. Spec: `content/server-server-api.md`
"Transactions"; issue 11 §6 (a durable per-destination queue, resumed after a
restart, catch-up of what a peer missed while it was down).
"""

from __future__ import annotations

import pytest
import trio

from tests.support.federation import restart, start_federating
from tests.support.matrix import ok
from tests.support.remote_membership import eventually
from tests.support.synapse import running_synapse
from tests.support.synapse_rooms import Account, has_bodies, our_errors, peers, shared_room

RETRY_POLLS = 80
"""Long polls (of 3 s at most each) to wait for a retry after a backoff of about a minute."""
FAST_SYNAPSE_RETRIES = {
    "federation": {"destination_min_retry_interval": "2s", "destination_max_retry_interval": "5s"}
}
"""Synapse's backoff after a failure (10 min by default) cut short, for the test that stops ours."""


async def test_messages_queued_for_a_stopped_synapse_reach_it_after_our_server_restarts(
    nursery, ca, tmp_path, caplog
):
    with running_synapse(ca, tmp_path / "synapse") as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            alice = await both.our_account()
            carol = await both.synapse_account()
            room_id, alice_sync, carol_sync = await shared_room(alice, carol)
            await alice.send(room_id, "before")
            await carol_sync.until(has_bodies(room_id, "before"))
            services = ours.server.services

            await trio.to_thread.run_sync(synapse.stop)
            queued = [f"queued {n}" for n in range(1, 4)]
            for text in queued:
                await alice.send(room_id, text)
            # The sender tried, failed, and kept them: they are in the durable outbox.
            await eventually(
                lambda: _async(services.federation.destinations.backoff(synapse.server_name))
            )
            assert services.outbox.has_items(synapse.server_name)
            await ours.stop()
            await synapse.restart_async()
            ours = await restart(nursery, ours)
            carol = carol_sync.account = both.reconnected(carol)

            # Carol speaks first: Synapse's transaction tells ours that it is back.
            await carol.send(room_id, "carol is back")
            alice = Account(
                alice.user_id,
                alice.device_id,
                alice.access_token,
                ours.client,
                alice.server_name,
            )
            alice_sync.account = alice
            await alice_sync.until(has_bodies(room_id, "carol is back"))
            await carol_sync.until(has_bodies(room_id, *queued))
            await alice.send(room_id, "after")
            await carol_sync.until(has_bodies(room_id, "after"))

            bodies = carol_sync.bodies(room_id)
            assert [b for b in bodies if b in ("before", *queued, "after")] == [
                "before",
                *queued,
                "after",
            ]
        assert not our_errors(caplog.records), our_errors(caplog.records)


@pytest.mark.slow  # a minute: the backoff after our first failure
async def test_messages_queued_for_synapse_go_after_a_restart_without_synapse_calling_first(
    nursery, ca, tmp_path, caplog
):
    """Our retry loop alone resumes the stored queue (after the backoff of the failure)."""
    with running_synapse(ca, tmp_path / "synapse") as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            alice = await both.our_account()
            carol = await both.synapse_account()
            room_id, _, carol_sync = await shared_room(alice, carol)
            services = ours.server.services

            await trio.to_thread.run_sync(synapse.stop)
            queued = [f"queued {n}" for n in range(1, 4)]
            for text in queued:
                await alice.send(room_id, text)
            await eventually(
                lambda: _async(services.federation.destinations.backoff(synapse.server_name))
            )
            await ours.stop()
            await synapse.restart_async()
            ours = await restart(nursery, ours)
            carol_sync.account = both.reconnected(carol)

            # Our first failure backs off 60 s, and the retry loop looks every 60 s.
            await carol_sync.until(has_bodies(room_id, *queued), polls=RETRY_POLLS)
            assert [b for b in carol_sync.bodies(room_id) if b in queued] == queued
        assert not our_errors(caplog.records), our_errors(caplog.records)


async def test_messages_synapse_sent_while_our_server_was_down_reach_our_user_after_it_restarts(
    nursery, ca, tmp_path, caplog
):
    """Synapse's catch-up (the room's newest event) and our /get_missing_events for the rest."""
    with running_synapse(ca, tmp_path / "synapse", **FAST_SYNAPSE_RETRIES) as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            alice = await both.our_account()
            carol = await both.synapse_account()
            room_id, _, alice_sync = await shared_room(carol, alice)
            await ours.stop()

            missed = [f"missed {n}" for n in range(1, 4)]
            for text in missed:
                await carol.send(room_id, text)
            ours = await restart(nursery, ours)
            alice = Account(
                alice.user_id, alice.device_id, alice.access_token, ours.client, alice.server_name
            )
            alice_sync.account = alice
            await alice.send(room_id, "alice is back")  # ours calls Synapse: its backoff ends

            await alice_sync.until(has_bodies(room_id, *missed), polls=RETRY_POLLS)
            assert [b for b in alice_sync.bodies(room_id) if b in missed] == missed
        assert not our_errors(caplog.records), our_errors(caplog.records)


async def _async(value):
    return value


async def test_our_user_rejects_an_invite_from_a_synapse_that_is_down_with_a_local_leave(
    nursery, ca, tmp_path, caplog
):
    """Issue 11 §5: rejecting needs `make_leave`/`send_leave` on the inviting server;
    when it cannot be reached the invite is still rejected, locally."""
    with running_synapse(ca, tmp_path / "synapse") as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            alice = await both.our_account()
            carol = await both.synapse_account()
            room_id = await carol.create_room(preset="private_chat")
            alice_sync = alice.sync()
            await alice_sync.once()
            ok(await carol.room_action(room_id, "invite", {"user_id": alice.user_id}))
            await alice_sync.until(lambda sync: sync.invites.get(room_id))
            await trio.to_thread.run_sync(synapse.stop)

            rejected = await alice.room_action(room_id, "leave")

            assert rejected.status_code == 200, rejected.text
            await alice_sync.until(lambda sync: room_id in sync.left)
            assert room_id not in ok(await alice.request("GET", "/sync"))["rooms"]["invite"]
        assert not our_errors(caplog.records), our_errors(caplog.records)
