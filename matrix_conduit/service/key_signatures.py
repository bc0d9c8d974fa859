"""Signatures users upload for keys: cross-signing their own devices and other users.

Spec: `data/api/client-server/cross_signing.yaml`, `POST /keys/signatures/upload`
("the signed JSON object must match the key previously uploaded ... with the
exception of the `signatures` property"), and
`content/client-server-api/modules/end_to_end_encryption.md`, "Cross-signing".

A new signature is stored when the object sent is the stored key (its signed
part unchanged) and the signature verifies with a key that may make it:
- on the uploader's own device keys: their self-signing key;
- on the uploader's own master key: one of their devices;
- on another local user's master key: the uploader's user-signing key.
Anything else is reported in `failures`, per user and key id, while the rest
of the request is still stored. Each signed user gets a key change, so their
keys are queried again; `/keys/query` shows a user-signing key's signature
only to its maker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.e2e_keys import (
    ED25519,
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    KeyObject,
    public_key_of,
    signed_part,
    verify_key_signature,
)
from ..core.errors import SignatureError
from ..errors import MatrixError
from ..storage import Database, WriteBatch
from .cross_signing import CrossSigning
from .key_changes import KeyChanges
from .keys import Keys

Failures = dict[str, dict[str, dict[str, str]]]


@dataclass(frozen=True)
class _Target:
    """A stored key that may be signed, and the keys allowed to sign it (key id → public key)."""

    stored: KeyObject
    signing_keys: dict[str, str]
    device_id: str | None
    """The device whose keys these are; None for a master key."""


def _rejected(errcode: str, message: str) -> MatrixError:
    return MatrixError(400, errcode, message)


class KeySignatures:
    def __init__(
        self, db: Database, keys: Keys, cross_signing: CrossSigning, key_changes: KeyChanges
    ) -> None:
        self._db = db
        self._keys = keys
        self._cross_signing = cross_signing
        self._key_changes = key_changes

    def upload(self, signer: str, signed: Mapping[str, Mapping[str, Any]]) -> Failures:
        """Store `signer`'s signatures (`signed`: user → key id → signed object); the failures."""
        failures: Failures = {}
        with self._db.batch() as batch:
            for user_id, objects in signed.items():
                changed = False
                for key_id, signed_object in objects.items():
                    try:
                        changed |= self._add(batch, signer, user_id, key_id, signed_object)
                    except MatrixError as error:
                        failures.setdefault(user_id, {})[key_id] = {
                            "errcode": error.errcode,
                            "error": error.message,
                        }
                if changed:
                    self._key_changes.record(batch, user_id)
        return failures

    def _add(
        self, batch: WriteBatch, signer: str, user_id: str, key_id: str, signed_object: object
    ) -> bool:
        """Store the new signatures on one key; False when there were none."""
        if not isinstance(signed_object, dict):
            raise _rejected("M_BAD_JSON", "A signed key must be a JSON object.")
        target = self._target(signer, user_id, key_id)
        if target is None:
            raise _rejected("M_NOT_FOUND", "There is no such key that you may sign.")
        if signed_part(signed_object) != signed_part(target.stored):
            raise _rejected("M_INVALID_SIGNATURE", "The signed object is not the stored key.")
        signatures = signed_object.get("signatures")
        sent = signatures.get(signer) if isinstance(signatures, dict) else None
        if not isinstance(sent, dict) or not all(isinstance(s, str) for s in sent.values()):
            raise _rejected("M_INVALID_SIGNATURE", "The object carries no signatures of yours.")
        known = target.stored.get("signatures", {}).get(signer, {})
        new = {k: signature for k, signature in sent.items() if known.get(k) != signature}
        for signing_key_id in new:
            public_key = target.signing_keys.get(signing_key_id)
            if public_key is None:
                raise _rejected(
                    "M_INVALID_SIGNATURE", f"{signing_key_id} is not a key that may sign this key."
                )
            try:
                verify_key_signature(signed_object, signer, signing_key_id, public_key)
            except SignatureError as error:
                raise _rejected("M_INVALID_SIGNATURE", f"Invalid signature: {error}.") from None
        if not new:
            return False
        if target.device_id is None:
            self._cross_signing.add_signatures(batch, user_id, MASTER, signer, new)
        else:
            self._keys.add_device_signatures(batch, user_id, target.device_id, signer, new)
        return True

    def _target(self, signer: str, user_id: str, key_id: str) -> _Target | None:
        master = self._cross_signing.key(user_id, MASTER)
        if master is not None and public_key_of(master) == key_id:
            if user_id == signer:
                return _Target(master, self._device_signing_keys(user_id), None)
            user_signing = self._cross_signing.key(signer, USER_SIGNING)
            if user_signing is None:
                return None
            return _Target(master, _signing_key(user_signing), None)
        if user_id != signer:
            return None
        device_keys = self._keys.device_keys(user_id, key_id)
        self_signing = self._cross_signing.key(user_id, SELF_SIGNING)
        if device_keys is None or self_signing is None:
            return None
        return _Target(device_keys, _signing_key(self_signing), key_id)

    def _device_signing_keys(self, user_id: str) -> dict[str, str]:
        """The Ed25519 key of each of the user's devices, by key id."""
        signing_keys = {}
        for device_id, device_keys in self._keys.device_keys_of(user_id).items():
            key_id = f"{ED25519}:{device_id}"
            signing_keys[key_id] = device_keys["keys"][key_id]
        return signing_keys


def _signing_key(cross_signing_key: KeyObject) -> dict[str, str]:
    public_key = public_key_of(cross_signing_key)
    return {f"{ED25519}:{public_key}": public_key}
