"""EDUs our users cause, for the servers that should hear of them and no others.

Spec: `content/server-server-api.md`, "EDUs", "Typing Notifications",
"Receipts", "Presence", "Device Management" (`m.device_list_update`,
`m.signing_key_update`), "Send-to-device messaging"; the EDU schemas in
`data/api/server-server/definitions/event-schemas/`. EDU storms are a known
failure of other servers (`../shared/notes/federation-lessons.md`): each EDU
goes only to the servers of the rooms it concerns, and a newer typing,
receipt or presence update replaces a queued one (`queue_ephemeral`).

- `m.typing`, `m.receipt` (public ones), `m.presence`: in memory, to the
  servers of the room (presence: of every room shared with the user).
- `m.device_list_update`, `m.signing_key_update`: durable, queued in the
  batch of the change, to the servers sharing a room with the user. Their
  content is read when the transaction is built, so it holds the newest
  keys. Each user's updates are numbered with `stream_id` and chained by
  `prev_id` (`DeviceListStreams`, tree `userid_devicelistid`: user → the last
  stream id); a server that missed one sees an unknown `prev_id` and fetches
  the whole list (`EduContents.user_devices`).
  Display names of devices stay on this server (as in Synapse's default).
  When a join brings a server into an encrypted room for the first time,
  that server gets our members' devices (`DeviceListsForNewServers`).
- `m.direct_to_device`: durable, one EDU per destination server, queued in
  the batch of the `sendToDevice` request, with a `message_id` the receiver
  deduplicates on.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from ...core.e2e_keys import MASTER, SELF_SIGNING
from ...storage import Database, WriteBatch
from ...storage.kv import from_u64, u64
from ..cross_signing import CrossSigning
from ..devices import Devices
from ..globals import Globals
from ..keys import Keys
from ..presence import Presence
from ..rooms.event_context import EventContext
from ..rooms.state import RoomState
from ..rooms.state_cache import StateCache
from ..rooms.timeline import Event, Timeline
from .outbox import Item, Outbox, server_of
from .sender import FederationSender

TREES = ("userid_devicelistid",)


class DeviceListStreams:
    """Each local user's device list version: the `stream_id` of its latest change."""

    def __init__(self, db: Database, globals_: Globals) -> None:
        self._globals = globals_
        self._stream_ids = db.tree("userid_devicelistid")
        self._unwritten: dict[str, int] = {}
        """Stream ids handed out in batches not yet written: two devices deleted in one
        batch must chain, not both point to the stored id."""

    def current(self, user_id: str) -> int | None:
        """The user's latest stream id (None: no change since the tree exists)."""
        unwritten = self._unwritten.get(user_id)
        if unwritten is not None:
            return unwritten
        stored = self._stream_ids.get(user_id.encode())
        return from_u64(stored) if stored is not None else None

    def advance(self, batch: WriteBatch, user_id: str) -> tuple[int, int | None]:
        """A new stream id for the user, written in `batch`; and the one before it."""
        previous = self.current(user_id)
        stream_id = self._globals.next_count()
        self._unwritten[user_id] = stream_id
        batch.put(self._stream_ids, user_id.encode(), u64(stream_id))
        batch.after_commit(lambda: self._unwritten.pop(user_id, None))
        return stream_id, previous


class OutgoingEdus:
    def __init__(
        self,
        globals_: Globals,
        outbox: Outbox,
        sender: FederationSender,
        presence: Presence,
        streams: DeviceListStreams,
    ) -> None:
        self._globals = globals_
        self._outbox = outbox
        self._sender = sender
        self._presence = presence
        self._streams = streams

    def _is_ours(self, user_id: str) -> bool:
        return server_of(user_id) == self._globals.server_name

    # ---- in memory: typing, receipts, presence

    def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        """`Typing.changed` listener."""
        if not self._is_ours(user_id):
            return
        content = {"room_id": room_id, "user_id": user_id, "typing": typing}
        self._sender.queue_ephemeral(
            self._outbox.servers_in_room(room_id),
            ("m.typing", room_id, user_id),
            {"edu_type": "m.typing", "content": content},
        )

    def receipt_written(self, room_id: str, receipt: Mapping[str, Any]) -> None:
        """`Receipts.written` listener (public receipts only reach it)."""
        user_id = receipt["user_id"]
        if not self._is_ours(user_id):
            return
        data: dict[str, Any] = {"ts": receipt["ts"]}
        if "thread_id" in receipt:
            data["thread_id"] = receipt["thread_id"]
        receipt_type = receipt["receipt_type"]
        by_user = {user_id: {"event_ids": [receipt["event_id"]], "data": data}}
        self._sender.queue_ephemeral(
            self._outbox.servers_in_room(room_id),
            ("m.receipt", room_id, user_id, receipt_type, receipt.get("thread_id")),
            {"edu_type": "m.receipt", "content": {room_id: {receipt_type: by_user}}},
        )

    def presence_changed(self, user_id: str) -> None:
        """`Presence.changed` listener."""
        if not self._is_ours(user_id):
            return
        update = {"user_id": user_id, **self._presence.get(user_id)}
        update.setdefault("last_active_ago", 0)
        self._sender.queue_ephemeral(
            self._outbox.servers_sharing_a_room(user_id),
            ("m.presence", user_id),
            {"edu_type": "m.presence", "content": {"push": [update]}},
        )

    # ---- durable: device lists, cross-signing keys, to-device

    def device_list_changed(self, batch: WriteBatch, user_id: str, device_id: str) -> None:
        """`Devices.device_list_changed` hook, and `Keys` after new device keys."""
        if not self._is_ours(user_id):
            return
        stream_id, previous = self._streams.advance(batch, user_id)
        servers = self._outbox.servers_sharing_a_room(user_id)
        if not servers:
            return  # the version moved on all the same: a server that had it resyncs
        update = {
            "user_id": user_id,
            "device_id": device_id,
            "stream_id": stream_id,
            "prev_id": [previous] if previous is not None else [],
        }
        self._outbox.queue(batch, servers, {"device_list": update})

    def signing_keys_uploaded(self, batch: WriteBatch, user_id: str) -> None:
        """`CrossSigning.uploaded` hook."""
        if self._is_ours(user_id):
            servers = self._outbox.servers_sharing_a_room(user_id)
            self._outbox.queue(batch, servers, {"signing_keys": user_id})

    def send_to_device(
        self,
        batch: WriteBatch,
        sender: str,
        event_type: str,
        messages: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Queue `messages` (remote user → device id or `*` → content) in `batch`."""
        by_server: dict[str, dict[str, Any]] = {}
        for user_id, by_device in messages.items():
            by_server.setdefault(server_of(user_id), {})[user_id] = dict(by_device)
        for server, server_messages in by_server.items():
            content = {
                "sender": sender,
                "type": event_type,
                "message_id": secrets.token_urlsafe(16),
                "messages": server_messages,
            }
            edu = {"edu_type": "m.direct_to_device", "content": content}
            self._outbox.queue(batch, [server], {"edu": edu})


class DeviceListsForNewServers:
    """Our users' device lists for servers that start sharing a room with them.

    Spec: "Device Management": updates must be sent "when that user joins a
    room which contains servers which are not already receiving updates for
    that user's device list" (any room: to-device messages need the list
    too). The other way round, when another server's user brings it into
    an encrypted room of ours, it gets the lists of our members there
    (`../shared/notes/federation-lessons.md`: lists go stale unless they
    are sent when a server joins a shared encrypted room); unencrypted
    rooms are left to its own queries, since a big room would mean an
    update for each of its members. Each user the new server was not
    already hearing about gets one `m.device_list_update` per device, to
    that server only, at the user's current stream id and without
    `prev_id`: the receiver learns the devices at once, and one that keeps
    the whole list fetches it (`/user/devices`), since nothing before is
    chained; its later updates then chain. Other servers' chains are left
    alone.
    """

    def __init__(
        self,
        globals_: Globals,
        outbox: Outbox,
        devices: Devices,
        streams: DeviceListStreams,
        state_cache: StateCache,
        state: RoomState,
        timeline: Timeline,
    ) -> None:
        self._globals = globals_
        self._outbox = outbox
        self._devices = devices
        self._streams = streams
        self._state_cache = state_cache
        self._state = state
        self._timeline = timeline

    def _is_ours(self, user_id: str) -> bool:
        return server_of(user_id) == self._globals.server_name

    def member_joined(
        self, event: Event, context: EventContext, position: int | None, batch: WriteBatch
    ) -> None:
        """`Timeline.appending` hook. Runs before the join is written: the state cache still
        holds the membership before it."""
        if event.get("type") != "m.room.member" or position is None:
            return
        if (
            context.current_state is None
            or (event.get("content") or {}).get("membership") != "join"
        ):
            return
        user_id, room_id = event.get("state_key"), event["room_id"]
        if not isinstance(user_id, str) or self._state_cache.is_joined(user_id, room_id):
            return  # a profile change, not a join
        if self._is_ours(user_id):
            new_servers = self._outbox.servers_in_room(room_id)
            if (
                not new_servers
                and context.state_before is not None
                and not self._state_cache.joined_members(room_id)
            ):
                new_servers = self._servers_joined_in(context.state_before)  # our first join
            new_servers -= self._outbox.servers_sharing_a_room(user_id)
            self._queue_devices(batch, user_id, new_servers)
            return
        if ("m.room.encryption", "") not in self._state.current_state_ids(room_id):
            return
        server = server_of(user_id)
        if server in self._outbox.servers_in_room(room_id):
            return  # already in the room: it hears of our members there
        with_server: dict[str, bool] = {}  # room → has a member of `server`: asked once each
        for member in self._state_cache.joined_members(room_id):
            if self._is_ours(member) and not self._shares_a_room(member, server, with_server):
                self._queue_devices(batch, member, {server})

    def _shares_a_room(self, user_id: str, server: str, with_server: dict[str, bool]) -> bool:
        for room_id in list(self._state_cache.joined_rooms(user_id)):
            if room_id not in with_server:
                members = self._state_cache.joined_members(room_id)
                with_server[room_id] = any(server_of(member) == server for member in members)
            if with_server[room_id]:
                return True
        return False

    def _servers_joined_in(self, shortstatehash: int) -> set[str]:
        """Other servers with a member joined in that state: the room's servers when this
        server joins it, before the state cache knows of any of them."""
        servers = set()
        for (event_type, state_key), event_id in self._state.state_ids(shortstatehash).items():
            if event_type != "m.room.member" or server_of(state_key) in servers:
                continue
            event = self._timeline.get_event(event_id)
            if event is not None and (event.get("content") or {}).get("membership") == "join":
                servers.add(server_of(state_key))
        servers.discard(self._globals.server_name)
        return servers

    def _queue_devices(self, batch: WriteBatch, user_id: str, servers: set[str]) -> None:
        if not servers:
            return
        stream_id = self._streams.current(user_id) or 0
        for device_id in self._devices.device_ids(user_id):
            update = {
                "user_id": user_id,
                "device_id": device_id,
                "stream_id": stream_id,
                "prev_id": [],
            }
            self._outbox.queue(batch, servers, {"device_list": update})


class EduContents:
    """The EDUs that outbox items stand for, read when a transaction is built; and
    the whole device list other servers fetch when they missed an update."""

    def __init__(
        self,
        devices: Devices,
        keys: Keys,
        cross_signing: CrossSigning,
        streams: DeviceListStreams,
    ) -> None:
        self._devices = devices
        self._keys = keys
        self._cross_signing = cross_signing
        self._streams = streams

    def user_devices(self, user_id: str) -> dict[str, Any]:
        """The answer to `GET /_matrix/federation/v1/user/devices/{userId}` (user_devices.yaml).

        Every device that uploaded keys, with them: the spec requires `keys`
        of each device listed, and Synapse (which lists only those too) reads
        them from each, failing the whole query over a keyless one.
        `stream_id` is the version the next `m.device_list_update` names as
        its `prev_id`.
        """
        keys = self._keys.device_keys_of(user_id)
        devices = [
            {"device_id": device_id, "keys": keys[device_id]}
            for device_id in self._devices.device_ids(user_id)
            if device_id in keys
        ]
        answer: dict[str, Any] = {
            "user_id": user_id,
            "stream_id": self._streams.current(user_id) or 0,
            "devices": devices,
        }
        for usage, field in ((MASTER, "master_key"), (SELF_SIGNING, "self_signing_key")):
            key = self._cross_signing.key(user_id, usage)
            if key is not None:
                answer[field] = key
        return answer

    def build(self, item: Item) -> dict[str, Any] | None:
        """The EDU an outbox item stands for (the sender's `build_edu`)."""
        if "edu" in item:
            return item["edu"]
        if "device_list" in item:
            return self._device_list_update(item["device_list"])
        if "signing_keys" in item:
            return self._signing_key_update(item["signing_keys"])
        return None

    def _device_list_update(self, update: dict[str, Any]) -> dict[str, Any]:
        content = dict(update)
        user_id, device_id = update["user_id"], update["device_id"]
        if self._devices.get(user_id, device_id) is None:
            content["deleted"] = True
        else:
            keys = self._keys.device_keys(user_id, device_id)
            if keys is not None:
                content["keys"] = keys
        return {"edu_type": "m.device_list_update", "content": content}

    def _signing_key_update(self, user_id: str) -> dict[str, Any] | None:
        content: dict[str, Any] = {"user_id": user_id}
        for usage, field in ((MASTER, "master_key"), (SELF_SIGNING, "self_signing_key")):
            key = self._cross_signing.key(user_id, usage)
            if key is not None:
                content[field] = key
        if len(content) == 1:
            return None
        return {"edu_type": "m.signing_key_update", "content": content}
