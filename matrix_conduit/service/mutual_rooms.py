"""The rooms a user shares with another user, page by page.

Spec: `content/client-server-api/modules/mutual_rooms.md` (v1.19, MSC2666)
and `data/api/client-server/mutual_rooms.yaml`: rooms where *both* users are
joined (invites and knocks do not count), with their total `count`. Pages
hold `PAGE_SIZE` rooms in room id order; a page that is not the last ends
with an opaque `next_batch`, here (as Synapse makes it) the unpadded urlsafe
base64 of its last room id, so the next page starts after that id whatever
rooms were joined or left in between.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from dataclasses import dataclass

from ..errors import invalid_param
from .rooms.state_cache import StateCache

PAGE_SIZE = 100


@dataclass(frozen=True)
class MutualRoomsPage:
    joined: list[str]
    count: int
    """All the shared rooms, not only this page's."""
    next_batch: str | None
    """The token of the next page; None on the last page."""


class MutualRooms:
    def __init__(self, state_cache: StateCache) -> None:
        self._state_cache = state_cache

    def page(self, user_id: str, other_user_id: str, from_token: str | None) -> MutualRoomsPage:
        """The shared joined rooms after `from_token` (None: from the first)."""
        shared = sorted(
            self._state_cache.joined_rooms(user_id) & self._state_cache.joined_rooms(other_user_id)
        )
        rest = shared if from_token is None else shared[bisect_right(shared, _decode(from_token)) :]
        if len(rest) <= PAGE_SIZE:
            return MutualRoomsPage(rest, len(shared), None)
        joined = rest[:PAGE_SIZE]
        return MutualRoomsPage(joined, len(shared), _encode(joined[-1]))


def _encode(room_id: str) -> str:
    return base64.urlsafe_b64encode(room_id.encode()).decode().rstrip("=")


def _decode(token: str) -> str:
    try:
        room_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        room_id = ""
    if not room_id.startswith("!"):
        raise invalid_param("`from` is not a token this server gave.")
    return room_id
