"""The key-change index: which users changed keys between two positions, and who is woken.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
"Tracking the device list for a user"; `data/api/client-server/keys.yaml`,
`GET /keys/changes` (changes between `from` and `to`).
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.devices import DeviceLogin, Devices
from matrix_conduit.service.key_changes import KeyChanges
from tests.support.service_parts import (
    ALICE,
    BOB,
    OUTSIDER,
    ServiceParts,
    alice_and_bob_in_a_room,
)


@pytest.fixture
def parts(tmp_path) -> ServiceParts:
    with alice_and_bob_in_a_room(tmp_path / "db") as parts:
        yield parts


@pytest.fixture
def devices(parts: ServiceParts) -> Devices:
    return Devices(parts.db, parts.globals)


@pytest.fixture
def key_changes(parts: ServiceParts, devices: Devices) -> KeyChanges:
    return KeyChanges(parts.db, parts.globals, devices, parts.state_cache, parts.notifier)


def change_keys(parts: ServiceParts, key_changes: KeyChanges, user_id: str) -> int:
    """Record a key change for `user_id`; returns the position it took."""
    with parts.db.batch() as batch:
        key_changes.record(batch, user_id)
    return parts.globals.current_count()


def test_a_change_is_reported_in_the_range_that_contains_it_only(parts, key_changes):
    before = parts.globals.current_count()
    position = change_keys(parts, key_changes, ALICE)
    assert key_changes.changed_users(before, position) == {ALICE}
    assert key_changes.changed_users(position, position + 10) == set()
    assert key_changes.changed_users(before - 1, before) == set()


def test_a_user_whose_latest_change_is_past_the_range_waits_for_the_next_range(parts, key_changes):
    start = parts.globals.current_count()
    first = change_keys(parts, key_changes, ALICE)
    second = change_keys(parts, key_changes, ALICE)
    assert key_changes.changed_users(start, first) == set()
    assert key_changes.changed_users(first, second) == {ALICE}


def test_device_list_changes_count_as_key_changes(parts, devices, key_changes):
    start = parts.globals.current_count()
    devices.log_in(BOB, DeviceLogin(device_id="PHONE"))
    assert key_changes.changed_users(start, parts.globals.current_count()) == {BOB}


def test_a_change_wakes_the_user_and_their_room_mates_once_written(parts, key_changes):
    woken = {user: parts.notifier.listener(user) for user in (ALICE, BOB, OUTSIDER)}
    with parts.db.batch() as batch:
        key_changes.record(batch, ALICE)
        assert not woken[BOB].is_set(), "nobody is woken before the batch is written"
    assert woken[ALICE].is_set() and woken[BOB].is_set()
    assert not woken[OUTSIDER].is_set()


def test_room_mates_are_everyone_joined_to_a_shared_room(parts, key_changes):
    assert key_changes.users_sharing_a_room(ALICE) == {ALICE, BOB}
    assert key_changes.users_sharing_a_room(OUTSIDER) == set()
