"""Cross-signing keys: each user's master, self-signing and user-signing public keys.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
"Cross-signing" and "Key and signature security";
`data/api/client-server/cross_signing.yaml`, `POST /keys/device_signing/upload`.

Tree `useridusage_crosssigningkey`: user | usage → the key as uploaded, with
the signatures later uploaded for it (`key_signatures`) merged in.

An upload is refused when:
- a key is not the uploader's, not for its usage, or does not hold exactly
  one ed25519 key (400 `M_INVALID_PARAM`);
- a self-signing or user-signing key is not signed by the master key sent
  with it, or else the stored one (400 `M_INVALID_SIGNATURE`; 400
  `M_MISSING_PARAM` when there is no master key at all);
- a public key equals one of the user's device ids (403 `M_FORBIDDEN`):
  device keys and cross-signing keys share the `ed25519:<id>` namespace.

Uploading the keys the server already has changes nothing, and needs no
user-interactive auth (`needs_authentication`), so a client can retry an
upload whose response it lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from ..core.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    InvalidKey,
    KeyObject,
    check_cross_signing_key,
    signed_part,
    verify_key_signature,
)
from ..core.errors import SignatureError
from ..errors import MatrixError, forbidden, invalid_param
from ..storage import Database, WriteBatch
from ..storage.kv import join_key
from .devices import Devices
from .key_changes import KeyChanges

TREES = ("useridusage_crosssigningkey",)


class CrossSigning:
    def __init__(self, db: Database, devices: Devices, key_changes: KeyChanges) -> None:
        self._db = db
        self._devices = devices
        self._key_changes = key_changes
        self._keys = db.tree("useridusage_crosssigningkey")
        self.uploaded: list[Callable[[WriteBatch, str], None]] = []
        """Called with (batch, user_id) inside the batch that stores new cross-signing
        keys: the federation outbox queues `m.signing_key_update` there."""

    def key(self, user_id: str, usage: str) -> KeyObject | None:
        """The user's stored key for `usage` (`master`, `self_signing`, `user_signing`)."""
        stored = self._keys.get(join_key(user_id, usage))
        return None if stored is None else json.loads(stored)

    def needs_authentication(self, user_id: str, uploaded: Mapping[str, KeyObject]) -> bool:
        """Whether this upload must pass user-interactive auth.

        Not when the user has no master key yet, nor when every key sent is
        one the server already has (cross_signing.yaml).
        """
        if self.key(user_id, MASTER) is None:
            return False
        return any(not self._is_stored(user_id, usage, key) for usage, key in uploaded.items())

    def upload(self, user_id: str, uploaded: Mapping[str, KeyObject]) -> None:
        """Store the user's new cross-signing keys (`uploaded` maps usage → key)."""
        public_keys = {usage: _checked(key, user_id, usage) for usage, key in uploaded.items()}
        master = uploaded.get(MASTER) or self.key(user_id, MASTER)
        for usage in (SELF_SIGNING, USER_SIGNING):
            if usage in uploaded:
                if master is None:
                    raise MatrixError(
                        400, "M_MISSING_PARAM", f"A {usage} key needs a master key to sign it."
                    )
                _check_signed_by_master(uploaded[usage], user_id, usage, master)
        device_ids = set(self._devices.device_ids(user_id))
        if device_ids.intersection(public_keys.values()):
            raise forbidden("A cross-signing public key may not equal one of your device ids.")
        new_keys = {
            usage: key
            for usage, key in uploaded.items()
            if not self._is_stored(user_id, usage, key)
        }
        if not new_keys:
            return
        with self._db.batch() as batch:
            for usage, key in new_keys.items():
                batch.put(self._keys, join_key(user_id, usage), json.dumps(key).encode())
            self._key_changes.record(batch, user_id)
            for hook in self.uploaded:
                hook(batch, user_id)

    def add_signatures(
        self,
        batch: WriteBatch,
        user_id: str,
        usage: str,
        signer: str,
        signatures: Mapping[str, str],
    ) -> None:
        """Merge `signer`'s verified `signatures` into the user's stored `usage` key."""
        key = self.key(user_id, usage)
        if key is None:
            raise KeyError(f"{user_id} has no {usage} key")
        key.setdefault("signatures", {}).setdefault(signer, {}).update(signatures)
        batch.put(self._keys, join_key(user_id, usage), json.dumps(key).encode())

    def _is_stored(self, user_id: str, usage: str, key: KeyObject) -> bool:
        stored = self.key(user_id, usage)
        return stored is not None and signed_part(stored) == signed_part(key)


def _checked(key: KeyObject, user_id: str, usage: str) -> str:
    try:
        return check_cross_signing_key(key, user_id, usage)
    except InvalidKey as error:
        raise invalid_param(f"Invalid {usage} key: {error}.") from None


def _check_signed_by_master(key: KeyObject, user_id: str, usage: str, master: KeyObject) -> None:
    master_public_key = _checked(master, user_id, MASTER)
    try:
        verify_key_signature(key, user_id, f"ed25519:{master_public_key}", master_public_key)
    except SignatureError as error:
        raise MatrixError(
            400, "M_INVALID_SIGNATURE", f"The {usage} key is not signed by the master key: {error}."
        ) from None
