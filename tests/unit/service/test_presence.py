"""Presence: online while syncing, unavailable when idle, offline when gone; who hears of it.

Spec: `content/client-server-api/modules/presence.md` ("Last active ago",
"Idle timeout"), `data/api/client-server/presence.yaml`, event `m.presence`.
Time moves through a `FakeClock`; nothing here sleeps.
"""

from __future__ import annotations

import pytest
import trio

from matrix_conduit.errors import MatrixError
from matrix_conduit.service.presence import IDLE_AFTER_MS, OFFLINE_AFTER_MS, Presence
from tests.support.service_parts import FakeClock, ServiceParts, open_service_parts

ROOM = "!room:localhost"
ALICE = "@alice:localhost"
BOB = "@bob:localhost"
STRANGER = "@stranger:localhost"
MINUTE_MS = 60_000


@pytest.fixture
def parts(tmp_path) -> ServiceParts:
    parts = open_service_parts(tmp_path / "db")
    parts.join(ALICE, ROOM)
    parts.join(BOB, ROOM)
    parts.join(STRANGER, "!elsewhere:localhost")
    yield parts
    parts.db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def presence(parts: ServiceParts, clock: FakeClock) -> Presence:
    return Presence(parts.db, parts.globals, parts.notifier, parts.state_cache, clock=clock)


def state(presence: Presence, user_id: str) -> str:
    return presence.get(user_id)["presence"]


def test_a_user_who_never_had_presence_is_offline(presence: Presence):
    assert presence.get(ALICE) == {"presence": "offline", "currently_active": False}


def test_a_sync_makes_a_user_online_and_currently_active(presence: Presence, clock: FakeClock):
    presence.ping(ALICE)
    clock.advance(1_234)
    assert presence.get(ALICE) == {
        "presence": "online",
        "currently_active": True,
        "last_active_ago": 1_234,
    }


def test_an_online_user_idle_for_five_minutes_becomes_unavailable(
    presence: Presence, clock: FakeClock
):
    presence.ping(ALICE)
    clock.advance(IDLE_AFTER_MS - 1)
    presence.apply_timeouts()
    assert state(presence, ALICE) == "online"

    clock.advance(1)
    presence.apply_timeouts()
    assert presence.get(ALICE)["presence"] == "unavailable"
    assert presence.get(ALICE)["currently_active"] is False
    assert presence.get(ALICE)["last_active_ago"] == IDLE_AFTER_MS


def test_a_user_not_seen_for_thirty_minutes_goes_offline(presence: Presence, clock: FakeClock):
    presence.ping(ALICE)
    clock.advance(OFFLINE_AFTER_MS - 1)
    presence.apply_timeouts()
    assert state(presence, ALICE) == "unavailable"

    clock.advance(1)
    presence.apply_timeouts()
    assert state(presence, ALICE) == "offline"


def test_syncing_keeps_a_user_online(presence: Presence, clock: FakeClock):
    for _ in range(10):
        presence.ping(ALICE)
        clock.advance(4 * MINUTE_MS)
        presence.apply_timeouts()
    assert state(presence, ALICE) == "online"


def test_a_sync_brings_an_idle_user_back_online(presence: Presence, clock: FakeClock):
    presence.ping(ALICE)
    clock.advance(OFFLINE_AFTER_MS)
    presence.apply_timeouts()
    presence.ping(ALICE)
    assert state(presence, ALICE) == "online"


@pytest.mark.parametrize("chosen", ["unavailable", "offline"])
def test_a_user_who_chose_a_state_keeps_it_while_syncing_until_they_choose_online(
    presence: Presence, chosen: str
):
    presence.set_presence(ALICE, chosen)
    presence.ping(ALICE)
    assert state(presence, ALICE) == chosen

    presence.set_presence(ALICE, "online")
    assert state(presence, ALICE) == "online"


def test_syncs_keep_a_user_who_chose_unavailable_from_going_offline(
    presence: Presence, clock: FakeClock
):
    presence.set_presence(ALICE, "unavailable")
    for _ in range(5):
        clock.advance(10 * MINUTE_MS)
        presence.ping(ALICE)
        presence.apply_timeouts()
    assert state(presence, ALICE) == "unavailable"


def test_setting_online_counts_as_activity_and_other_states_do_not(
    presence: Presence, clock: FakeClock
):
    presence.set_presence(ALICE, "offline")
    assert "last_active_ago" not in presence.get(ALICE)

    presence.set_presence(ALICE, "online")
    clock.advance(500)
    presence.set_presence(ALICE, "unavailable")
    clock.advance(500)
    assert presence.get(ALICE)["last_active_ago"] == 1_000


def test_a_status_message_stays_until_removed_with_an_empty_one(presence: Presence):
    presence.set_presence(ALICE, "online", "in a meeting")
    presence.set_presence(ALICE, "unavailable")
    presence.ping(ALICE)
    assert presence.get(ALICE)["status_msg"] == "in a meeting"

    presence.set_presence(ALICE, "online", "")
    assert "status_msg" not in presence.get(ALICE)


def test_an_unknown_presence_state_is_refused(presence: Presence):
    with pytest.raises(MatrixError) as raised:
        presence.set_presence(ALICE, "busy")
    assert (raised.value.status, raised.value.errcode) == (400, "M_INVALID_PARAM")


def test_changes_since_lists_the_given_users_changed_after_the_position(
    presence: Presence, parts: ServiceParts
):
    presence.ping(ALICE)
    after_alice = parts.globals.current_count()
    presence.set_presence(BOB, "online", "here")
    presence.ping(STRANGER)

    everything = presence.changes_since([ALICE, BOB], 0)
    assert [event["sender"] for event in everything] == [ALICE, BOB]
    assert everything[1] == {
        "type": "m.presence",
        "sender": BOB,
        "content": presence.get(BOB),
    }
    assert [event["sender"] for event in presence.changes_since([ALICE, BOB], after_alice)] == [BOB]


def test_a_sync_that_changes_nothing_visible_is_no_change(
    presence: Presence, parts: ServiceParts, clock: FakeClock
):
    presence.ping(ALICE)
    position = parts.globals.current_count()
    clock.advance(MINUTE_MS)
    presence.ping(ALICE)
    assert presence.changes_since([ALICE], position) == []


def test_a_change_wakes_the_user_and_those_who_share_a_room_only(
    presence: Presence, parts: ServiceParts
):
    listeners = {user_id: parts.notifier.listener(user_id) for user_id in (ALICE, BOB, STRANGER)}
    presence.set_presence(ALICE, "online", "hello")
    assert {user_id for user_id, event in listeners.items() if event.is_set()} == {ALICE, BOB}


def test_presence_and_status_messages_survive_a_restart(tmp_path, clock: FakeClock):
    parts = open_service_parts(tmp_path / "db")
    before = Presence(parts.db, parts.globals, parts.notifier, parts.state_cache, clock=clock)
    before.set_presence(ALICE, "unavailable", "gone fishing")
    parts.db.close()

    parts = open_service_parts(tmp_path / "db")
    after = Presence(parts.db, parts.globals, parts.notifier, parts.state_cache, clock=clock)
    after.ping(ALICE)  # the choice of unavailable is remembered too
    assert after.get(ALICE)["presence"] == "unavailable"
    assert after.get(ALICE)["status_msg"] == "gone fishing"
    parts.db.close()


async def test_the_background_loop_applies_the_timeouts(
    parts: ServiceParts, clock: FakeClock, nursery: trio.Nursery
):
    presence = Presence(
        parts.db,
        parts.globals,
        parts.notifier,
        parts.state_cache,
        clock=clock,
        check_interval_seconds=0.01,
    )
    await nursery.start(presence.run)
    presence.ping(ALICE)
    bob_listener = parts.notifier.listener(BOB)
    clock.advance(IDLE_AFTER_MS)

    with trio.fail_after(10):  # a hang guard, not a timing assertion
        await bob_listener.wait()

    assert state(presence, ALICE) == "unavailable"
