"""Devices and tokens on a real database, without HTTP: expiry, refresh rotation, hooks.

Spec: `content/client-server-api/_index.md`, "Relationship between access
tokens and devices", "Refreshing access tokens" (the old refresh token lives
until the new access or refresh token is used), "Soft logout".
"""

from __future__ import annotations

import pytest

from matrix_conduit.errors import MatrixError
from matrix_conduit.service.devices import DeviceLogin, Devices, check_device_id
from matrix_conduit.service.globals import Globals
from matrix_conduit.storage import Database, open_database

ALICE = "@alice:example.org"
LIFETIME_MS = 60_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path) -> Database:
    with open_database("leveldb", str(tmp_path / "db")) as db:
        yield db


@pytest.fixture
def globals_(db) -> Globals:
    return Globals(db, "example.org")


@pytest.fixture
def devices(db, globals_, clock) -> Devices:
    return Devices(db, globals_, access_token_lifetime_ms=LIFETIME_MS, clock=clock)


def errcode_and_soft_logout(error: pytest.ExceptionInfo[MatrixError]) -> tuple[str, bool]:
    return error.value.errcode, error.value.extra["soft_logout"]


def test_access_token_expires_at_its_lifetime_with_soft_logout(devices, clock):
    tokens = devices.log_in(ALICE, DeviceLogin(refreshable=True))
    clock.now += LIFETIME_MS - 1
    assert devices.owner_of_access_token(tokens.access_token).user_id == ALICE

    clock.now += 1
    with pytest.raises(MatrixError) as error:
        devices.owner_of_access_token(tokens.access_token)

    assert errcode_and_soft_logout(error) == ("M_UNKNOWN_TOKEN", True)


def test_tokens_of_non_refreshing_clients_never_expire(devices, clock):
    tokens = devices.log_in(ALICE, DeviceLogin())
    clock.now += 10 * 365 * 24 * 3600 * 1000

    assert devices.owner_of_access_token(tokens.access_token).device_id == tokens.device_id
    assert tokens.refresh_token is None and tokens.expires_in_ms is None


def test_using_the_new_refresh_token_retires_the_old_one(devices):
    first = devices.log_in(ALICE, DeviceLogin(refreshable=True))
    second = devices.refresh(first.refresh_token)

    third = devices.refresh(second.refresh_token)

    with pytest.raises(MatrixError):
        devices.refresh(first.refresh_token)
    assert third.device_id == first.device_id
    assert devices.owner_of_access_token(third.access_token).device_id == first.device_id


def test_a_refresh_whose_answer_was_lost_can_be_repeated(devices):
    first = devices.log_in(ALICE, DeviceLogin(refreshable=True))
    lost = devices.refresh(first.refresh_token)

    repeated = devices.refresh(first.refresh_token)

    for token in (lost.access_token, first.access_token):
        with pytest.raises(MatrixError) as error:
            devices.owner_of_access_token(token)
        assert errcode_and_soft_logout(error) == ("M_UNKNOWN_TOKEN", False)
    with pytest.raises(MatrixError):
        devices.refresh(lost.refresh_token)
    assert devices.owner_of_access_token(repeated.access_token).user_id == ALICE


def test_deleting_a_device_ends_all_its_tokens_and_tells_the_hooks(devices):
    tokens = devices.log_in(ALICE, DeviceLogin(refreshable=True))
    calls = []
    devices.device_deleted.append(lambda batch, user, device: calls.append((user, device)))

    devices.delete(ALICE, [tokens.device_id, "NEVER_EXISTED"])

    assert calls == [(ALICE, tokens.device_id)]
    with pytest.raises(MatrixError):
        devices.owner_of_access_token(tokens.access_token)
    with pytest.raises(MatrixError):
        devices.refresh(tokens.refresh_token)


def test_generated_device_ids_are_ten_capital_letters(devices):
    device_id = devices.log_in(ALICE, DeviceLogin()).device_id

    assert len(device_id) == 10 and device_id.isalpha() and device_id.isupper()


def test_each_device_list_change_takes_a_new_counter_position(devices):
    devices.log_in(ALICE, DeviceLogin(device_id="ONE"))
    first = devices.device_list_version(ALICE)
    devices.log_in("@bob:example.org", DeviceLogin())
    devices.set_display_name(ALICE, "ONE", "Phone")

    assert devices.device_list_version(ALICE) > first
    assert devices.users_with_device_list_changes(0) == ["@bob:example.org", ALICE]
    assert devices.users_with_device_list_changes(first) == ["@bob:example.org", ALICE]


def test_device_list_changes_at_positions_containing_0xff_read_back(devices, globals_):
    while globals_.current_count() < 254:
        globals_.next_count()

    devices.log_in(ALICE, DeviceLogin())

    assert devices.device_list_version(ALICE) == 255
    assert devices.users_with_device_list_changes(254) == [ALICE]


@pytest.mark.parametrize("device_id", ["", 42, None, "x" * 256])
def test_unusable_device_ids_get_m_invalid_param(device_id):
    with pytest.raises(MatrixError) as error:
        check_device_id(device_id)

    assert error.value.errcode == "M_INVALID_PARAM"
