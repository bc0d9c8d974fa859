"""Shared-secret registration's nonces (`service/shared_secret_registration.py`).

Synapse's admin API "Shared-Secret Registration": a nonce is good for 60
seconds and one try; a flood of nonce requests holds a bounded number.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from matrix_conduit.errors import MatrixError
from matrix_conduit.service import shared_secret_registration as module
from matrix_conduit.service.shared_secret_registration import (
    SharedSecretRegistration,
    shared_secret_mac,
)

SECRET = "secret"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body_for(nonce: str, username: str = "ann") -> dict:
    mac = shared_secret_mac(SECRET, nonce, username, "pw", admin=False, user_type=None)
    return {"nonce": nonce, "username": username, "password": "pw", "mac": mac}


async def test_a_nonce_older_than_a_minute_is_unrecognised():
    clock = FakeClock()
    registration = SharedSecretRegistration(SECRET, None, None, monotonic=clock)  # type: ignore[arg-type]
    nonce = registration.new_nonce()
    clock.now += module.NONCE_LIFETIME_S + 1
    with pytest.raises(MatrixError) as caught:
        await registration.register(body_for(nonce))
    assert (caught.value.status, caught.value.errcode) == (400, "M_INVALID_PARAM")


async def test_the_oldest_nonces_go_when_too_many_are_asked_for(monkeypatch):
    monkeypatch.setattr(module, "MAX_NONCES", 3)
    registration = SharedSecretRegistration(SECRET, None, None, monotonic=FakeClock())  # type: ignore[arg-type]
    first, *rest = [registration.new_nonce() for _ in range(4)]
    with pytest.raises(MatrixError) as caught:
        await registration.register(body_for(first))
    assert caught.value.errcode == "M_INVALID_PARAM"
    with pytest.raises(MatrixError) as wrong_mac:  # a kept nonce gets as far as the mac
        await registration.register({**body_for(rest[0]), "mac": "00"})
    assert (wrong_mac.value.status, wrong_mac.value.errcode) == (403, "M_FORBIDDEN")


def test_the_mac_is_synapses_construction():
    """The value Synapse's register_new_matrix_user computes for these inputs."""
    expected = hmac.new(b"k", b"n\x00u\x00p\x00admin\x00bot", hashlib.sha1).hexdigest()
    assert shared_secret_mac("k", "n", "u", "p", admin=True, user_type="bot") == expected
