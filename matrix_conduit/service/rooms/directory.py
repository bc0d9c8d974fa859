"""The public room directory of this server: which rooms are listed.

Spec: `data/api/client-server/list_public_rooms.yaml` and `directory.yaml`
(`/directory/list/room/{roomId}`). Listing is separate from room state: a
room is listed when its creator asked for `visibility: public` or an admin
of the room set it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ...core.digits import parse_decimal
from ...errors import MatrixError
from ...storage import Database, WriteBatch
from .state_cache import StateCache
from .timeline import Timeline

TREES = ("publicroomids",)


@dataclass(frozen=True, slots=True)
class PublicRoomsQuery:
    """What a `/publicRooms` request asks for, from a client or another server.

    Spec: `list_public_rooms.yaml` and the server-server `public_rooms.yaml`
    (the same fields in both). `since` is a token of whichever server
    answers: ours are offsets, a remote's are passed back to it untouched.
    """

    limit: int | None = None
    since: str | None = None
    search_term: str | None = None
    room_types: tuple[str | None, ...] | None = None
    include_all_networks: bool = False
    third_party_instance_id: str | None = None

    @property
    def filtered(self) -> bool:
        """Whether a `filter` narrows the list (a POST; a GET cannot say it)."""
        return bool(self.search_term) or self.room_types is not None

    @property
    def network(self) -> str | None:
        """The one third-party network asked for, if any (all of them: None)."""
        return None if self.include_all_networks else self.third_party_instance_id


class Directory:
    def __init__(self, db: Database, timeline: Timeline, state_cache: StateCache) -> None:
        self._public = db.tree("publicroomids")
        self._timeline = timeline
        self._state_cache = state_cache
        self.network_rooms: Callable[[str], Iterator[str]] = lambda network: iter(())
        """The rooms an appservice published for a `third_party_instance_id` (wiring)."""

    def is_public(self, room_id: str) -> bool:
        return room_id.encode() in self._public

    def set_public(self, room_id: str, public: bool, batch: WriteBatch) -> None:
        if public:
            batch.put(self._public, room_id.encode(), b"")
        else:
            batch.delete(self._public, room_id.encode())

    def public_rooms(self) -> Iterator[str]:
        return (key.decode() for key in self._public.keys_with_prefix())

    def summary(self, room_id: str) -> dict[str, Any]:
        """The room as the directory shows it (spec: PublishedRoomsChunk)."""
        content = self._timeline.state_content
        chunk: dict[str, Any] = {
            "room_id": room_id,
            "num_joined_members": self._state_cache.member_count(room_id, "joined"),
            "world_readable": content(room_id, "m.room.history_visibility").get(
                "history_visibility"
            )
            == "world_readable",
            "guest_can_join": content(room_id, "m.room.guest_access").get("guest_access")
            == "can_join",
            "join_rule": content(room_id, "m.room.join_rules").get("join_rule", "invite"),
        }
        for key, event_type, field in (
            ("name", "m.room.name", "name"),
            ("topic", "m.room.topic", "topic"),
            ("canonical_alias", "m.room.canonical_alias", "alias"),
            ("avatar_url", "m.room.avatar", "url"),
        ):
            value = content(room_id, event_type).get(field)
            if isinstance(value, str) and value:
                chunk[key] = value
        room_type = content(room_id, "m.room.create").get("type")
        if isinstance(room_type, str):
            chunk["room_type"] = room_type
        return chunk

    def answer(self, query: PublicRoomsQuery) -> dict:
        """`/publicRooms` of this server's own directory, for a client or another server."""
        return self.page(
            query.limit,
            query.since,
            query.search_term,
            room_types=None if query.room_types is None else list(query.room_types),
            network=query.network,
        )

    def page(
        self,
        limit: int | None,
        since: str | None,
        search_term: str | None,
        *,
        room_types: list[str | None] | None = None,
        network: str | None = None,
    ) -> dict:
        """One page of the public room list, biggest rooms first (spec: `/publicRooms`).

        `room_types` keeps only rooms of those types (`None` in it: rooms
        without a type). `network` is a `third_party_instance_id`: the rooms
        an application service published for that network.
        """
        listed = self.public_rooms() if network is None else self.network_rooms(network)
        rooms = [self.summary(room_id) for room_id in listed]
        if room_types is not None:
            rooms = [room for room in rooms if room.get("room_type") in room_types]
        if search_term:
            needle = search_term.lower()
            rooms = [
                room
                for room in rooms
                if any(
                    needle in str(room.get(key, "")).lower()
                    for key in ("name", "topic", "canonical_alias", "room_id")
                )
            ]
        rooms.sort(key=lambda room: (-room["num_joined_members"], room["room_id"]))
        offset = 0 if since is None else parse_decimal(since)
        if offset is None:  # `int` would take `١٢٣` and `-5`
            raise MatrixError(400, "M_INVALID_PARAM", "`since` is not a valid token.")
        end = len(rooms) if limit is None else offset + max(limit, 0)
        answer: dict[str, Any] = {
            "chunk": rooms[offset:end],
            "total_room_count_estimate": len(rooms),
        }
        if end < len(rooms):
            answer["next_batch"] = str(end)
        if offset > 0:
            answer["prev_batch"] = str(max(0, offset - (end - offset)))
        return answer
