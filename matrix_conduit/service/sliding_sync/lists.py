"""A list's window: the user's rooms by recency, filtered, cut to the requested ranges.

Spec: MSC4186 ("Lists", "SlidingRoomFilter"). The rooms come from the
user's index (`index.py`), newest bump stamp first; the walk stops at the
end of the last range when nothing but the count needs the rest. Without
filters the count is kept with the index; with filters it is a walk over the
index entries alone (their stored flags), reading no room. `is_dm` reads
`m.direct` once per request, `spaces` each named space's state once (its
`m.space.child` events, not subspaces, only spaces the user is joined to);
`tags` reads each candidate room's tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .index import Entry, RoomIndex
from .requests import Filters, ListRequest


@dataclass(frozen=True)
class Window:
    count: int
    room_ids: list[str]
    """In list order: the rooms inside the ranges."""
    positions: list[int]
    """Each room's index in the filtered list."""
    entries: dict[str, Entry]

    def ops(self, ranges: tuple[tuple[int, int], ...] | None) -> list[dict]:
        """MSC3575's `SYNC` operations, one per range, for clients that read them."""
        spans = ranges if ranges is not None else ((0, max(self.count - 1, 0)),)
        return [
            {
                "op": "SYNC",
                "range": [start, end],
                "room_ids": [
                    room
                    for room, position in zip(self.room_ids, self.positions, strict=True)
                    if start <= position <= end
                ],
            }
            for start, end in spans
        ]


class ListReader:
    def __init__(
        self,
        index: RoomIndex,
        dm_rooms: Callable[[str], set[str]],
        tags: Callable[[str, str], dict],
        invite_is_direct: Callable[[str, str], bool],
        space_children: Callable[[str, str], set[str]],
    ) -> None:
        self._index = index
        self._dm_rooms = dm_rooms
        self._tags = tags
        self._invite_is_direct = invite_is_direct
        self._space_children = space_children

    def window(self, user_id: str, request: ListRequest) -> Window:
        filters = request.filters
        ranges = request.ranges
        last = max((end for _, end in ranges), default=-1) if ranges is not None else None
        matches = self._matcher(user_id, filters)
        room_ids: list[str] = []
        positions: list[int] = []
        entries: dict[str, Entry] = {}
        position = 0
        for entry in self._index.entries(user_id):
            if not matches(entry):
                continue
            if ranges is None or any(start <= position <= end for start, end in ranges):
                room_ids.append(entry.room_id)
                positions.append(position)
                entries[entry.room_id] = entry
            position += 1
            if filters.empty and last is not None and position > last:
                return Window(self._index.count(user_id), room_ids, positions, entries)
        return Window(position, room_ids, positions, entries)

    def _matcher(self, user_id: str, filters: Filters) -> Callable[[Entry], bool]:
        if filters.empty:
            return lambda entry: True
        dm_rooms = self._dm_rooms(user_id) if filters.is_dm is not None else set()
        in_spaces: set[str] = set()
        for space in filters.spaces or ():
            in_spaces |= self._space_children(user_id, space)

        def matches(entry: Entry) -> bool:
            if (
                filters.is_invite is not None
                and (entry.membership == "invite") != filters.is_invite
            ):
                return False
            if filters.is_encrypted is not None and entry.encrypted != filters.is_encrypted:
                return False
            if filters.room_types is not None and entry.room_type not in filters.room_types:
                return False
            if entry.room_type in filters.not_room_types:
                return False
            if filters.spaces is not None and entry.room_id not in in_spaces:
                return False
            if filters.is_dm is not None:
                is_dm = entry.room_id in dm_rooms or (
                    entry.membership == "invite" and self._invite_is_direct(user_id, entry.room_id)
                )
                if is_dm != filters.is_dm:
                    return False
            if filters.tags is not None or filters.not_tags:
                tags = self._tags(user_id, entry.room_id)
                if any(tag in tags for tag in filters.not_tags):
                    return False
                if filters.tags is not None and not any(tag in tags for tag in filters.tags):
                    return False
            return True

        return matches
