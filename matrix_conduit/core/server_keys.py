"""Server key documents (`/_matrix/key/v2/server`): building ours, checking others'.

Spec: `content/server-server-api.md` § Retrieving server keys (and its
"Publishing Keys" and "Querying Keys Through Another Server" parts),
`data/api/server-server/definitions/keys.yaml`. A document lists the
server's current `verify_keys`, the `old_verify_keys` it stopped using (with
`expired_ts`), and `valid_until_ts`, and is signed by the current keys.

A key is good for a signature made at time `ts` when it is a current key and
`ts <= valid_until_ts`, or an old key and `ts < expired_ts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidSigningKey, ProtocolError, SignatureError, preview
from .signing import (
    SigningKey,
    VerifyKey,
    decode_verify_key,
    key_id_of,
    sign_json,
    signed_key_ids,
    verify_json,
    verify_key_base64,
)


class InvalidServerKeys(ProtocolError):
    """A server key document that is malformed, for another server, or not self-signed."""


@dataclass(frozen=True, slots=True)
class ServerKey:
    """One published key and the time range it is good for."""

    server_name: str
    key_id: str
    verify_key: VerifyKey
    valid_until_ts: int | None
    """Set for current keys (`verify_keys`)."""
    expired_ts: int | None
    """Set for old keys (`old_verify_keys`)."""

    def valid_at(self, ts: int) -> bool:
        if self.valid_until_ts is not None and ts <= self.valid_until_ts:
            return True
        return self.expired_ts is not None and ts < self.expired_ts

    @property
    def good_until(self) -> int:
        """The last moment this key is good for."""
        return max(self.valid_until_ts or 0, (self.expired_ts or 1) - 1)


def own_server_keys(
    server_name: str,
    signing_key: SigningKey,
    old_verify_keys: Mapping[str, Mapping[str, Any]],
    valid_until_ts: int,
) -> dict[str, Any]:
    """Our `/_matrix/key/v2/server` document, signed with `signing_key`."""
    document = {
        "server_name": server_name,
        "verify_keys": {key_id_of(signing_key): {"key": verify_key_base64(signing_key)}},
        "old_verify_keys": {key_id: dict(entry) for key_id, entry in old_verify_keys.items()},
        "valid_until_ts": valid_until_ts,
    }
    return sign_json(document, server_name, signing_key)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _keys(
    document: Mapping[str, Any], field: str, server_name: str, valid_until_ts: int
) -> list[ServerKey]:
    entries = document.get(field, {})
    if not isinstance(entries, Mapping):
        raise InvalidServerKeys(f"{field} of {preview(server_name)} is not an object")
    keys = []
    for key_id, entry in entries.items():
        if not isinstance(entry, Mapping):
            raise InvalidServerKeys(f"{field}.{preview(key_id)} is not an object")
        if not key_id.startswith("ed25519:"):
            continue  # algorithms we do not know cannot check anything: skip them
        expired_ts = entry.get("expired_ts") if field == "old_verify_keys" else None
        if field == "old_verify_keys" and not _is_int(expired_ts):
            raise InvalidServerKeys(f"old key {preview(key_id)} has no integer expired_ts")
        try:
            verify_key = decode_verify_key(key_id, entry.get("key"))
        except InvalidSigningKey as error:
            raise InvalidServerKeys(str(error)) from None
        current = field == "verify_keys"
        keys.append(
            ServerKey(
                server_name, key_id, verify_key, valid_until_ts if current else None, expired_ts
            )
        )
    return keys


def parse_server_keys(document: object, server_name: str) -> list[ServerKey]:
    """The keys of `server_name`'s key document, after checking its self-signature.

    Every signature the server made with one of its `verify_keys` must
    verify, and there must be at least one. Raises `InvalidServerKeys`.
    """
    if not isinstance(document, Mapping):
        raise InvalidServerKeys("the server key document is not an object")
    if document.get("server_name") != server_name:
        raise InvalidServerKeys(
            f"the key document is for {preview(document.get('server_name'))}, "
            f"not {preview(server_name)}"
        )
    valid_until_ts = document.get("valid_until_ts")
    if not _is_int(valid_until_ts):
        raise InvalidServerKeys(f"the key document of {preview(server_name)} has no valid_until_ts")
    current = _keys(document, "verify_keys", server_name, valid_until_ts)
    old = _keys(document, "old_verify_keys", server_name, valid_until_ts)
    by_id = {key.key_id: key for key in current}
    signers = [key_id for key_id in signed_key_ids(document, server_name) if key_id in by_id]
    if not signers:
        raise InvalidServerKeys(
            f"the key document of {preview(server_name)} is not signed by its verify_keys"
        )
    for key_id in signers:
        try:
            verify_json(document, server_name, key_id, by_id[key_id].verify_key)
        except SignatureError as error:
            raise InvalidServerKeys(str(error)) from None
    return [*current, *(key for key in old if key.key_id not in by_id)]
