"""Who is in which room: the membership cache, kept in step with room state.

Spec: `content/client-server-api/_index.md`, "Room membership". The state of a
room says everything, but `/sync`, `/joined_rooms` and the notifier ask "which
rooms is this user in?" and "who is joined here?" on every request, so the
answers are kept as indexes, written in the same batch as the membership
event. Each non-join membership also records the stream position at which it
happened, so `/sync` can tell what changed since a token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ...lru import MEMBER_ENTRY_BYTES, SMALL_ENTRY_BYTES, LRUCache, MemoryBudget
from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, from_u64, join_key, u64
from ..cluster import Cluster
from ..coherence import Invalidations

TREES = (
    "userroomid_joined",
    "roomuserid_joined",
    "userroomid_invitestate",
    "roomuserid_invitecount",
    "userroomid_knockstate",
    "roomuserid_knockcount",
    "userroomid_leftstate",
    "roomuserid_leftcount",
    "roomid_joinedcount",
    "roomid_invitedcount",
)

MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


def _split(key: bytes) -> tuple[str, str]:
    first, _, second = key.partition(SEPARATOR)
    return first.decode(), second.decode()


def _set_size(_key: str, members: frozenset[str]) -> int:
    return SMALL_ENTRY_BYTES + MEMBER_ENTRY_BYTES * len(members)


class StateCache:
    def __init__(
        self,
        db: Database,
        memory: MemoryBudget | None = None,
        cache_capacity: int = 150_000,
        cluster: Cluster | None = None,
    ) -> None:
        memory = memory or MemoryBudget(96.0)
        self._user_joined = db.tree("userroomid_joined")
        self._room_joined = db.tree("roomuserid_joined")
        self._user_invited = db.tree("userroomid_invitestate")
        self._room_invited = db.tree("roomuserid_invitecount")
        self._user_knocked = db.tree("userroomid_knockstate")
        self._room_knocked = db.tree("roomuserid_knockcount")
        self._user_left = db.tree("userroomid_leftstate")
        self._room_left = db.tree("roomuserid_leftcount")
        self._joined_count = db.tree("roomid_joinedcount")
        self._invited_count = db.tree("roomid_invitedcount")
        self._counts: LRUCache[tuple[str, str], int] = memory.cache(
            "member_counts", cache_capacity, lambda _key, _value: SMALL_ENTRY_BYTES
        )
        self._joined: LRUCache[str, frozenset[str]] = memory.cache(
            "room_members", cache_capacity, _set_size
        )
        """Joined members per room, read once: every message asks who to wake."""
        self._invited: LRUCache[str, frozenset[str]] = memory.cache(
            "invited_members", cache_capacity, _set_size
        )
        self._servers: LRUCache[str, dict[str, int]] = memory.cache(
            "room_servers", cache_capacity, lambda _key, value: _set_size(_key, value)
        )
        """Joined members per server, per room: each message asks which servers to send to."""
        self._rooms_of: LRUCache[str, frozenset[str]] = memory.cache(
            "user_rooms", cache_capacity, _set_size
        )
        """The rooms each user is joined to: every sync asks, several times."""
        self._changes = Invalidations(cluster, "membership", self._changed_elsewhere, self._forget)
        """Membership changes another process made: the sets follow, the counts reload."""

    # ---- writing

    def update_membership(
        self,
        batch: WriteBatch,
        room_id: str,
        user_id: str,
        membership: str,
        count: int,
        stripped_state: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record that `user_id` now has `membership` in `room_id` (at position `count`).

        `stripped_state` is what an invited or knocking user is shown of the room.
        """
        previous = self.membership(room_id, user_id)
        user_room = join_key(user_id, room_id)
        room_user = join_key(room_id, user_id)
        batch.after_commit(lambda: self._follow_membership(room_id, user_id, previous, membership))
        self._changes.tell([room_id, user_id, membership], batch)
        for tree in (self._user_joined, self._user_invited, self._user_knocked, self._user_left):
            batch.delete(tree, user_room)
        for tree in (self._room_joined, self._room_invited, self._room_knocked, self._room_left):
            batch.delete(tree, room_user)
        state = json.dumps(stripped_state or []).encode()
        if membership == "join":
            batch.put(self._user_joined, user_room, b"")
            batch.put(self._room_joined, room_user, b"")
        elif membership == "invite":
            batch.put(self._user_invited, user_room, state)
            batch.put(self._room_invited, room_user, u64(count))
        elif membership == "knock":
            batch.put(self._user_knocked, user_room, state)
            batch.put(self._room_knocked, room_user, u64(count))
        else:  # leave, ban
            batch.put(self._user_left, user_room, b"")
            batch.put(self._room_left, room_user, u64(count))
        for kind, tree, role in (
            ("joined", self._joined_count, "join"),
            ("invited", self._invited_count, "invite"),
        ):
            delta = (membership == role) - (previous == role)
            if delta:
                new_count = self.member_count(room_id, kind) + delta
                batch.put(tree, room_id.encode(), u64(new_count))
                batch.after_commit(
                    lambda kind=kind, new_count=new_count: self._counts.put(
                        (room_id, kind), new_count
                    )
                )

    def forget(self, batch: WriteBatch, room_id: str, user_id: str) -> None:
        """Drop a left room from the user's lists (`/forget`)."""
        batch.delete(self._user_left, join_key(user_id, room_id))
        batch.delete(self._room_left, join_key(room_id, user_id))

    # ---- reading

    def membership(self, room_id: str, user_id: str) -> str | None:
        """join / invite / knock / leave (left or banned) / None (never here or forgotten)."""
        room_user = join_key(room_id, user_id)
        if room_user in self._room_joined:
            return "join"
        if room_user in self._room_invited:
            return "invite"
        if room_user in self._room_knocked:
            return "knock"
        if room_user in self._room_left:
            return "leave"
        return None

    def is_joined(self, user_id: str, room_id: str) -> bool:
        return join_key(room_id, user_id) in self._room_joined

    def joined_rooms(self, user_id: str) -> frozenset[str]:
        cached = self._rooms_of.get(user_id)
        if cached is None:
            cached = frozenset(
                _split(key)[1]
                for key in self._user_joined.keys_with_prefix(user_id.encode() + SEPARATOR)
            )
            self._rooms_of.put(user_id, cached)
        return cached

    def invited_rooms(self, user_id: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for key, value in self._user_invited.iter_prefix(user_id.encode() + SEPARATOR):
            yield _split(key)[1], json.loads(value)

    def knocked_rooms(self, user_id: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for key, value in self._user_knocked.iter_prefix(user_id.encode() + SEPARATOR):
            yield _split(key)[1], json.loads(value)

    def left_rooms(self, user_id: str) -> Iterator[str]:
        for key in self._user_left.keys_with_prefix(user_id.encode() + SEPARATOR):
            yield _split(key)[1]

    def membership_count(self, room_id: str, user_id: str) -> int | None:
        """The stream position of the user's current invite, knock or leave."""
        room_user = join_key(room_id, user_id)
        for tree in (self._room_invited, self._room_knocked, self._room_left):
            stored = tree.get(room_user)
            if stored is not None:
                return from_u64(stored)
        return None

    def joined_members(self, room_id: str) -> frozenset[str]:
        cached = self._joined.get(room_id)
        if cached is None:
            cached = frozenset(
                _split(key)[1]
                for key in self._room_joined.keys_with_prefix(room_id.encode() + SEPARATOR)
            )
            self._joined.put(room_id, cached)
        return cached

    def joined_servers(self, room_id: str) -> frozenset[str]:
        """The servers of the room's joined members (ours included): from a per-server
        count kept with each membership change, not from every member each time."""
        counts = self._servers.get(room_id)
        if counts is None:
            counts = {}
            for member in self.joined_members(room_id):
                server = member.partition(":")[2]
                counts[server] = counts.get(server, 0) + 1
            self._servers.put(room_id, counts)
        return frozenset(counts)

    def invited_members(self, room_id: str) -> frozenset[str]:
        cached = self._invited.get(room_id)
        if cached is None:
            cached = frozenset(
                _split(key)[1]
                for key in self._room_invited.keys_with_prefix(room_id.encode() + SEPARATOR)
            )
            self._invited.put(room_id, cached)
        return cached

    def _follow_membership(
        self, room_id: str, user_id: str, previous: str | None, membership: str
    ) -> None:
        """Bring the cached sets in line with one membership change, without reading the
        room's members again (in a room of 10,000, a join used to reload all of them)."""
        servers = self._servers.peek(room_id)
        if servers is not None and (previous == "join") != (membership == "join"):
            server = user_id.partition(":")[2]
            count = servers.get(server, 0) + (1 if membership == "join" else -1)
            changed = {**servers, server: count}
            if count <= 0:
                del changed[server]
            self._servers.put(room_id, changed)
        for cache, key, member, inside in (
            (self._joined, room_id, user_id, membership == "join"),
            (self._invited, room_id, user_id, membership == "invite"),
            (self._rooms_of, user_id, room_id, membership == "join"),
        ):
            cached = cache.peek(key)
            if cached is None or (member in cached) == inside:
                continue
            cache.put(key, cached | {member} if inside else cached - {member})

    def _changed_elsewhere(self, item: list[str]) -> None:
        """Follow another process's change. The sets are idempotent; the per-server
        counts are followed only while the joined set shows the change is new here
        (else they may have been read after it: read them again)."""
        room_id, user_id, membership = item
        joined = self._joined.peek(room_id)
        if joined is None or (user_id in joined) == (membership == "join"):
            self._servers.discard(room_id)
            previous = "join" if membership == "join" else None
        else:
            previous = "join" if user_id in joined else None
        self._follow_membership(room_id, user_id, previous, membership)
        self._counts.discard((room_id, "joined"))
        self._counts.discard((room_id, "invited"))

    def _forget(self) -> None:
        for cache in (self._counts, self._joined, self._invited, self._servers, self._rooms_of):
            cache.clear()

    def member_count(self, room_id: str, kind: str) -> int:
        """How many members are `"joined"` or `"invited"`."""
        cached = self._counts.get((room_id, kind))
        if cached is not None:
            return cached
        tree = self._joined_count if kind == "joined" else self._invited_count
        stored = tree.get(room_id.encode())
        count = from_u64(stored) if stored is not None else 0
        self._counts.put((room_id, kind), count)
        return count

    def rooms_shared(self, user_id: str, other_user_id: str) -> bool:
        return any(self.is_joined(other_user_id, room) for room in self.joined_rooms(user_id))
