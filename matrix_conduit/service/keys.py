"""Device keys, one-time keys and fallback keys: upload, query, claim.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`, "Key
Distribution" (device keys, "One-time and fallback keys", "Uploading keys",
"Tracking the device list for a user", "Key and signature security") and
`data/api/client-server/keys.yaml` (`POST /keys/upload`, `/keys/query`,
`/keys/claim`).

Trees:
- `userdeviceid_devicekeys`: user | device → the device's `DeviceKeys`, with
  the signatures its user's self-signing key later made merged in.
- `onetimekeyid_onetimekey`: user | device | algorithm | position | key id →
  the key. The position (global counter) of the upload orders the keys, so a
  claim takes the oldest one (keys.yaml: given out in upload order), and
  deletes it in the same synchronous stretch: no key is handed out twice.
- `fallbackkeyid_fallbackkey`: user | device | algorithm → `{"key_id", "key",
  "used"}`. One per algorithm; a claim that finds no one-time key gets it and
  marks it used, and the device replaces it after seeing it missing from
  `device_unused_fallback_key_types`.

A change to device keys is recorded in the key-change index (`key_changes`)
in the same batch, so the users who share a room see it in `/sync`.

`query` and `claim` answer for this server's users only, to a local user
(`viewer`) or to another server (`viewer=None`: `/user/keys/query`, no
user-signing keys, no device names). Users of other servers are skipped:
`federation/remote_keys.py` asks their servers (the fan-out the client API
calls) and merges the answers with these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..core.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    InvalidKey,
    KeyObject,
    check_device_keys,
    check_key_map,
    signed_part,
    visible_signatures,
)
from ..core.ids import server_name_of
from ..errors import invalid_param
from ..storage import Database, WriteBatch
from ..storage.kv import SEPARATOR, join_key, u64
from .cross_signing import CrossSigning
from .devices import Devices
from .globals import Globals
from .key_changes import KeyChanges

TREES = ("userdeviceid_devicekeys", "onetimekeyid_onetimekey", "fallbackkeyid_fallbackkey")

_POSITION_BYTES = len(u64(0))

CROSS_SIGNING_FIELDS = (
    (MASTER, "master_keys"),
    (SELF_SIGNING, "self_signing_keys"),
    (USER_SIGNING, "user_signing_keys"),
)
"""Each cross-signing usage and the `/keys/query` response field that carries it."""


class Keys:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        devices: Devices,
        cross_signing: CrossSigning,
        key_changes: KeyChanges,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._devices = devices
        self._cross_signing = cross_signing
        self._key_changes = key_changes
        self.device_keys_changed: list[Callable[[WriteBatch, str, str], None]] = []
        """Called with (batch, user_id, device_id) inside the batch that stores a device's
        new keys: the federation outbox queues `m.device_list_update` there."""
        self._device_keys = db.tree("userdeviceid_devicekeys")
        self._one_time_keys = db.tree("onetimekeyid_onetimekey")
        self._fallback_keys = db.tree("fallbackkeyid_fallbackkey")

    # ---- uploading

    def upload(
        self,
        user_id: str,
        device_id: str,
        *,
        device_keys: object = None,
        one_time_keys: object = None,
        fallback_keys: object = None,
    ) -> dict[str, int]:
        """Publish the device's keys; returns its one-time key counts.

        Identity keys sent again with other signatures keep the ones already
        stored. A one-time key id already uploaded is skipped when the key is
        the same and refused (400) when it is not.
        """
        try:
            identity_keys = (
                None if device_keys is None else check_device_keys(device_keys, user_id, device_id)
            )
            new_one_time = (
                {} if one_time_keys is None else check_key_map(one_time_keys, "one_time_keys")
            )
            fallback = (
                {} if fallback_keys is None else check_key_map(fallback_keys, "fallback_keys")
            )
        except InvalidKey as error:
            raise invalid_param(f"{error}.") from None
        fallback_algorithms = [algorithm for algorithm, _ in fallback]
        if len(set(fallback_algorithms)) != len(fallback_algorithms):
            raise invalid_param("Upload at most one fallback key per algorithm.")
        stored_one_time = dict(self._one_time_keys_of(user_id, device_id))
        for name, key in list(new_one_time.items()):
            if name in stored_one_time:
                if stored_one_time[name] != key:
                    raise invalid_param(f"One-time key {':'.join(name)} already exists.")
                del new_one_time[name]

        with self._db.batch() as batch:
            if identity_keys is not None:
                self._store_device_keys(batch, user_id, device_id, identity_keys)
            if new_one_time:
                position = u64(self._globals.next_count())
                for (algorithm, key_id), key in new_one_time.items():
                    batch.put(
                        self._one_time_keys,
                        join_key(user_id, device_id, algorithm, position, key_id),
                        json.dumps(key).encode(),
                    )
            for (algorithm, key_id), key in fallback.items():
                self._store_fallback_key(batch, user_id, device_id, algorithm, key_id, key)
        return self.one_time_key_counts(user_id, device_id)

    def _store_device_keys(
        self, batch: WriteBatch, user_id: str, device_id: str, device_keys: KeyObject
    ) -> None:
        stored = self.device_keys(user_id, device_id)
        if stored is not None and signed_part(stored) == signed_part(device_keys):
            merged = dict(stored, signatures=_merged_signatures(stored, device_keys))
            if merged == stored:
                return
            device_keys = merged
        batch.put(self._device_keys, join_key(user_id, device_id), json.dumps(device_keys).encode())
        self._key_changes.record(batch, user_id)
        for hook in self.device_keys_changed:
            hook(batch, user_id, device_id)

    def _store_fallback_key(
        self,
        batch: WriteBatch,
        user_id: str,
        device_id: str,
        algorithm: str,
        key_id: str,
        key: object,
    ) -> None:
        """Replace the algorithm's fallback key (the same key sent again stays used if it was)."""
        stored = self._fallback_key(user_id, device_id, algorithm)
        used = stored == {"key_id": key_id, "key": key, "used": True}
        entry = {"key_id": key_id, "key": key, "used": used}
        batch.put(
            self._fallback_keys,
            join_key(user_id, device_id, algorithm),
            json.dumps(entry).encode(),
        )

    def add_device_signatures(
        self,
        batch: WriteBatch,
        user_id: str,
        device_id: str,
        signer: str,
        signatures: Mapping[str, str],
    ) -> None:
        """Merge `signer`'s verified `signatures` into the stored keys of the device."""
        device_keys = self.device_keys(user_id, device_id)
        if device_keys is None:
            raise KeyError(f"{user_id} has no keys for device {device_id}")
        device_keys.setdefault("signatures", {}).setdefault(signer, {}).update(signatures)
        batch.put(self._device_keys, join_key(user_id, device_id), json.dumps(device_keys).encode())

    def device_deleted(self, batch: WriteBatch, user_id: str, device_id: str) -> None:
        """`Devices.device_deleted` hook: a deleted device's keys go with it."""
        batch.delete(self._device_keys, join_key(user_id, device_id))
        device_prefix = join_key(user_id, device_id, b"")
        for tree in (self._one_time_keys, self._fallback_keys):
            for key in list(tree.keys_with_prefix(device_prefix)):
                batch.delete(tree, key)

    # ---- reading

    def device_keys(self, user_id: str, device_id: str) -> KeyObject | None:
        stored = self._device_keys.get(join_key(user_id, device_id))
        return None if stored is None else json.loads(stored)

    def device_keys_of(self, user_id: str) -> dict[str, KeyObject]:
        """The keys of every device of the user that uploaded some, by device id."""
        prefix = join_key(user_id, b"")
        return {
            key[len(prefix) :].decode(): json.loads(value)
            for key, value in self._device_keys.iter_prefix(prefix)
        }

    def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]:
        """Unclaimed one-time keys of the device, per algorithm (algorithms with none left out)."""
        counts: dict[str, int] = {}
        for (algorithm, _), _ in self._one_time_keys_of(user_id, device_id):
            counts[algorithm] = counts.get(algorithm, 0) + 1
        return counts

    def unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]:
        """The algorithms whose fallback key no claim has handed out yet."""
        prefix = join_key(user_id, device_id, b"")
        return [
            key[len(prefix) :].decode()
            for key, value in self._fallback_keys.iter_prefix(prefix)
            if not json.loads(value)["used"]
        ]

    def _one_time_keys_of(
        self, user_id: str, device_id: str
    ) -> Iterator[tuple[tuple[str, str], object]]:
        """((algorithm, key id), key) of the device's one-time keys."""
        prefix = join_key(user_id, device_id, b"")
        for key, value in self._one_time_keys.iter_prefix(prefix):
            algorithm, _, rest = key[len(prefix) :].partition(SEPARATOR)
            key_id = rest[_POSITION_BYTES + 1 :]
            yield (algorithm.decode(), key_id.decode()), json.loads(value)

    def _fallback_key(self, user_id: str, device_id: str, algorithm: str) -> dict[str, Any] | None:
        stored = self._fallback_keys.get(join_key(user_id, device_id, algorithm))
        return None if stored is None else json.loads(stored)

    # ---- query and claim

    def query(self, viewer: str | None, wanted: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """The `/keys/query` answer for `viewer`: `wanted` maps users to device ids (none: all).

        Each key shows only the signatures `viewer` may see; the user-signing
        key only to its owner. `viewer=None` is another server: its users
        see what their owners signed, and device names stay here. Users of
        other servers are left out (`remote_keys` asks their servers).
        """
        response: dict[str, Any] = {"device_keys": {}, "failures": {}}
        for _, field in CROSS_SIGNING_FIELDS:
            response[field] = {}
        for user_id, device_ids in wanted.items():
            if not self._globals.is_ours(server_name_of(user_id)):
                continue
            response["device_keys"][user_id] = self._queried_devices(viewer, user_id, device_ids)
            for usage, field in CROSS_SIGNING_FIELDS:
                if usage == USER_SIGNING and user_id != viewer:
                    continue
                key = self._cross_signing.key(user_id, usage)
                if key is not None:
                    response[field][user_id] = visible_signatures(key, user_id, viewer)
        return response

    def _queried_devices(
        self, viewer: str | None, user_id: str, device_ids: Sequence[str]
    ) -> dict[str, KeyObject]:
        if device_ids:
            found = {d: self.device_keys(user_id, d) for d in dict.fromkeys(device_ids)}
            keys = {d: k for d, k in found.items() if k is not None}
        else:
            keys = self.device_keys_of(user_id)
        shown = {}
        for device_id, device_keys in keys.items():
            device_keys = visible_signatures(device_keys, user_id, viewer)
            device = self._devices.get(user_id, device_id) if viewer is not None else None
            # keys.yaml `DeviceInformation`: `unsigned` always there (sytest and
            # Synapse), the display name in it only when the device has one.
            device_keys["unsigned"] = {}
            if device is not None and device.display_name is not None:
                device_keys["unsigned"] = {"device_display_name": device.display_name}
            shown[device_id] = device_keys
        return shown

    def claim(self, wanted: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """The `/keys/claim` answer: a one-time key per (user, device, algorithm) asked for.

        The oldest one-time key is taken and deleted; with none left, the
        fallback key is handed out (again) and marked used. Devices with
        neither are left out, and so are users of other servers
        (`remote_keys` claims theirs).
        """
        claimed: dict[str, dict[str, dict[str, object]]] = {}
        failures: dict[str, object] = {}
        with self._db.batch() as batch:
            for user_id, algorithms in wanted.items():
                if not self._globals.is_ours(server_name_of(user_id)):
                    continue
                for device_id, algorithm in algorithms.items():
                    key = self._take_one_time_key(
                        batch, user_id, device_id, algorithm
                    ) or self._use_fallback_key(batch, user_id, device_id, algorithm)
                    if key is not None:
                        claimed.setdefault(user_id, {})[device_id] = key
        return {"one_time_keys": claimed, "failures": failures}

    def _take_one_time_key(
        self, batch: WriteBatch, user_id: str, device_id: str, algorithm: str
    ) -> dict[str, object] | None:
        prefix = join_key(user_id, device_id, algorithm, b"")
        oldest = next(self._one_time_keys.iter_prefix(prefix), None)
        if oldest is None:
            return None
        key, value = oldest
        batch.delete(self._one_time_keys, key)
        key_id = key[len(prefix) + _POSITION_BYTES + 1 :].decode()
        return {f"{algorithm}:{key_id}": json.loads(value)}

    def _use_fallback_key(
        self, batch: WriteBatch, user_id: str, device_id: str, algorithm: str
    ) -> dict[str, object] | None:
        entry = self._fallback_key(user_id, device_id, algorithm)
        if entry is None:
            return None
        if not entry["used"]:
            entry["used"] = True
            batch.put(
                self._fallback_keys,
                join_key(user_id, device_id, algorithm),
                json.dumps(entry).encode(),
            )
        return {f"{algorithm}:{entry['key_id']}": entry["key"]}


def _merged_signatures(stored: KeyObject, uploaded: KeyObject) -> dict[str, dict[str, str]]:
    signatures = {signer: dict(by_key) for signer, by_key in stored.get("signatures", {}).items()}
    for signer, by_key in uploaded.get("signatures", {}).items():
        signatures.setdefault(signer, {}).update(by_key)
    return signatures
