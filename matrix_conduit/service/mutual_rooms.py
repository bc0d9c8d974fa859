"""The rooms a user shares with another user, page by page.

MSC2666 ("Get rooms in common with another user"), as Synapse serves it:
rooms where *both* users are joined (invites and knocks do not count), in
room id order, `PAGE_SIZE` at a time; a page that is not the last names the
offset of the next one (`next_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .rooms.state_cache import StateCache

PAGE_SIZE = 100


@dataclass(frozen=True)
class MutualRoomsPage:
    joined: list[str]
    next_batch: int | None
    """The offset of the next page; None on the last page."""


class MutualRooms:
    def __init__(self, state_cache: StateCache) -> None:
        self._state_cache = state_cache

    def page(self, user_id: str, other_user_id: str, start: int) -> MutualRoomsPage:
        """The shared joined rooms from offset `start` on (an offset past the end: none)."""
        shared = sorted(
            self._state_cache.joined_rooms(user_id) & self._state_cache.joined_rooms(other_user_id)
        )
        joined = shared[start : start + PAGE_SIZE]
        end = start + len(joined)
        return MutualRoomsPage(joined, end if end < len(shared) else None)
