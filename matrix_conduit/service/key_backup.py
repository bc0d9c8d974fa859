"""Server-side key backups: encrypted room keys a user's devices store and fetch.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
"Server-side key backups" (keys are written only to the newest backup
version; which of two keys for a session is kept) and
`data/api/client-server/key_backup.yaml` (`/room_keys/version`,
`/room_keys/keys`, `etag` and `count`).

The server never sees a key: `auth_data` and `session_data` are opaque to
it. Versions are numbers counted per user and never reused, so deleting a
version that was deleted before can succeed (key_backup.yaml) while one that
never existed is 404.

Trees:
- `userid_lastbackupversion`: user → the last version number handed out.
- `backupid_backup`: user | version → `{"algorithm", "auth_data", "count",
  "etag"}`; `count` and `etag` change in the batch that changes the keys.
- `backupkeyid_backup`: user | version | room | session → the `KeyBackupData`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core.digits import parse_decimal
from ..errors import MatrixError, bad_json, invalid_param, missing_param, not_found
from ..storage import Database, WriteBatch
from ..storage.kv import SEPARATOR, from_u64, join_key, u64

TREES = ("userid_lastbackupversion", "backupid_backup", "backupkeyid_backup")

KeyData = dict[str, Any]
RoomKeys = dict[str, dict[str, KeyData]]
"""Room id → session id → key data."""

_KEY_DATA_FIELDS = (
    ("first_message_index", int),
    ("forwarded_count", int),
    ("is_verified", bool),
    ("session_data", dict),
)


def check_key_data(data: object) -> KeyData:
    """A `KeyBackupData` object, or the 400 that says what is missing or wrong."""
    if not isinstance(data, dict):
        raise bad_json("Key data must be a JSON object.")
    for field, kind in _KEY_DATA_FIELDS:
        if field not in data:
            raise missing_param(field)
        value = data[field]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad_json(f"`{field}` must be of type {kind.__name__}.")
    return data


def replaces(new: KeyData, old: KeyData) -> bool:
    """Whether `new` takes the place of the stored `old` key for the same session.

    The spec's order: a verified key beats an unverified one, then the lower
    `first_message_index` wins, then the lower `forwarded_count`; on a tie
    the stored key stays.
    """

    def rank(key: KeyData) -> tuple[bool, int, int]:
        return (not key["is_verified"], key["first_message_index"], key["forwarded_count"])

    return rank(new) < rank(old)


def _version_number(version: str) -> int | None:
    return parse_decimal(version)


class KeyBackup:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_version = db.tree("userid_lastbackupversion")
        self._backups = db.tree("backupid_backup")
        self._keys = db.tree("backupkeyid_backup")

    # ---- versions

    def create(self, user_id: str, algorithm: str, auth_data: dict[str, Any]) -> str:
        """A new backup version, which becomes the one keys are written to."""
        last = self._last_version.get(user_id.encode())
        number = (from_u64(last) if last is not None else 0) + 1
        backup = {"algorithm": algorithm, "auth_data": auth_data, "count": 0, "etag": 0}
        with self._db.batch() as batch:
            batch.put(self._last_version, user_id.encode(), u64(number))
            self._put_backup(batch, user_id, number, backup)
        return str(number)

    def info(self, user_id: str, version: str | None) -> dict[str, Any]:
        """The backup `version`, or the newest one when None; 404 when there is none."""
        number, backup = self._existing(user_id, version)
        return {
            "algorithm": backup["algorithm"],
            "auth_data": backup["auth_data"],
            "count": backup["count"],
            "etag": str(backup["etag"]),
            "version": str(number),
        }

    def update(
        self,
        user_id: str,
        version: str,
        algorithm: str,
        auth_data: dict[str, Any],
        body_version: str | None,
    ) -> None:
        """Replace the `auth_data` of a backup; its algorithm cannot change."""
        number, backup = self._existing(user_id, version)
        if body_version is not None and body_version != version:
            raise invalid_param("The `version` in the body is not the one in the path.")
        if algorithm != backup["algorithm"]:
            raise invalid_param("The algorithm of a backup cannot change.")
        backup["auth_data"] = auth_data
        with self._db.batch() as batch:
            self._put_backup(batch, user_id, number, backup)

    def delete(self, user_id: str, version: str) -> None:
        """Delete a backup and all its keys; a version deleted before is no error."""
        number = _version_number(version)
        last = self._last_version.get(user_id.encode())
        if number is None or last is None or not 0 < number <= from_u64(last):
            raise not_found("Unknown backup version.")
        with self._db.batch() as batch:
            batch.delete(self._backups, join_key(user_id, u64(number)))
            for key in list(self._keys.keys_with_prefix(join_key(user_id, u64(number), b""))):
                batch.delete(self._keys, key)

    # ---- keys

    def put_keys(
        self, user_id: str, version: str, rooms: Mapping[str, Mapping[str, KeyData]]
    ) -> dict[str, Any]:
        """Store keys in the newest backup, keeping the better key of a session.

        Returns `{"etag", "count"}`. Writing to an older version is 403
        `M_WRONG_ROOM_KEYS_VERSION` with the `current_version`.
        """
        number, backup = self._existing(user_id, None)
        if version != str(number):
            raise MatrixError(
                403,
                "M_WRONG_ROOM_KEYS_VERSION",
                "Keys can only be stored in the current backup version.",
                current_version=str(number),
            )
        changed = False
        with self._db.batch() as batch:
            for room_id, sessions in rooms.items():
                for session_id, data in sessions.items():
                    key = join_key(user_id, u64(number), room_id, session_id)
                    stored = self._keys.get(key)
                    if stored is not None and not replaces(data, json.loads(stored)):
                        continue
                    batch.put(self._keys, key, json.dumps(data).encode())
                    if stored is None:
                        backup["count"] += 1
                    changed = True
            if changed:
                backup["etag"] += 1
                self._put_backup(batch, user_id, number, backup)
        return self._counts(backup)

    def get_keys(self, user_id: str, version: str, room_id: str | None = None) -> RoomKeys:
        """The keys of a backup version (of one room when given), by room and session."""
        number, _ = self._existing(user_id, version)
        prefix = self._key_prefix(user_id, number, room_id)
        backup_prefix = join_key(user_id, u64(number), b"")
        rooms: RoomKeys = {}
        for key, value in self._keys.iter_prefix(prefix):
            room, _, session = key[len(backup_prefix) :].partition(SEPARATOR)
            rooms.setdefault(room.decode(), {})[session.decode()] = json.loads(value)
        return rooms

    def get_key(self, user_id: str, version: str, room_id: str, session_id: str) -> KeyData | None:
        """The key of one session in a backup version, if it has one."""
        number, _ = self._existing(user_id, version)
        stored = self._keys.get(join_key(user_id, u64(number), room_id, session_id))
        return None if stored is None else json.loads(stored)

    def delete_keys(
        self,
        user_id: str,
        version: str,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """Delete the keys of a backup version, of one room, or one session; `{"etag", "count"}`."""
        number, backup = self._existing(user_id, version)
        if session_id is not None and room_id is not None:
            key = join_key(user_id, u64(number), room_id, session_id)
            doomed = [key] if key in self._keys else []
        else:
            doomed = list(self._keys.keys_with_prefix(self._key_prefix(user_id, number, room_id)))
        if doomed:
            with self._db.batch() as batch:
                for key in doomed:
                    batch.delete(self._keys, key)
                backup["count"] -= len(doomed)
                backup["etag"] += 1
                self._put_backup(batch, user_id, number, backup)
        return self._counts(backup)

    # ---- storage

    def _existing(self, user_id: str, version: str | None) -> tuple[int, dict[str, Any]]:
        if version is None:
            newest = self._backups.last(join_key(user_id, b""))
            if newest is None:
                raise not_found("No backup exists.")
            key, stored = newest
            return from_u64(key[-len(u64(0)) :]), json.loads(stored)
        number = _version_number(version)
        stored = None if number is None else self._backups.get(join_key(user_id, u64(number)))
        if number is None or stored is None:
            raise not_found("Unknown backup version.")
        return number, json.loads(stored)

    def _put_backup(
        self, batch: WriteBatch, user_id: str, number: int, backup: dict[str, Any]
    ) -> None:
        batch.put(self._backups, join_key(user_id, u64(number)), json.dumps(backup).encode())

    @staticmethod
    def _key_prefix(user_id: str, number: int, room_id: str | None) -> bytes:
        if room_id is None:
            return join_key(user_id, u64(number), b"")
        return join_key(user_id, u64(number), room_id, b"")

    @staticmethod
    def _counts(backup: dict[str, Any]) -> dict[str, Any]:
        return {"etag": str(backup["etag"]), "count": backup["count"]}
