"""Other servers' users' device lists, kept current from their EDUs; the cache `/keys/query` reads.

Spec: `content/server-server-api.md`, "Device Management": a server sends
`m.device_list_update` (one device added, changed or deleted, numbered by
`stream_id`, chained by `prev_id`) and `m.signing_key_update` (cross-signing
keys) to every server sharing a room with the user. An update whose
`prev_id` we do not know means one was lost: the whole list is fetched again
with `GET /_matrix/federation/v1/user/devices/{userId}` (Synapse #18550:
lists that silently go stale are the field's failure). So is one without
`prev_id` while we hold no whole list: the first a server sends us names
one device, not the others (Synapse resyncs on those too). A resync that
finds the server down is tried again later (`RESYNC_RETRY_SECONDS`).

Tree `userid_remotedevicelist`: user → `{"stream_id", "devices": {device id:
{"keys"?, "device_display_name"?}}, "master_key"?, "self_signing_key"?,
"synced", "stale"}`. `synced`: the devices are the whole list (from a
resync or a full `/user/keys/query` of `remote_keys`), not only the ones
updates happened to name. `stale`: an update
was missed and a resync is wanted (written first, so a restart resumes it).
`/keys/query` answers from a record only while it is synced, not stale and
the user is tracked: shares a room with one of our users. When they stop
sharing every room no more updates come, so the record is dropped in the
batch of the membership change that ended it (`membership_changed`).

Device keys are checked before they are kept: they must be the named
device's, signed by its own ed25519 key ("Key and signature security");
others are dropped (the device stays, without keys) and logged once.
Every change of what is known goes into the key-change index
(`KeyChanges.record`), so local users who share a room see the user in
`device_lists.changed` and ask for the new keys. Resyncs run in the
background (`run`), never inside the `/send` that brought the update.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import trio

from ...core.e2e_keys import (
    ED25519,
    MASTER,
    SELF_SIGNING,
    KeyObject,
    check_cross_signing_key,
    check_device_keys,
    verify_key_signature,
)
from ...core.errors import ProtocolError
from ...lru import LRUCache
from ...storage import Database, WriteBatch
from ..globals import Globals
from ..key_changes import KeyChanges
from ..rooms.event_context import EventContext
from ..rooms.state_cache import StateCache
from ..rooms.timeline import Event
from .client import FederationClient
from .edus import MalformedEdu
from .errors import FederationError, NotReadyForRetry, RemoteError, Unreachable
from .outbox import server_of

log = logging.getLogger(__name__)

TREES = ("userid_remotedevicelist",)

RESYNC_TIMEOUT_SECONDS = 30.0
RESYNC_RETRY_SECONDS = 60.0
"""How long a resync that found the server down waits before it is tried again (the
client's backoff may make the retry fail fast until the server is back)."""
CONCURRENT_RESYNCS = 10
LOGGED_BAD_KEYS = 1024
"""Bad device keys remembered as logged already (each is logged once)."""

CROSS_SIGNING_FIELDS = ((MASTER, "master_key"), (SELF_SIGNING, "self_signing_key"))
"""The cross-signing keys other servers share: the user-signing key stays on its server."""

_KNOWN_FIELDS = ("devices", "master_key", "self_signing_key")
"""What a record says about the user (the rest is bookkeeping): a change here is news."""


def verified_device_keys(keys: object, user_id: str, device_id: str) -> KeyObject | None:
    """`keys` if they are `device_id`'s `DeviceKeys`, self-signed by its ed25519 key; else None."""
    try:
        checked = check_device_keys(keys, user_id, device_id)
        key_id = f"{ED25519}:{device_id}"
        verify_key_signature(checked, user_id, key_id, checked["keys"][key_id])
    except ProtocolError:
        return None
    return checked


def checked_cross_signing_key(key: object, user_id: str, usage: str) -> KeyObject | None:
    """`key` if it is `user_id`'s cross-signing key for `usage`; else None."""
    try:
        check_cross_signing_key(key, user_id, usage)
    except ProtocolError:
        return None
    assert isinstance(key, dict)
    return key


def unsigned_of(keys: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `unsigned` object of keys another server sent (empty unless it is an object)."""
    unsigned = keys.get("unsigned")
    return unsigned if isinstance(unsigned, dict) else {}


def _remote_user(origin: str, content: dict[str, Any]) -> str:
    user_id = content.get("user_id")
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        raise MalformedEdu("`user_id` is not a user id")
    if server_of(user_id) != origin:
        raise MalformedEdu(f"{user_id} is not a user of {origin}")
    return user_id


def _key_object(content: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    value = content.get(field)
    if value is not None and not isinstance(value, dict):
        raise MalformedEdu(f"`{field}` is not an object")
    return value


def _is_synced(record: Mapping[str, Any]) -> bool:
    """Records written before `synced` existed were whole lists when they had a stream id."""
    return bool(record.get("synced", record.get("stream_id") is not None))


class RemoteDeviceLists:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        client: FederationClient,
        key_changes: KeyChanges,
        state_cache: StateCache,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._client = client
        self._key_changes = key_changes
        self._state_cache = state_cache
        self._lists = db.tree("userid_remotedevicelist")
        self._resync_wanted: set[str] = set()
        self._resyncing: set[str] = set()
        self._retry: set[str] = set()
        """Resyncs that found the server down, tried again at `_retry_at`."""
        self._retry_at = math.inf
        self._wake = trio.Event()
        self._logged_bad_keys: LRUCache[tuple[str, str, str], bool] = LRUCache(LOGGED_BAD_KEYS)

    def device_list(self, user_id: str) -> dict[str, Any] | None:
        """What we know of a remote user's devices and cross-signing keys."""
        stored = self._lists.get(user_id.encode())
        return json.loads(stored) if stored is not None else None

    # ---- the cache `/keys/query` reads

    def is_tracked(self, user_id: str) -> bool:
        """Whether `user_id` shares a room with one of our users (so their server updates us)."""
        return any(
            self._has_local_member(room_id, ignoring=None)
            for room_id in list(self._state_cache.joined_rooms(user_id))
        )

    def cached(self, user_id: str) -> dict[str, Any] | None:
        """The user's record if `/keys/query` may answer from it: whole, current and tracked."""
        record = self.device_list(user_id)
        if record is None or not _is_synced(record) or record.get("stale"):
            return None
        return record if self.is_tracked(user_id) else None

    def fetched(
        self,
        user_id: str,
        before: dict[str, Any] | None,
        devices: Mapping[str, KeyObject],
        cross_signing: Mapping[str, KeyObject],
    ) -> None:
        """Keep what the user's server answered to a full `/user/keys/query` (already checked).

        Only for a tracked user, and only if nothing was stored for them
        since `before` was read (an update that arrived meanwhile may be
        newer than the answer). The stream id is unknown, so the next update
        naming a `prev_id` brings a resync.
        """
        if self.device_list(user_id) != before or not self.is_tracked(user_id):
            return
        record: dict[str, Any] = {
            "stream_id": None,
            "devices": {
                device_id: _device_entry(keys, unsigned_of(keys))
                for device_id, keys in devices.items()
            },
            "synced": True,
            "stale": False,
        }
        for _, field in CROSS_SIGNING_FIELDS:
            if field in cross_signing:
                record[field] = cross_signing[field]
        self._store(user_id, record)

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
            self._want_resync(user_id, stored)
            return
        if not prev_ids and (stored is None or not _is_synced(stored)):
            # The first update this server sends us: it says nothing of the other devices.
            self._want_resync(user_id, stored)
            return
        assert stored is not None
        record = stored
        record["stream_id"] = stream_id
        if content.get("deleted") is True:
            record["devices"].pop(device_id, None)
        else:
            display_name = content.get("device_display_name")
            record["devices"][device_id] = _device_entry(
                self._checked_keys(keys, user_id, device_id),
                {"device_display_name": display_name} if isinstance(display_name, str) else {},
            )
        self._store(user_id, record)

    async def signing_key_update(self, origin: str, content: dict[str, Any]) -> None:
        """The `m.signing_key_update` handler."""
        user_id = _remote_user(origin, content)
        record = self.device_list(user_id) or {"stream_id": None, "devices": {}, "synced": False}
        changed = False
        for usage, field in CROSS_SIGNING_FIELDS:
            key = _key_object(content, field)
            if key is None:
                continue
            if checked_cross_signing_key(key, user_id, usage) is None:
                raise MalformedEdu(f"`{field}` is not a {usage} key of {user_id}")
            record[field] = key
            changed = True
        if changed:
            self._store(user_id, record)

    def _checked_keys(self, keys: object, user_id: str, device_id: str) -> KeyObject | None:
        """The device's keys if they are its own and self-signed; otherwise None, logged once."""
        if keys is None:
            return None
        checked = verified_device_keys(keys, user_id, device_id)
        if checked is None:
            self.log_bad_keys(user_id, device_id, keys)
        return checked

    def log_bad_keys(self, user_id: str, device_id: str, keys: object) -> None:
        """Say once (per user, device and keys) that its server sent keys we dropped."""
        fingerprint = json.dumps(keys, sort_keys=True, default=str)[:512]
        if self._logged_bad_keys.get((user_id, device_id, fingerprint)) is None:
            self._logged_bad_keys.put((user_id, device_id, fingerprint), True)
            log.warning(
                "dropping device keys of %s's device %s from %s: not that device's, or not "
                "self-signed with its ed25519 key",
                user_id,
                device_id,
                server_of(user_id),
            )

    def _store(self, user_id: str, record: dict[str, Any]) -> None:
        before = self.device_list(user_id) or {}
        with self._db.batch() as batch:
            batch.put(self._lists, user_id.encode(), json.dumps(record).encode())
            if any(before.get(field) != record.get(field) for field in _KNOWN_FIELDS):
                self._key_changes.record(batch, user_id)

    # ---- tracking ends

    def membership_changed(
        self, event: Event, context: EventContext, position: int | None, batch: WriteBatch
    ) -> None:
        """`Timeline.appending` hook: forget the lists of users we no longer share a room with.

        Runs before the membership is written, so the state cache still holds
        the membership this event ends.
        """
        if event.get("type") != "m.room.member" or context.current_state is None:
            return
        target = event.get("state_key")
        membership = (event.get("content") or {}).get("membership")
        if not isinstance(target, str) or membership == "join":
            return
        room_id = event["room_id"]
        if not self._state_cache.is_joined(target, room_id):
            return
        with_local: dict[str, bool] = {}  # room → has a local member: asked once per room
        if self._globals.is_ours(server_of(target)):
            if self._has_local_member(room_id, ignoring=target):
                return
            candidates = [
                member
                for member in self._state_cache.joined_members(room_id)
                if not self._globals.is_ours(server_of(member))
                and self._lists.get(member.encode()) is not None
            ]
            for member in candidates:
                if not self._shares_another_room(member, room_id, with_local):
                    batch.delete(self._lists, member.encode())
        elif self._lists.get(target.encode()) is not None and not self._shares_another_room(
            target, room_id, with_local
        ):
            batch.delete(self._lists, target.encode())

    def _has_local_member(self, room_id: str, *, ignoring: str | None) -> bool:
        return any(
            member != ignoring and self._globals.is_ours(server_of(member))
            for member in self._state_cache.joined_members(room_id)
        )

    def _shares_another_room(self, user_id: str, room_id: str, with_local: dict[str, bool]) -> bool:
        for other in list(self._state_cache.joined_rooms(user_id)):
            if other == room_id:
                continue
            if other not in with_local:
                with_local[other] = self._has_local_member(other, ignoring=None)
            if with_local[other]:
                return True
        return False

    # ---- resyncing

    def _want_resync(self, user_id: str, stored: dict[str, Any] | None) -> None:
        """Mark the record stale (so `/keys/query` asks the server meanwhile) and queue a resync.

        Without a record there is nothing to mark: `/keys/query` asks the
        server anyway, and the resync writes the first record.
        """
        if stored is not None and not stored.get("stale"):
            stored["stale"] = True
            with self._db.batch() as batch:
                batch.put(self._lists, user_id.encode(), json.dumps(stored).encode())
        self._resync_wanted.add(user_id)
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch the whole device list of users whose updates had a gap, until cancelled.

        Resumes the resyncs a restart interrupted (records still stale), and
        tries those that found the server down again a while later: a list
        that stays stale keeps our clients from ever seeing the change.
        """
        for key, value in self._lists.iter_prefix(b""):
            if json.loads(value).get("stale"):
                self._resync_wanted.add(key.decode())
        task_status.started()
        limiter = trio.CapacityLimiter(CONCURRENT_RESYNCS)
        async with trio.open_nursery() as nursery:
            while True:
                if self._retry and trio.current_time() >= self._retry_at:
                    self._resync_wanted |= self._retry
                    self._retry.clear()
                pending = self._resync_wanted - self._resyncing
                if not pending:
                    with trio.move_on_at(self._retry_at if self._retry else math.inf):
                        await self._wake.wait()
                    self._wake = trio.Event()
                    continue
                for user_id in pending:
                    self._resync_wanted.discard(user_id)
                    self._resyncing.add(user_id)
                    nursery.start_soon(self._resync_limited, user_id, limiter)

    async def _resync_limited(self, user_id: str, limiter: trio.CapacityLimiter) -> None:
        try:
            async with limiter:
                if not await self.resync(user_id):
                    if not self._retry:
                        self._retry_at = trio.current_time() + RESYNC_RETRY_SECONDS
                        self._wake.set()  # the loop's next wake-up moves earlier
                    self._retry.add(user_id)
        finally:
            self._resyncing.discard(user_id)
            if user_id in self._resync_wanted:
                self._wake.set()

    async def resync(self, user_id: str) -> bool:
        """Replace what we know of `user_id`'s devices with their server's answer.

        False when the server could not be asked (down, backed off, 5xx): worth
        trying again. A refusal or an answer that is no device list is final.
        """
        path = f"/_matrix/federation/v1/user/devices/{quote(user_id, safe='')}"
        try:
            answer = await self._client.request(
                server_of(user_id), "GET", path, timeout=RESYNC_TIMEOUT_SECONDS
            )
        except RemoteError as error:
            log.info("cannot resync the device list of %s: %s", user_id, error)
            return error.status < 500
        except (Unreachable, NotReadyForRetry) as error:
            log.info("cannot resync the device list of %s yet: %s", user_id, error)
            return False
        except FederationError as error:
            log.info("cannot resync the device list of %s: %s", user_id, error)
            return True
        if not isinstance(answer, dict) or not isinstance(answer.get("stream_id"), int):
            log.info("%s's server answered no device list", user_id)
            return True
        devices = {}
        for device in answer.get("devices") or []:
            if isinstance(device, dict) and isinstance(device.get("device_id"), str):
                device_id = device["device_id"]
                display_name = device.get("device_display_name")
                devices[device_id] = _device_entry(
                    self._checked_keys(device.get("keys"), user_id, device_id),
                    {"device_display_name": display_name} if isinstance(display_name, str) else {},
                )
        record: dict[str, Any] = {
            "stream_id": answer["stream_id"],
            "devices": devices,
            "synced": True,
            "stale": False,
        }
        for usage, field in CROSS_SIGNING_FIELDS:
            key = checked_cross_signing_key(answer.get(field), user_id, usage)
            if key is not None:
                record[field] = key
        self._store(user_id, record)
        return True


def _device_entry(keys: KeyObject | None, unsigned: Mapping[str, Any]) -> dict[str, Any]:
    """A device as a record keeps it: its checked keys (if any) and its display name (if given)."""
    entry: dict[str, Any] = {}
    if keys is not None:
        entry["keys"] = {k: v for k, v in keys.items() if k != "unsigned"}
    display_name = unsigned.get("device_display_name")
    if isinstance(display_name, str):
        entry["device_display_name"] = display_name
    return entry
