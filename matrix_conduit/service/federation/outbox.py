"""The federation outbox: what each destination still has to receive, in the database.

Spec: `content/server-server-api.md`, "Transactions" (PDUs and EDUs travel in
transactions to each server that should get them) and DESIGN.md, "Storage
conventions": outgoing work is queued in the same atomic batch as the change
that caused it, so neither a restart nor a `kill -9` loses it, and nothing is
queued for a change that was not written.

Tree `destinationqueueid_outboxitem`: destination | queue id → one item, JSON:
- `{"pdu": event_id}`: one of our events (the PDU is read at send time);
- `{"edu": {"edu_type", "content"}}`: an EDU as it will be sent (to-device);
- `{"device_list": {...}}` or `{"signing_keys": user_id}`: an EDU whose content
  is read at send time (`edus_out`), so the destination gets the newest keys.
A queue id is a position on the global counter: items are sent oldest first,
and one change queued for several destinations shares one id.

`queue_event` is the `Timeline.appending` hook: our own timeline events go to
every other server with a member in the room; events that other servers sent
us are never passed on (their origin sends them to everyone).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, join_key, u64
from ..globals import Globals
from ..rooms.event_context import EventContext
from ..rooms.state_cache import StateCache
from ..rooms.timeline import Event

TREES = ("destinationqueueid_outboxitem",)

QueueKey = bytes
Item = dict[str, Any]


def server_of(user_id: str) -> str:
    """The server part of a user id the rooms package already checked."""
    return user_id.partition(":")[2]


class Outbox:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        state_cache: StateCache,
        *,
        enabled: bool,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._state_cache = state_cache
        self._enabled = enabled
        self._items = db.tree("destinationqueueid_outboxitem")
        self.queued: list[Callable[[Iterable[str]], None]] = []
        """Called with the destinations that got new items, once the batch is written
        (the sender wakes their queues)."""

    # ---- queueing

    def queue(self, batch: WriteBatch, destinations: Iterable[str], item: Item) -> None:
        """Queue `item` for each destination, in `batch` (nothing if federation is off)."""
        targets = sorted({d for d in destinations if d and d != self._globals.server_name})
        if not self._enabled or not targets:
            return
        queue_id = u64(self._globals.next_count())
        value = json.dumps(item).encode()
        for destination in targets:
            batch.put(self._items, join_key(destination, queue_id), value)
        batch.after_commit(lambda: self._announce(targets))

    def _announce(self, destinations: list[str]) -> None:
        for listener in self.queued:
            listener(destinations)

    def queue_event(
        self, event: Event, context: EventContext, position: int | None, batch: WriteBatch
    ) -> None:
        """`Timeline.appending` hook: our timeline event, for the other servers in its room.

        The servers are those of the room's joined members, and for a
        membership event also the server of its target if the target was
        joined, invited or knocking before it (a kicked or leaving user's
        server must hear of it, and of a rescinded invite or a rejected knock).
        Not otherwise: an invite goes to the invited user's server by `/invite`
        (also one that accepts a knock), and a server
        not in the room ignores the room's PDUs (Synapse logs "Ignoring PDU
        ... as we're not in the room" for an invite or an unban sent so).
        """
        if position is None or server_of(event["sender"]) != self._globals.server_name:
            return
        servers = set(self._state_cache.joined_servers(event["room_id"]))
        if event["type"] == "m.room.member":
            before = (event.get("unsigned") or {}).get("prev_content") or {}
            if before.get("membership") in ("join", "invite", "knock") and (
                event["content"].get("membership") != "invite"
            ):
                servers.add(server_of(event["state_key"]))
        self.queue(batch, servers, {"pdu": event["event_id"]})

    def servers_sharing_a_room(self, user_id: str) -> set[str]:
        """Other servers with a member joined to a room `user_id` is joined to."""
        servers = set()
        for room_id in list(self._state_cache.joined_rooms(user_id)):
            servers.update(
                server_of(member) for member in self._state_cache.joined_members(room_id)
            )
        servers.discard(self._globals.server_name)
        return servers

    def servers_in_room(self, room_id: str) -> set[str]:
        """Other servers with a member joined to `room_id`."""
        servers = set(self._state_cache.joined_servers(room_id))
        servers.discard(self._globals.server_name)
        return servers

    # ---- reading and removing

    def destinations(self) -> set[str]:
        """Every destination with something queued (what a restart resumes).

        Skips from one destination's items to the next: one seek each.
        """
        found: set[str] = set()
        start = b""
        while True:
            first = next(self._items.iter_prefix(start=start), None)
            if first is None:
                return found
            destination = first[0].split(SEPARATOR, 1)[0]
            found.add(destination.decode())
            start = destination + SEPARATOR * 10

    def items(self, destination: str) -> Iterator[tuple[QueueKey, Item]]:
        """The destination's queued items, oldest first."""
        for key, value in self._items.iter_prefix(join_key(destination, b"")):
            yield key, json.loads(value)

    def has_items(self, destination: str) -> bool:
        return next(self._items.keys_with_prefix(join_key(destination, b"")), None) is not None

    def remove(self, keys: Iterable[QueueKey]) -> None:
        """Forget items the destination has received (or refused for good)."""
        with self._db.batch() as batch:
            for key in keys:
                batch.delete(self._items, key)
