"""Other servers' users' device lists, kept current from their EDUs.

Spec: `content/server-server-api.md`, "Device Management": a server sends
`m.device_list_update` (one device added, changed or deleted, numbered by
`stream_id`, chained by `prev_id`) and `m.signing_key_update` (cross-signing
keys) to every server sharing a room with the user. An update whose
`prev_id` we do not know means one was lost: the whole list is fetched again
with `GET /_matrix/federation/v1/user/devices/{userId}` (Synapse #18550:
lists that silently go stale are the field's failure).

Tree `userid_remotedevicelist`: user → `{"stream_id", "devices": {device id:
{"keys"?, "device_display_name"?}}, "master_key"?, "self_signing_key"?}`.
Every change also goes into the key-change index (`KeyChanges.record`), so
local users who share a room see the user in `device_lists.changed` and ask
for the new keys. Resyncs run in the background (`run`), never inside the
`/send` that brought the update.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import trio

from ...storage import Database
from ..key_changes import KeyChanges
from .client import FederationClient
from .edus import MalformedEdu
from .errors import FederationError
from .outbox import server_of

log = logging.getLogger(__name__)

TREES = ("userid_remotedevicelist",)

RESYNC_TIMEOUT_SECONDS = 30.0


def _remote_user(origin: str, content: dict[str, Any]) -> str:
    user_id = content.get("user_id")
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        raise MalformedEdu("`user_id` is not a user id")
    if server_of(user_id) != origin:
        raise MalformedEdu(f"{user_id} is not a user of {origin}")
    return user_id


def _key_object(content: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = content.get(field)
    if value is not None and not isinstance(value, dict):
        raise MalformedEdu(f"`{field}` is not an object")
    return value


class RemoteDeviceLists:
    def __init__(self, db: Database, client: FederationClient, key_changes: KeyChanges) -> None:
        self._db = db
        self._client = client
        self._key_changes = key_changes
        self._lists = db.tree("userid_remotedevicelist")
        self._resync_wanted: set[str] = set()
        self._wake = trio.Event()

    def device_list(self, user_id: str) -> dict[str, Any] | None:
        """What we know of a remote user's devices and cross-signing keys."""
        stored = self._lists.get(user_id.encode())
        return json.loads(stored) if stored is not None else None

    # ---- EDUs in

    async def device_list_update(self, origin: str, content: dict[str, Any]) -> None:
        """The `m.device_list_update` handler."""
        user_id = _remote_user(origin, content)
        device_id = content.get("device_id")
        stream_id = content.get("stream_id")
        prev_ids = content.get("prev_id") or []
        if not isinstance(device_id, str) or not isinstance(stream_id, int):
            raise MalformedEdu("`device_id` or `stream_id` is missing")
        if not isinstance(prev_ids, list) or not all(isinstance(p, int) for p in prev_ids):
            raise MalformedEdu("`prev_id` is not a list of stream ids")
        keys = _key_object(content, "keys")
        stored = self.device_list(user_id)
        known_stream = stored.get("stream_id") if stored is not None else None
        if known_stream is not None and stream_id <= known_stream:
            return  # seen already (a retried transaction)
        if prev_ids and known_stream not in prev_ids:
            self._want_resync(user_id)
            return
        record = stored or {"devices": {}}
        record["stream_id"] = stream_id
        if content.get("deleted") is True:
            record["devices"].pop(device_id, None)
        else:
            device: dict[str, Any] = {}
            if keys is not None:
                device["keys"] = keys
            if isinstance(content.get("device_display_name"), str):
                device["device_display_name"] = content["device_display_name"]
            record["devices"][device_id] = device
        self._store(user_id, record)

    async def signing_key_update(self, origin: str, content: dict[str, Any]) -> None:
        """The `m.signing_key_update` handler."""
        user_id = _remote_user(origin, content)
        record = self.device_list(user_id) or {"stream_id": None, "devices": {}}
        changed = False
        for field in ("master_key", "self_signing_key"):
            key = _key_object(content, field)
            if key is not None:
                record[field] = key
                changed = True
        if changed:
            self._store(user_id, record)

    def _store(self, user_id: str, record: dict[str, Any]) -> None:
        with self._db.batch() as batch:
            batch.put(self._lists, user_id.encode(), json.dumps(record).encode())
            self._key_changes.record(batch, user_id)

    # ---- resyncing

    def _want_resync(self, user_id: str) -> None:
        self._resync_wanted.add(user_id)
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch the whole device list of users whose updates had a gap, until cancelled."""
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._resync_wanted:
                await self.resync(self._resync_wanted.pop())

    async def resync(self, user_id: str) -> None:
        """Replace what we know of `user_id`'s devices with their server's answer."""
        path = f"/_matrix/federation/v1/user/devices/{quote(user_id, safe='')}"
        try:
            answer = await self._client.request(
                server_of(user_id), "GET", path, timeout=RESYNC_TIMEOUT_SECONDS
            )
        except FederationError as error:
            log.info("cannot resync the device list of %s: %s", user_id, error)
            return
        if not isinstance(answer, dict) or not isinstance(answer.get("stream_id"), int):
            log.info("%s's server answered no device list", user_id)
            return
        devices = {}
        for device in answer.get("devices") or []:
            if isinstance(device, dict) and isinstance(device.get("device_id"), str):
                devices[device["device_id"]] = {
                    field: device[field]
                    for field in ("keys", "device_display_name")
                    if field in device
                }
        record: dict[str, Any] = {"stream_id": answer["stream_id"], "devices": devices}
        for field in ("master_key", "self_signing_key"):
            if isinstance(answer.get(field), dict):
                record[field] = answer[field]
        self._store(user_id, record)
