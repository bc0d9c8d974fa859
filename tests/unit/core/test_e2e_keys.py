"""The shapes and signatures of E2EE keys, checked without a server.

Spec: `content/client-server-api/modules/end_to_end_encryption.md` ("Key
algorithms", "Uploading keys", "Cross-signing", "Key and signature
security"); `content/appendices.md` § Signing JSON.
"""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from matrix_conduit.core.e2e_keys import (
    InvalidKey,
    check_cross_signing_key,
    check_device_keys,
    check_key_map,
    public_key_of,
    signed_part,
    split_key_name,
    verify_key_signature,
    visible_signatures,
)
from matrix_conduit.core.errors import SignatureError
from tests.support.e2ee import CrossSigningIdentity, DeviceIdentity, public_key, sign

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:example.org"


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("signed_curve25519:AAAAHg", ("signed_curve25519", "AAAAHg")),
        ("ed25519:base64+key/with:colon", ("ed25519", "base64+key/with:colon")),
    ],
)
def test_a_key_name_is_algorithm_colon_key_id(name, parts):
    assert split_key_name(name) == parts


@pytest.mark.parametrize("name", ["nocolon", ":id", "algorithm:", 5])
def test_a_key_name_needs_both_parts(name):
    with pytest.raises(InvalidKey):
        split_key_name(name)


def test_a_devices_own_signed_keys_pass_the_device_keys_check():
    device_keys = DeviceIdentity(ALICE, "PHONE").device_keys()
    assert check_device_keys(device_keys, ALICE, "PHONE") == device_keys


def test_device_keys_must_name_the_uploading_device():
    device_keys = DeviceIdentity(ALICE, "PHONE").device_keys()
    with pytest.raises(InvalidKey, match="device_id"):
        check_device_keys(device_keys, ALICE, "LAPTOP")


def test_one_time_keys_may_be_signed_objects_or_bare_strings():
    keys = {"signed_curve25519:A": {"key": "k1", "signatures": {}}, "curve25519:B": "k2"}
    assert check_key_map(keys, "one_time_keys") == {
        ("signed_curve25519", "A"): keys["signed_curve25519:A"],
        ("curve25519", "B"): "k2",
    }


@pytest.mark.parametrize(
    "keys",
    [
        {"signed_curve25519:A": {"key": 1}},
        {"signed_curve25519:A": {"key": "k", "signatures": "none"}},
        {"signed_curve25519:A": None},
    ],
)
def test_one_time_keys_of_other_shapes_are_invalid(keys):
    with pytest.raises(InvalidKey):
        check_key_map(keys, "one_time_keys")


def test_a_cross_signing_key_check_returns_its_public_key():
    identity = CrossSigningIdentity(ALICE)
    master = identity.public_key_object(identity.master, "master")
    assert check_cross_signing_key(master, ALICE, "master") == public_key(identity.master)
    assert public_key_of(master) == public_key(identity.master)


def test_a_cross_signing_key_must_be_for_the_usage_it_is_uploaded_as():
    identity = CrossSigningIdentity(ALICE)
    master = identity.public_key_object(identity.master, "master")
    with pytest.raises(InvalidKey, match="usage"):
        check_cross_signing_key(master, ALICE, "self_signing")


def test_a_signature_by_the_named_key_verifies_and_any_change_breaks_it():
    identity = CrossSigningIdentity(ALICE)
    body = identity.upload_body()
    master_key_id = identity.key_id(identity.master)
    master = public_key(identity.master)
    verify_key_signature(body["self_signing_key"], ALICE, master_key_id, master)

    tampered = {**body["self_signing_key"], "usage": ["self_signing", "master"]}
    with pytest.raises(SignatureError):
        verify_key_signature(tampered, ALICE, master_key_id, master)


def test_a_signature_under_another_key_or_user_does_not_verify():
    identity = CrossSigningIdentity(ALICE)
    ssk = identity.upload_body()["self_signing_key"]
    master_key_id = identity.key_id(identity.master)
    with pytest.raises(SignatureError):
        verify_key_signature(ssk, BOB, master_key_id, public_key(identity.master))
    with pytest.raises(SignatureError):
        verify_key_signature(ssk, ALICE, master_key_id, public_key(SigningKey.generate()))


@pytest.mark.parametrize("bad_key", ["not base64!", "c2hvcnQ"])
def test_a_public_key_that_is_not_32_bytes_of_base64_verifies_nothing(bad_key):
    identity = CrossSigningIdentity(ALICE)
    ssk = identity.upload_body()["self_signing_key"]
    with pytest.raises(SignatureError):
        verify_key_signature(ssk, ALICE, f"ed25519:{bad_key}", bad_key)


def test_unsigned_and_signatures_are_outside_what_a_signature_covers():
    obj = {"keys": {"a": "b"}, "signatures": {ALICE: {}}, "unsigned": {"x": 1}}
    assert signed_part(obj) == {"keys": {"a": "b"}}


def test_viewers_see_the_owners_and_their_own_signatures_only():
    key = {"keys": {"ed25519:K": "K"}}
    for signer in (BOB, ALICE, CAROL):
        key = sign(key, signer, f"ed25519:{signer}", SigningKey.generate())

    seen_by_alice = visible_signatures(key, BOB, ALICE)

    assert set(seen_by_alice["signatures"]) == {BOB, ALICE}
    assert set(visible_signatures(key, BOB, BOB)["signatures"]) == {BOB}
    assert set(key["signatures"]) == {BOB, ALICE, CAROL}, "the stored key is not changed"
