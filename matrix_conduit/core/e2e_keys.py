"""The shapes and signatures of end-to-end encryption keys: pure checks, no storage.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`, "Key
algorithms" (`<algorithm>:<key_id>` names, the `KeyObject`), "Uploading keys"
(device keys include the device's Ed25519 key), "Cross-signing" and "Key and
signature security" (who may see which signature);
`data/api/client-server/definitions/device_keys.yaml` and
`cross_signing_key.yaml`; `content/appendices.md` § Signing JSON.

Uploaded keys are public keys a client signed; the server stores them and
hands them to other clients, so it checks the shape they must have and, where
the spec requires it (cross-signing keys and signatures uploaded for them),
that the signatures verify.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.signing import VerifyKey

from matrix_conduit.core.errors import ProtocolError, SignatureError, preview
from matrix_conduit.core.signing import decode_base64, verify_json

MASTER = "master"
SELF_SIGNING = "self_signing"
USER_SIGNING = "user_signing"
CROSS_SIGNING_USAGES = (MASTER, SELF_SIGNING, USER_SIGNING)

ED25519 = "ed25519"
_PUBLIC_KEY_BYTES = 32

KeyObject = dict[str, Any]


class InvalidKey(ProtocolError):
    """An uploaded key object that does not have the shape the spec gives it."""


def split_key_name(name: object) -> tuple[str, str]:
    """`<algorithm>:<key_id>` as (algorithm, key_id); `InvalidKey` unless both are there."""
    if not isinstance(name, str):
        raise InvalidKey(f"key name {preview(name)} is not a string")
    algorithm, colon, key_id = name.partition(":")
    if not colon or not algorithm or not key_id:
        raise InvalidKey(f"key name {preview(name)} is not '<algorithm>:<key_id>'")
    return algorithm, key_id


def _check_signatures(obj: Mapping[str, Any], *, required: bool) -> None:
    signatures = obj.get("signatures")
    if signatures is None and not required:
        return
    if not isinstance(signatures, dict) or not all(
        isinstance(by_key, dict) and all(isinstance(s, str) for s in by_key.values())
        for by_key in signatures.values()
    ):
        raise InvalidKey("`signatures` must map user ids to maps of key ids to signatures")


def _string_map(obj: Mapping[str, Any], field: str) -> dict[str, str]:
    value = obj.get(field)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidKey(f"`{field}` must be an object of strings")
    return value


def check_device_keys(device_keys: object, user_id: str, device_id: str) -> KeyObject:
    """The `DeviceKeys` of `user_id`'s device `device_id`, or `InvalidKey` saying what is wrong."""
    if not isinstance(device_keys, dict):
        raise InvalidKey("`device_keys` must be an object")
    if device_keys.get("user_id") != user_id:
        raise InvalidKey(f"`device_keys.user_id` must be your user id, {user_id}")
    if device_keys.get("device_id") != device_id:
        raise InvalidKey(f"`device_keys.device_id` must be this device's id, {device_id}")
    algorithms = device_keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise InvalidKey("`device_keys.algorithms` must be a list of strings")
    keys = _string_map(device_keys, "keys")
    for name in keys:
        split_key_name(name)
    if f"{ED25519}:{device_id}" not in keys:
        raise InvalidKey(f"`device_keys.keys` must include the device's key ed25519:{device_id}")
    _check_signatures(device_keys, required=True)
    return device_keys


def check_key_map(keys: object, field: str) -> dict[tuple[str, str], object]:
    """One-time or fallback keys by (algorithm, key_id).

    A key is a signed `KeyObject` (`signed_curve25519`) or, for unsigned
    algorithms (`curve25519`), the bare key string.
    """
    if not isinstance(keys, dict):
        raise InvalidKey(f"`{field}` must be an object")
    checked: dict[tuple[str, str], object] = {}
    for name, key in keys.items():
        if isinstance(key, dict):
            if not isinstance(key.get("key"), str):
                raise InvalidKey(f"`{field}.{name}.key` must be a string")
            _check_signatures(key, required=False)
        elif not isinstance(key, str):
            raise InvalidKey(f"`{field}.{name}` must be a key object or a key string")
        checked[split_key_name(name)] = key
    return checked


def check_cross_signing_key(key: object, user_id: str, usage: str) -> str:
    """A `CrossSigningKey` of `user_id` for `usage`; returns its unpadded base64 public key."""
    if not isinstance(key, dict):
        raise InvalidKey(f"the {usage} key must be an object")
    if key.get("user_id") != user_id:
        raise InvalidKey(f"the {usage} key's `user_id` must be your user id, {user_id}")
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        raise InvalidKey(f"the {usage} key's `usage` must include {usage!r}")
    keys = _string_map(key, "keys")
    if len(keys) != 1:
        raise InvalidKey(f"the {usage} key's `keys` must hold exactly one key")
    ((name, public_key),) = keys.items()
    if name != f"{ED25519}:{public_key}":
        raise InvalidKey(f"the {usage} key must be named 'ed25519:<its public key>'")
    _check_signatures(key, required=False)
    return public_key


def public_key_of(cross_signing_key: Mapping[str, Any]) -> str:
    """The public key of a stored (already checked) cross-signing key."""
    (public_key,) = cross_signing_key["keys"].values()
    return public_key


def signed_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a signature covers: the object without `signatures` and `unsigned`."""
    return {key: value for key, value in obj.items() if key not in ("signatures", "unsigned")}


def verify_key_signature(obj: Mapping[str, Any], signer: str, key_id: str, public_key: str) -> None:
    """Check `signer`'s signature under `key_id` made with the ed25519 `public_key`.

    Raises `SignatureError` when it is missing, malformed or does not verify.
    """
    try:
        key_bytes = decode_base64(public_key)
    except ValueError:
        key_bytes = b""
    if len(key_bytes) != _PUBLIC_KEY_BYTES:
        raise SignatureError(f"{preview(public_key)} is not an ed25519 public key")
    verify_json(obj, signer, key_id, VerifyKey(key_bytes))


def visible_signatures(obj: Mapping[str, Any], owner: str, viewer: str) -> KeyObject:
    """`obj` with only the signatures `viewer` may see of `owner`'s key.

    "Key and signature security": users see signatures made by the key's
    owner (their master, self-signing keys and devices) and their own; never
    those another user's user-signing key made.
    """
    shown = dict(obj)
    signatures = obj.get("signatures")
    if isinstance(signatures, dict):
        shown["signatures"] = {
            signer: dict(by_key)
            for signer, by_key in signatures.items()
            if signer in (owner, viewer)
        }
    return shown
