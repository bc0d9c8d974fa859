"""Password hashing: argon2id PHC strings, verification, and what never verifies.

The spec leaves password storage to servers; the rule (`service/passwords.py`)
is argon2id, never clear text, and no login through an account without a
password.
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.passwords import Argon2Parameters, PasswordHashing

CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=64, parallelism=1)


@pytest.fixture
def hashing() -> PasswordHashing:
    return PasswordHashing(CHEAP)


async def test_hash_is_an_argon2id_phc_string_with_the_parameters(hashing):
    stored = await hashing.hash("hunter2")

    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert "hunter2" not in stored


async def test_the_right_password_verifies_and_a_wrong_one_does_not(hashing):
    stored = await hashing.hash("hunter2")

    assert await hashing.verify(stored, "hunter2")
    assert not await hashing.verify(stored, "hunter3")


@pytest.mark.parametrize("password", ["", "decoy password", "anything"])
async def test_an_account_without_password_never_verifies(hashing, password):
    assert not await hashing.verify("", password)


async def test_a_damaged_hash_does_not_verify_or_raise(hashing):
    assert not await hashing.verify("$argon2id$garbage", "hunter2")


async def test_hashes_with_other_parameters_need_rehash(hashing):
    other = PasswordHashing(Argon2Parameters(time_cost=2, memory_cost_kib=64, parallelism=1))

    assert hashing.needs_rehash(await other.hash("hunter2"))
    assert not hashing.needs_rehash(await hashing.hash("hunter2"))


def test_production_parameters_suit_a_raspberry_pi():
    parameters = Argon2Parameters()

    assert parameters.memory_cost_kib == 19 * 1024
    assert (parameters.time_cost, parameters.parallelism) == (2, 1)
