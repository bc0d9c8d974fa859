"""Typing notices: who is listed, for how long, and the positions `/sync` compares.

Spec: `content/client-server-api/modules/typing_notifications.md` (the list
replaces the client's knowledge; notices time out), `data/api/client-server/typing.yaml`.
"""

from __future__ import annotations

import pytest
import trio

from matrix_conduit.errors import MatrixError
from matrix_conduit.service.typing import MAX_TIMEOUT_MS, Typing
from tests.support.service_parts import (
    ALICE,
    BOB,
    OUTSIDER,
    ROOM,
    FakeClock,
    ServiceParts,
    alice_and_bob_in_a_room,
)


@pytest.fixture
def parts(tmp_path) -> ServiceParts:
    with alice_and_bob_in_a_room(tmp_path / "db") as parts:
        yield parts


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def typing(parts: ServiceParts, clock: FakeClock) -> Typing:
    return Typing(parts.globals, parts.notifier, parts.state_cache, clock=clock)


def test_a_user_is_listed_from_starting_to_type_until_they_stop(typing: Typing):
    typing.set_typing(ROOM, ALICE, True, 30_000)
    assert typing.typing_users(ROOM) == [ALICE]

    typing.set_typing(ROOM, ALICE, False, 0)
    assert typing.typing_users(ROOM) == []


def test_typing_users_are_listed_in_the_order_they_started(typing: Typing):
    typing.set_typing(ROOM, BOB, True, 30_000)
    typing.set_typing(ROOM, ALICE, True, 30_000)
    assert typing.typing_users(ROOM) == [BOB, ALICE]


def test_a_notice_ends_when_its_timeout_runs_out(typing: Typing, clock: FakeClock):
    typing.set_typing(ROOM, ALICE, True, 10_000)
    clock.advance(9_999)
    assert typing.typing_users(ROOM) == [ALICE]
    clock.advance(1)
    assert typing.typing_users(ROOM) == []


def test_typing_again_extends_the_notice(typing: Typing, clock: FakeClock):
    typing.set_typing(ROOM, ALICE, True, 10_000)
    clock.advance(8_000)
    typing.set_typing(ROOM, ALICE, True, 10_000)
    clock.advance(8_000)
    assert typing.typing_users(ROOM) == [ALICE]


def test_a_timeout_above_the_maximum_is_cut_to_the_maximum(typing: Typing, clock: FakeClock):
    typing.set_typing(ROOM, ALICE, True, 10 * MAX_TIMEOUT_MS)
    clock.advance(MAX_TIMEOUT_MS)
    assert typing.typing_users(ROOM) == []


def test_last_change_is_zero_for_a_room_nobody_typed_in(typing: Typing):
    assert typing.last_change(ROOM) == 0


def test_starting_stopping_and_expiring_each_take_a_newer_position(
    typing: Typing, parts: ServiceParts, clock: FakeClock
):
    positions = []
    typing.set_typing(ROOM, ALICE, True, 1_000)
    positions.append(typing.last_change(ROOM))
    typing.set_typing(ROOM, BOB, True, 5_000)
    positions.append(typing.last_change(ROOM))
    clock.advance(1_000)  # alice's notice expires
    positions.append(typing.last_change(ROOM))
    typing.set_typing(ROOM, BOB, False, 0)
    positions.append(typing.last_change(ROOM))

    assert positions == sorted(set(positions))
    assert positions[0] > 0
    assert positions[-1] == parts.globals.current_count()


def test_renewing_a_notice_is_not_a_change(typing: Typing):
    typing.set_typing(ROOM, ALICE, True, 30_000)
    before = typing.last_change(ROOM)
    typing.set_typing(ROOM, ALICE, True, 30_000)
    typing.set_typing(ROOM, BOB, False, 0)  # bob was not typing: nothing changes either
    assert typing.last_change(ROOM) == before


def test_a_change_wakes_the_syncs_of_the_room_members_only(typing: Typing, parts: ServiceParts):
    parts.join(OUTSIDER, "!elsewhere:localhost")
    bob_listener = parts.notifier.listener(BOB)
    outsider_listener = parts.notifier.listener(OUTSIDER)

    typing.set_typing(ROOM, ALICE, True, 30_000)

    assert bob_listener.is_set()
    assert not outsider_listener.is_set()


def test_only_joined_users_can_type(typing: Typing, parts: ServiceParts):
    parts.leave(BOB, ROOM)
    for user_id in (BOB, OUTSIDER):
        with pytest.raises(MatrixError) as raised:
            typing.set_typing(ROOM, user_id, True, 30_000)
        assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")
    assert typing.typing_users(ROOM) == []


async def test_the_background_loop_expires_notices_and_wakes_the_members(
    parts: ServiceParts, nursery: trio.Nursery
):
    typing = Typing(parts.globals, parts.notifier, parts.state_cache)  # the real clock
    await nursery.start(typing.run)
    typing.set_typing(ROOM, ALICE, True, 20)
    started = parts.globals.current_count()
    bob_listener = parts.notifier.listener(BOB)  # taken before any await: the loop waits

    with trio.fail_after(10):  # a hang guard, not a timing assertion
        await bob_listener.wait()

    assert typing.last_change(ROOM) > started
    assert typing.typing_users(ROOM) == []
