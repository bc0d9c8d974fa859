"""Each user's rooms ordered by `bump_stamp`, kept as events are written.

Spec: MSC4186 ("bump_stamp": the stream position of the room's last event
of a bumping type, by which lists are sorted, most recent first). A list
window is a reverse walk of the user's index from its newest entry: it reads
as many entries as the window (and its filters) need, never every room.

The index is written by `note_event`, a `Timeline.appending` hook, in the
batch of the event that changes it: a bumping event moves the room to the
top for every local joined member; an invite or knock puts the room in the
invitee's index at the membership's position (new invites show on top); a
join puts it at the room's bump stamp; a leave or ban takes it out and
records the position of the leave (`left_since`), so a connection that had
shown the room can say it is gone. Users whose index was never built (their
rooms predate this index) get it built once, on their first sliding sync
(`ensure_built`); accounts registered since are built empty at once.

Trees:
- `userbumproom_slidingentry`: user | bump | room → `{"m": membership,
  "e": encrypted, "t": room type}`: what the filters need, without reading
  the room.
- `userroomid_slidingbump`: user | room → bump (to move the entry).
- `roomid_slidingbump`: room → the room's bump stamp.
- `userleftroom_slidingleft`: user | position | room → empty: rooms left.
- `userid_slidingindexed`: user → count of entries (present: built).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, from_u64, join_key, u64
from ..globals import Globals
from ..rooms import Rooms
from ..rooms.event_context import EventContext
from ..rooms.timeline import Event

TREES = (
    "userbumproom_slidingentry",
    "userroomid_slidingbump",
    "roomid_slidingbump",
    "userleftroom_slidingleft",
    "userid_slidingindexed",
)

BUMP_EVENT_TYPES = frozenset(
    {
        "m.room.create",
        "m.room.message",
        "m.room.encrypted",
        "m.sticker",
        "m.call.invite",
        "m.poll.start",
        "org.matrix.msc3381.poll.start",
        "m.beacon_info",
        "org.matrix.msc3672.beacon_info",
    }
)
"""The event types that move a room up the list (Synapse's defaults, MSC4186)."""

LISTED_MEMBERSHIPS = ("join", "invite", "knock")
MAX_BUMP_SCAN = 1000
"""Events read back to find a room's last bumping event when building an index."""


@dataclass(frozen=True)
class Entry:
    """One room of a user's index."""

    room_id: str
    bump_stamp: int
    membership: str
    encrypted: bool
    room_type: str | None


class RoomIndex:
    def __init__(self, db: Database, globals_: Globals, rooms: Rooms) -> None:
        self._db = db
        self._globals = globals_
        self._rooms = rooms
        self._entries = db.tree("userbumproom_slidingentry")
        self._bumps = db.tree("userroomid_slidingbump")
        self._room_bumps = db.tree("roomid_slidingbump")
        self._left = db.tree("userleftroom_slidingleft")
        self._indexed = db.tree("userid_slidingindexed")
        self._counts: dict[str, int | None] = {}
        """Entries per user (None: index not built), read once."""
        self._last_positions: dict[str, int] = {}
        """Each room's newest timeline position, as `note_event` sees them written."""

    # ---- reading

    def entries(self, user_id: str) -> Iterator[Entry]:
        """The user's rooms, highest bump stamp first."""
        prefix = user_id.encode() + SEPARATOR
        for key, value in self._entries.iter_prefix(prefix, reverse=True):
            rest = key[len(prefix) :]
            flags = json.loads(value)
            yield Entry(
                rest[9:].decode(),
                from_u64(rest[:8]),
                flags["m"],
                bool(flags.get("e")),
                flags.get("t"),
            )

    def count(self, user_id: str) -> int:
        """How many rooms the user's index holds."""
        return self._count(user_id) or 0

    def bump_stamp(self, user_id: str, room_id: str) -> int | None:
        stored = self._bumps.get(join_key(user_id, room_id))
        return from_u64(stored) if stored is not None else None

    def room_bump_stamp(self, room_id: str) -> int:
        """The room's last bumping event's position (its last event's if none is known)."""
        stored = self._room_bumps.get(room_id.encode())
        return from_u64(stored) if stored is not None else self._scan_bump(room_id)

    def last_position(self, room_id: str) -> int:
        """The room's newest timeline position (read once, then kept by `note_event`)."""
        known = self._last_positions.get(room_id)
        if known is None:
            known = self._last_positions[room_id] = self._rooms.timeline.last_position(room_id)
        return known

    def left_since(self, user_id: str, since: int) -> Iterator[tuple[int, str]]:
        """(position, room) of the rooms the user left or was removed from after `since`."""
        prefix = user_id.encode() + SEPARATOR
        for key in self._left.keys_with_prefix(prefix):
            rest = key[len(prefix) :]
            position = from_u64(rest[:8])
            if position > since:
                yield position, rest[9:].decode()

    # ---- building

    def _count(self, user_id: str) -> int | None:
        if user_id not in self._counts:
            stored = self._indexed.get(user_id.encode())
            self._counts[user_id] = from_u64(stored) if stored is not None else None
        return self._counts[user_id]

    def ensure_built(self, user_id: str) -> None:
        """Index the rooms of a user who had some before the index existed (once)."""
        if self._count(user_id) is not None:
            return
        state_cache = self._rooms.state_cache
        with self._db.batch() as batch:
            count = 0
            for room_id in state_cache.joined_rooms(user_id):
                self._put(batch, user_id, room_id, self.room_bump_stamp(room_id), "join", None)
                count += 1
            for source, membership in (
                (state_cache.invited_rooms, "invite"),
                (state_cache.knocked_rooms, "knock"),
            ):
                for room_id, stripped in source(user_id):
                    position = state_cache.membership_count(room_id, user_id) or 0
                    self._put(batch, user_id, room_id, position, membership, stripped)
                    count += 1
            self._set_count(batch, user_id, count)

    def user_registered(self, user_id: str) -> None:
        """`Registration.registered` hook: a new account's index is built, empty."""
        if self._count(user_id) is None:
            with self._db.batch() as batch:
                self._set_count(batch, user_id, 0)

    def _set_count(self, batch: WriteBatch, user_id: str, count: int) -> None:
        batch.put(self._indexed, user_id.encode(), u64(count))
        batch.after_commit(lambda: self._counts.__setitem__(user_id, count))

    def _scan_bump(self, room_id: str) -> int:
        last = 0
        for scanned, (position, event) in enumerate(
            self._rooms.timeline.events_before(room_id, self._globals.current_count())
        ):
            if position < 0:
                break
            last = last or position
            if event.get("type") in BUMP_EVENT_TYPES or scanned >= MAX_BUMP_SCAN:
                return position if event.get("type") in BUMP_EVENT_TYPES else last
        return last

    def _flags(
        self, room_id: str, membership: str, stripped: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """What the filters read: from the room's state, or the invite's stripped state."""
        content = self._rooms.timeline.state_content
        create = content(room_id, "m.room.create")
        encrypted = bool(content(room_id, "m.room.encryption"))
        if not create and stripped:
            for event in stripped:
                if event.get("type") == "m.room.create":
                    create = event.get("content") or {}
                elif isinstance(event, dict) and event.get("type") == "m.room.encryption":
                    encrypted = True
        room_type = create.get("type")
        return {
            "m": membership,
            "e": encrypted,
            "t": room_type if isinstance(room_type, str) else None,
        }

    def _put(
        self,
        batch: WriteBatch,
        user_id: str,
        room_id: str,
        bump: int,
        membership: str,
        stripped: list[dict[str, Any]] | None,
        flags: dict[str, Any] | None = None,
    ) -> None:
        user_room = join_key(user_id, room_id)
        old = self._bumps.get(user_room)
        if old is not None:
            batch.delete(self._entries, join_key(user_id, old, room_id))
        flags = flags if flags is not None else self._flags(room_id, membership, stripped)
        batch.put(self._entries, join_key(user_id, u64(bump), room_id), json.dumps(flags).encode())
        batch.put(self._bumps, user_room, u64(bump))

    # ---- the appending hook

    def note_event(
        self, event: Event, context: EventContext, count: int | None, batch: WriteBatch
    ) -> None:
        """`Timeline.appending` hook: move the room in the indexes this event changes."""
        if count is None:
            self._note_outlier(event, batch)
            return
        if count < 0:
            return
        room_id = event["room_id"]
        batch.after_commit(lambda: self._last_positions.__setitem__(room_id, count))
        event_type = event.get("type")
        state_cache = self._rooms.state_cache
        handled: set[str] = set()
        if event_type == "m.room.member" and isinstance(event.get("state_key"), str):
            target = event["state_key"]
            if self._globals.is_ours(target) and self._count(target) is not None:
                handled.add(target)
                self._membership_changed(event, count, target, batch)
        if event_type in BUMP_EVENT_TYPES:
            batch.put(self._room_bumps, room_id.encode(), u64(count))
            for member in state_cache.joined_members(room_id):
                if member in handled or not self._indexed_local(member):
                    continue
                self._put(
                    batch, member, room_id, count, "join", None, self._flags_of(member, room_id)
                )
        elif event_type == "m.room.encryption" and event.get("state_key") == "":
            members = state_cache.joined_members(room_id) | state_cache.invited_members(room_id)
            for member in members - handled:
                bump = self.bump_stamp(member, room_id)
                if bump is None or not self._indexed_local(member):
                    continue
                flags = self._flags_of(member, room_id)
                flags["e"] = True
                self._put(batch, member, room_id, bump, flags["m"], None, flags)

    def _note_outlier(self, event: Event, batch: WriteBatch) -> None:
        """An invite or knock of ours to a room we are not in (or its rejection) is kept
        outside the timeline: its membership was just given the latest position."""
        target = event.get("state_key")
        if event.get("type") != "m.room.member" or not isinstance(target, str):
            return
        if not self._indexed_local(target):
            return
        membership = (event.get("content") or {}).get("membership")
        listed = self._listed_membership(target, event["room_id"])
        if membership in ("invite", "knock") or (
            membership in ("leave", "ban") and listed in ("invite", "knock")
        ):
            self._membership_changed(event, self._globals.current_count(), target, batch)

    def _listed_membership(self, user_id: str, room_id: str) -> str | None:
        bump = self.bump_stamp(user_id, room_id)
        stored = self._entries.get(join_key(user_id, u64(bump), room_id)) if bump else None
        return json.loads(stored)["m"] if stored is not None else None

    def _indexed_local(self, user_id: str) -> bool:
        return self._globals.is_ours(user_id) and self._count(user_id) is not None

    def _flags_of(self, user_id: str, room_id: str) -> dict[str, Any]:
        bump = self.bump_stamp(user_id, room_id)
        stored = self._entries.get(join_key(user_id, u64(bump), room_id)) if bump else None
        return json.loads(stored) if stored is not None else self._flags(room_id, "join", None)

    def _membership_changed(
        self, event: Event, count: int, user_id: str, batch: WriteBatch
    ) -> None:
        room_id = event["room_id"]
        membership = (event.get("content") or {}).get("membership")
        user_room = join_key(user_id, room_id)
        was_listed = user_room in self._bumps
        total = self.count(user_id)
        if membership in LISTED_MEMBERSHIPS:
            if membership == "join":
                bump = count if event.get("type") in BUMP_EVENT_TYPES else 0
                bump = bump or self._room_bumps_value(room_id) or count
                flags = self._flags(room_id, "join", None)
            else:
                bump = count
                unsigned = event.get("unsigned") or {}
                given = unsigned.get("invite_room_state") or unsigned.get("knock_room_state")
                stripped = [
                    *self._rooms.timeline.stripped_room_state(room_id),
                    *(e for e in (given if isinstance(given, list) else []) if isinstance(e, dict)),
                    event,
                ]
                flags = self._flags(room_id, membership, stripped)
            self._put(batch, user_id, room_id, bump, membership, None, flags)
            if not was_listed:
                self._set_count(batch, user_id, total + 1)
            return
        if was_listed:
            old = self._bumps.get(user_room)
            assert old is not None
            batch.delete(self._entries, join_key(user_id, old, room_id))
            batch.delete(self._bumps, user_room)
            self._set_count(batch, user_id, max(0, total - 1))
        batch.put(self._left, join_key(user_id, u64(count), room_id), b"")

    def _room_bumps_value(self, room_id: str) -> int:
        stored = self._room_bumps.get(room_id.encode())
        return from_u64(stored) if stored is not None else 0
