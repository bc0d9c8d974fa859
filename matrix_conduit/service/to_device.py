"""Send-to-device messages: queued per device, delivered by `/sync` exactly once.

Spec: `content/client-server-api/modules/send_to_device.md` ("Server
behaviour": keep messages until delivered, list them in order of arrival,
delete them once the client syncs with the `next_batch` of the response that
carried them, at most 100 per response), `data/api/client-server/to_device.yaml`,
and `content/client-server-api/_index.md`, "Transaction identifiers" (scoped
to one device and one endpoint path).

Trees:
- `todeviceid_event`: user | device | position → `{"type", "sender",
  "content"}`. The position on the global counter orders arrival and tells
  which sync response a message belongs to.
- `todeviceid_deliveredthrough`: user | device | next_batch → the position
  of the last message that response carried, recorded when it carried only
  the first `DELIVERY_LIMIT`: syncing from that `next_batch` acknowledges
  messages up to there, not up to the token itself. Such a response also
  moves the counter on, so the response that follows has a `next_batch` of
  its own.
- `userdevicetxnid_todevice`: sender | device | event type | txnId → empty;
  a retransmitted request sends nothing again.

Messages for users on other servers are handed, in the same batch, to the
`remote_messages` hooks (the federation outbox sends them as
`m.direct_to_device` EDUs). Messages that came over federation are handed
to `send` with local recipients only, so none is passed on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..core.ids import server_name_of
from ..storage import Database, WriteBatch
from ..storage.kv import from_u64, join_key, u64
from .devices import Devices
from .globals import Globals
from .notifier import Notifier

TREES = ("todeviceid_event", "todeviceid_deliveredthrough", "userdevicetxnid_todevice")

DELIVERY_LIMIT = 100
"""Messages per `/sync` response (send_to_device.md recommends 100)."""

ALL_DEVICES = "*"

RemoteMessagesHook = Callable[[WriteBatch, str, str, dict[str, Mapping[str, Any]]], None]


class ToDevice:
    def __init__(
        self, db: Database, globals_: Globals, devices: Devices, notifier: Notifier
    ) -> None:
        self._db = db
        self._globals = globals_
        self._devices = devices
        self._notifier = notifier
        self._events = db.tree("todeviceid_event")
        self._delivered = db.tree("todeviceid_deliveredthrough")
        self._transactions = db.tree("userdevicetxnid_todevice")
        self.remote_messages: list[RemoteMessagesHook] = []
        self.local_messages: list[Callable[[WriteBatch, str, str, dict[str, Any]], None]] = []
        """Called with (batch, user, device, event) for each local message, in the `send`
        batch: appservices whose users it is for get it too (MSC4203)."""
        """Called with (batch, sender, event type, messages for users of other servers)
        inside the batch of a `send`: the federation outbox queues them there."""

    def send(
        self,
        sender: str,
        sender_device: str | None,
        event_type: str,
        txn_id: str,
        messages: Mapping[str, Mapping[str, Mapping[str, Any]]],
    ) -> None:
        """Queue `messages` (user → device id or `*` → content) for their recipients.

        Local ones get them in `/sync`; those of other servers go to the
        `remote_messages` hooks. Unknown users and devices are skipped, as
        the spec lets the sender address devices it only believes exist.
        """
        transaction = join_key(sender, sender_device or "", event_type, txn_id)
        if transaction in self._transactions:
            return
        recipients = set()
        remote: dict[str, Mapping[str, Any]] = {}
        with self._db.batch() as batch:
            for user_id, by_device in messages.items():
                if not self._globals.is_ours(server_name_of(user_id)):
                    remote[user_id] = by_device
                    continue
                for device_id, content in by_device.items():
                    for target in self._target_devices(user_id, device_id):
                        event = {"type": event_type, "sender": sender, "content": content}
                        key = join_key(user_id, target, u64(self._globals.next_count()))
                        batch.put(self._events, key, json.dumps(event).encode())
                        recipients.add(user_id)
                        for hook in self.local_messages:
                            hook(batch, user_id, target, event)
            if remote:
                for hook in self.remote_messages:
                    hook(batch, sender, event_type, remote)
            batch.put(self._transactions, transaction, b"")
        self._notifier.notify(recipients)

    def _target_devices(self, user_id: str, device_id: str) -> list[str]:
        if device_id == ALL_DEVICES:
            return self._devices.device_ids(user_id)
        return [device_id] if self._devices.get(user_id, device_id) is not None else []

    def deliver(
        self, user_id: str, device_id: str, since: int | None, next_batch: int
    ) -> list[dict[str, Any]]:
        """The messages a sync from `since` to `next_batch` carries to the device, oldest first.

        Deletes what syncing from `since` acknowledges: everything the
        response that handed out `since` carried.
        """
        device_prefix = join_key(user_id, device_id, b"")
        acknowledged = self._acknowledged_through(device_prefix, since)
        events: list[dict[str, Any]] = []
        last_position = acknowledged
        limited = False
        with self._db.batch() as batch:
            for key, value in self._events.iter_prefix(device_prefix):
                position = from_u64(key[len(device_prefix) :])
                if position <= acknowledged:
                    batch.delete(self._events, key)
                    continue
                if position > next_batch:
                    break
                if len(events) == DELIVERY_LIMIT:
                    limited = True
                    break
                events.append(json.loads(value))
                last_position = position
            for key in list(self._delivered.keys_with_prefix(device_prefix)):
                if from_u64(key[len(device_prefix) :]) < (since or 0):
                    batch.delete(self._delivered, key)  # older than the token in use
            if limited:
                batch.put(self._delivered, device_prefix + u64(next_batch), u64(last_position))
                # The next response must carry another token than this one, or a
                # retry of this sync and the sync acknowledging it would look alike.
                self._globals.next_count()
        return events

    def _acknowledged_through(self, device_prefix: bytes, since: int | None) -> int:
        if since is None:
            return 0
        through = self._delivered.get(device_prefix + u64(since))
        return since if through is None else from_u64(through)

    def device_deleted(self, batch: WriteBatch, user_id: str, device_id: str) -> None:
        """`Devices.device_deleted` hook: the device's queue and transaction ids go with it."""
        device_prefix = join_key(user_id, device_id, b"")
        for tree in (self._events, self._delivered, self._transactions):
            for key in list(tree.keys_with_prefix(device_prefix)):
                batch.delete(tree, key)
