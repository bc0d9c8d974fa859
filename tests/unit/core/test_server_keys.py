"""Server key documents: ours as published, others' checked before use.

Spec: `content/server-server-api.md` § Retrieving server keys, § Publishing
Keys; `data/api/server-server/definitions/keys.yaml` (`verify_keys`,
`old_verify_keys` with `expired_ts`, `valid_until_ts`, signatures by the
verify keys).
"""

from __future__ import annotations

import pytest

from matrix_conduit.core.server_keys import InvalidServerKeys, own_server_keys, parse_server_keys
from matrix_conduit.core.signing import (
    generate_signing_key,
    key_id_of,
    sign_json,
    verify_key_base64,
)

NAME = "a.example"
KEY = generate_signing_key()
OLD = generate_signing_key()


def document(**changes) -> dict:
    """A's document, signed, then changed by `changes` (which breaks the signature)."""
    old = {key_id_of(OLD): {"key": verify_key_base64(OLD), "expired_ts": 1000}}
    return {**own_server_keys(NAME, KEY, old, valid_until_ts=5000), **changes}


def test_our_document_lists_the_current_and_old_keys_and_verifies():
    keys = {key.key_id: key for key in parse_server_keys(document(), NAME)}

    current, old = keys[key_id_of(KEY)], keys[key_id_of(OLD)]
    assert (current.valid_until_ts, current.expired_ts) == (5000, None)
    assert (old.valid_until_ts, old.expired_ts) == (None, 1000)


def test_a_current_key_is_good_until_valid_until_ts_and_an_old_one_before_expired_ts():
    keys = {key.key_id: key for key in parse_server_keys(document(), NAME)}

    current, old = keys[key_id_of(KEY)], keys[key_id_of(OLD)]
    assert current.valid_at(5000) and not current.valid_at(5001)
    assert old.valid_at(999) and not old.valid_at(1000)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"server_name": "b.example"}, "not 'a.example'"),
        ({"valid_until_ts": 6000}, "does not verify"),
        ({"valid_until_ts": "soon"}, "no valid_until_ts"),
        ({"signatures": {}}, "not signed by its verify_keys"),
        ({"verify_keys": {"ed25519:x": {"key": "not base64!"}}}, "key 'ed25519:x'"),
    ],
)
def test_a_document_that_is_not_properly_self_signed_is_refused(changes, reason):
    with pytest.raises(InvalidServerKeys, match=reason):
        parse_server_keys(document(**changes), NAME)


def test_a_document_signed_by_another_key_than_its_verify_keys_is_refused():
    unsigned = {key: value for key, value in document().items() if key != "signatures"}
    signed_by_stranger = sign_json(unsigned, NAME, generate_signing_key())

    with pytest.raises(InvalidServerKeys, match="not signed by its verify_keys"):
        parse_server_keys(signed_by_stranger, NAME)
