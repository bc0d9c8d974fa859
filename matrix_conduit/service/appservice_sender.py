"""Pushing to appservices: their durable queues and `PUT /transactions/{txnId}`.

Spec: `content/application-service-api.md`, "Pushing events" (linearised,
a queue per appservice, exponential backoff while it is unreachable, a
transaction never changes on retries), "Pushing ephemeral data"
(`receive_ephemeral`: `m.typing`, `m.receipt` with a `room_id`, `m.presence`;
private receipts only for its own users), and
`data/api/application-service/transactions.yaml`; MSC4203 (to-device in
`to_device`) and MSC3202 (`device_lists`) for registrations that ask for them.

An appservice is interested in an event when the room is in its room
namespaces, one of the room's local aliases is in its alias namespaces, or
the sender, the target of a membership or a joined member is one of its
users (its sender included). Room events are queued by a `Timeline.appending`
hook, in the batch that stores the event (as `federation/outbox.py` does),
so a kill -9 loses both or neither; ephemeral data is queued as it happens.
Keys are (appservice id, stream position): the queue is in stream order.

A transaction is the oldest ≤100 entries; its id and last position are
written down before it is sent, so a retry (also after a restart) sends
exactly the same entries under the same id, and the appservice can drop a
repeat by its txnId. Entries are deleted once the appservice answers 2xx.

With several server processes on one database (issue #18) each appservice's
queue has a lease (`queue_leases.py`): only its holder sends, a process that
queues an entry wakes the holder, and another process takes the queue over
(in-flight transaction included) when the holder dies. A transaction takes
only entries at or below the committed mark, so an entry that another process
is still writing cannot slip into a transaction already sent.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import trio

from ..core.client_events import client_event
from ..core.ids import is_on_server
from ..storage import Database, WriteBatch
from ..storage.kv import SEPARATOR, from_u64, join_key, u64
from .appservices import AppService, AppServices
from .cluster import Cluster
from .globals import Globals
from .outgoing_http import OutgoingHttp, ResponseTooLarge
from .queue_leases import LEASE_CHECK_SECONDS, QueueLeases
from .rooms import Rooms
from .rooms.event_context import EventContext
from .rooms.timeline import Event

log = logging.getLogger(__name__)

TREES = ("appservicepos_txnentry", "appserviceid_txninflight")

MAX_ENTRIES_PER_TRANSACTION = 100
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
MAX_ANSWER_BYTES = 65536
PRIVATE_READ = "m.read.private"


class AppServiceInterest:
    """Which appservices a room, a user or an event concerns (the spec's "interested")."""

    def __init__(self, server_name: str, appservices: AppServices, rooms: Rooms) -> None:
        self._server_name = server_name
        self._appservices = appservices
        self._rooms = rooms

    def owns_local_user(self, appservice: AppService, user_id: str) -> bool:
        return is_on_server(user_id, self._server_name) and appservice.owns_user(user_id)

    def in_room(self, appservice: AppService, room_id: str) -> bool:
        if appservice.owns_room(room_id):
            return True
        aliases = self._rooms.aliases.local_aliases(room_id)
        if any(appservice.owns_alias(alias) for alias in aliases):
            return True
        return any(
            self.owns_local_user(appservice, member)
            for member in self._rooms.state_cache.joined_members(room_id)
        )

    def in_event(self, appservice: AppService, event: Event) -> bool:
        if self.owns_local_user(appservice, event["sender"]):
            return True
        if event["type"] == "m.room.member" and self.owns_local_user(
            appservice, event.get("state_key", "")
        ):
            return True
        return self.in_room(appservice, event["room_id"])

    def sharing_a_room(self, appservice: AppService, user_id: str) -> bool:
        """Whether `user_id` is one of its users or shares a room with one."""
        if self.owns_local_user(appservice, user_id):
            return True
        return any(
            self.in_room(appservice, room_id)
            for room_id in list(self._rooms.state_cache.joined_rooms(user_id))
        )


class AppServiceSender:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        appservices: AppServices,
        interest: AppServiceInterest,
        rooms: Rooms,
        http: OutgoingHttp,
        typing_users: Callable[[str], list[str]],
        presence_of: Callable[[str], dict[str, Any]],
        *,
        cluster: Cluster | None = None,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._appservices = appservices
        self._interest = interest
        self._rooms = rooms
        self._http = http
        self._typing_users = typing_users
        self._presence_of = presence_of
        self._queue = db.tree("appservicepos_txnentry")
        self._inflight = db.tree("appserviceid_txninflight")
        self._wakes: dict[str, trio.Event] = {}
        self._registry_changed = trio.Event()
        appservices.changed.append(self._note_registry_change)
        self._leases = QueueLeases(cluster, "appservice", self._woken)

    # ---- queueing

    def queue_event(
        self, event: Event, context: EventContext, position: int | None, batch: WriteBatch
    ) -> None:
        """`Timeline.appending` hook: a timeline event, for each appservice interested."""
        if position is None:
            return
        for appservice in self._appservices.list():
            if appservice.url is not None and self._interest.in_event(appservice, event):
                self._put(batch, appservice, position, {"pdu": event["event_id"]})

    def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        """`Typing.changed` hook: the room's `m.typing` now, for interested appservices."""
        edu = {
            "type": "m.typing",
            "room_id": room_id,
            "content": {"user_ids": self._typing_users(room_id)},
        }
        self._queue_ephemeral(edu, lambda a: self._interest.in_room(a, room_id))

    def receipt_written(self, room_id: str, receipt: dict[str, Any]) -> None:
        """`Receipts.written` hook: one `m.receipt` (private ones only to the user's own)."""
        user_id = receipt["user_id"]
        read = {"ts": receipt["ts"]}
        if receipt.get("thread_id") is not None:
            read["thread_id"] = receipt["thread_id"]
        edu = {
            "type": "m.receipt",
            "room_id": room_id,
            "content": {receipt["event_id"]: {receipt["receipt_type"]: {user_id: read}}},
        }
        private = receipt["receipt_type"] == PRIVATE_READ

        def wants(appservice: AppService) -> bool:
            if private:
                return self._interest.owns_local_user(appservice, user_id)
            return self._interest.in_room(appservice, room_id)

        self._queue_ephemeral(edu, wants)

    def presence_changed(self, user_id: str) -> None:
        """`Presence.changed` hook: `m.presence` for appservices sharing a room with the user."""
        edu = {"type": "m.presence", "sender": user_id, "content": self._presence_of(user_id)}
        self._queue_ephemeral(edu, lambda a: self._interest.sharing_a_room(a, user_id))

    def device_list_changed(self, batch: WriteBatch, user_id: str, device_id: str) -> None:
        """`Devices.device_list_changed` hook (MSC3202): in the change's own batch."""
        for appservice in self._appservices.list():
            if (
                appservice.url is not None
                and appservice.receive_device_data
                and self._interest.sharing_a_room(appservice, user_id)
            ):
                position = self._globals.next_count()
                self._put(batch, appservice, position, {"device_list_changed": user_id})

    def to_device_queued(
        self, batch: WriteBatch, recipient: str, device_id: str, event: dict[str, Any]
    ) -> None:
        """`ToDevice.local_messages` hook (MSC4203): a message to one of its users' devices."""
        for appservice in self._appservices.list():
            if (
                appservice.url is not None
                and appservice.receive_device_data
                and self._interest.owns_local_user(appservice, recipient)
            ):
                message = {**event, "to_user_id": recipient, "to_device_id": device_id}
                position = self._globals.next_count()
                self._put(batch, appservice, position, {"to_device": message})

    def _queue_ephemeral(self, edu: dict[str, Any], wants: Callable[[AppService], bool]) -> None:
        chosen = [
            a
            for a in self._appservices.list()
            if a.url is not None and a.receive_ephemeral and wants(a)
        ]
        if not chosen:
            return
        with self._db.batch() as batch:
            position = self._globals.next_count()
            for appservice in chosen:
                self._put(batch, appservice, position, {"edu": edu})

    def _put(
        self, batch: WriteBatch, appservice: AppService, position: int, entry: dict[str, Any]
    ) -> None:
        key = join_key(appservice.id, u64(position))
        batch.put(self._queue, key, json.dumps(entry).encode())
        batch.after_commit(lambda: self._queued(appservice.id))

    def _queued(self, appservice_id: str) -> None:
        self._wake(appservice_id)
        self._leases.announce([appservice_id])

    def _woken(self, appservice_ids: list[str] | None) -> None:
        for appservice_id in list(self._wakes) if appservice_ids is None else appservice_ids:
            self._wake(appservice_id)

    def _wake(self, appservice_id: str) -> None:
        wake = self._wakes.get(appservice_id)
        if wake is not None:
            wake.set()

    def pending(self, appservice_id: str) -> int:
        """Entries not yet acknowledged by the appservice (tests, the admin room)."""
        return sum(1 for _ in self._queue.keys_with_prefix(appservice_id.encode() + SEPARATOR))

    # ---- delivering

    async def run(self) -> None:
        """One worker per registered appservice with a URL, for the server's lifetime."""
        async with trio.open_nursery() as nursery:
            while True:
                for appservice in self._appservices.list():
                    if appservice.url is not None and appservice.id not in self._wakes:
                        self._wakes[appservice.id] = trio.Event()
                        nursery.start_soon(self._work, appservice.id)
                self._registry_changed = trio.Event()
                await self._registry_changed.wait()

    def _note_registry_change(self) -> None:
        self._registry_changed.set()
        for wake in self._wakes.values():  # an unregistered one's worker ends
            wake.set()

    async def _work(self, appservice_id: str) -> None:
        retry_in = 0.0
        while True:
            appservice = self._appservices.by_id(appservice_id)
            if appservice is None or appservice.url is None:
                self._wakes.pop(appservice_id, None)
                if appservice is None:  # unregistered: nobody will take what was queued
                    self._drop_queue(appservice_id)
                return
            woken = self._wakes[appservice_id] = trio.Event()
            held = self._leases.take(appservice_id)
            transaction = self._transaction(appservice_id) if held else None
            if transaction is None:
                # Another process may hold the lease and die: try again now and then.
                with trio.move_on_after(LEASE_CHECK_SECONDS if self._leases.shared else math.inf):
                    await woken.wait()
                continue
            txn_id, keys = transaction
            if await self._send(appservice, txn_id, keys):
                with self._db.batch() as batch:
                    for key in keys:
                        batch.delete(self._queue, key)
                    batch.delete(self._inflight, appservice_id.encode())
                retry_in = 0.0
                continue
            retry_in = min(max(retry_in * 2, FIRST_RETRY_SECONDS), MAX_RETRY_SECONDS)
            log.info(
                "appservice %s: transaction %s failed, retry in %ss",
                appservice_id,
                txn_id,
                retry_in,
            )
            await trio.sleep(retry_in)

    def _drop_queue(self, appservice_id: str) -> None:
        prefix = appservice_id.encode() + SEPARATOR
        with self._db.batch() as batch:
            for key in list(self._queue.keys_with_prefix(prefix)):
                batch.delete(self._queue, key)
            batch.delete(self._inflight, appservice_id.encode())

    def _transaction(self, appservice_id: str) -> tuple[str, list[bytes]] | None:
        """The transaction to send: the one in flight, else the oldest entries (written down)."""
        prefix = appservice_id.encode() + SEPARATOR
        inflight = self._inflight.get(appservice_id.encode())
        if inflight is not None:
            recorded = json.loads(inflight)
            through = recorded["through"]
            keys = [
                key
                for key in self._queue.keys_with_prefix(prefix)
                if from_u64(key[len(prefix) :]) <= through
            ]
            if keys:
                return recorded["txn_id"], keys
        keys = []
        settled = self._globals.current_count()
        for key in self._queue.keys_with_prefix(prefix):
            if from_u64(key[len(prefix) :]) > settled:
                break  # still being written, maybe by another process
            keys.append(key)
            if len(keys) == MAX_ENTRIES_PER_TRANSACTION:
                break
        if not keys:
            return None
        through = from_u64(keys[-1][len(prefix) :])
        txn_id = str(through)
        self._inflight.put(
            appservice_id.encode(), json.dumps({"txn_id": txn_id, "through": through}).encode()
        )
        return txn_id, keys

    def _body(self, keys: list[bytes]) -> dict[str, Any]:
        events, ephemeral, to_device, changed = [], [], [], []
        for key in keys:
            stored = self._queue.get(key)
            if stored is None:
                continue
            entry = json.loads(stored)
            if "pdu" in entry:
                event = self._rooms.timeline.get_event(entry["pdu"])
                if event is not None:
                    events.append(client_event(event))
            elif "edu" in entry:
                ephemeral.append(entry["edu"])
            elif "to_device" in entry:
                to_device.append(entry["to_device"])
            elif "device_list_changed" in entry:
                changed.append(entry["device_list_changed"])
        body: dict[str, Any] = {"events": events}
        if ephemeral:
            body["ephemeral"] = ephemeral
            body["de.sorunome.msc2409.ephemeral"] = ephemeral
        if to_device:
            body["de.sorunome.msc2409.to_device"] = to_device
        if changed:
            device_lists = {"changed": sorted(set(changed)), "left": []}
            body["org.matrix.msc3202.device_lists"] = device_lists
        return body

    async def _send(self, appservice: AppService, txn_id: str, keys: list[bytes]) -> bool:
        assert appservice.url is not None
        url = f"{appservice.url}/_matrix/app/v1/transactions/{quote(txn_id, safe='')}"
        try:
            answer = await self._http.fetch(
                "PUT",
                url,
                proxy=self._http.proxy_for(urlparse(url).hostname or ""),
                headers={
                    "Authorization": f"Bearer {appservice.hs_token}",
                    "Content-Type": "application/json",
                },
                content=json.dumps(self._body(keys)).encode(),
                max_bytes=MAX_ANSWER_BYTES,
            )
        except (httpx.HTTPError, trio.TooSlowError, ResponseTooLarge, OSError) as error:
            log.info("appservice %s unreachable: %s", appservice.id, error)
            return False
        if not 200 <= answer.status < 300:
            log.warning(
                "appservice %s answered transaction %s with %s",
                appservice.id,
                txn_id,
                answer.status,
            )
            return False
        return True
