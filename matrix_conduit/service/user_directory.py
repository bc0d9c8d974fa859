"""The user directory: find users by name (`POST /user_directory/search`).

Spec: `content/client-server-api/_index.md` ("User Directory") and
`data/api/client-server/users.yaml`. Searchable are the users who share a
room with the searcher and those in rooms listed in the public directory;
nobody else is revealed.
"""

from __future__ import annotations

from typing import Any

from .rooms import Rooms

MAX_LIMIT = 50


class UserDirectory:
    def __init__(self, rooms: Rooms, displayname: Any, avatar_url: Any) -> None:
        self._rooms = rooms
        self._displayname = displayname
        self._avatar_url = avatar_url

    def _visible_users(self, searcher: str) -> set[str]:
        state_cache = self._rooms.state_cache
        users: set[str] = set()
        rooms = set(state_cache.joined_rooms(searcher)) | set(self._rooms.directory.public_rooms())
        for room_id in rooms:
            users.update(state_cache.joined_members(room_id))
        return users

    def search(self, searcher: str, term: str, limit: int) -> dict[str, Any]:
        needle = term.casefold().strip()
        limit = max(1, min(limit, MAX_LIMIT))
        matches = []
        for user_id in sorted(self._visible_users(searcher)):
            name = self._displayname(user_id)
            haystacks = [user_id.casefold()] + ([name.casefold()] if name else [])
            if any(needle in haystack for haystack in haystacks):
                result: dict[str, Any] = {"user_id": user_id}
                if name:
                    result["display_name"] = name
                avatar = self._avatar_url(user_id)
                if avatar:
                    result["avatar_url"] = avatar
                matches.append(result)
        return {"results": matches[:limit], "limited": len(matches) > limit}
