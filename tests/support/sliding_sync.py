"""A sliding sync connection of a test user: requests to the MSC4186 endpoint, `pos` kept.

`Connection.sync()` sends the body (lists, subscriptions, extensions) with the
`pos` of the last response it processed, as a client does; `raw()` returns
the HTTP response unchecked (for errors such as `M_UNKNOWN_POS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.matrix import User, ok

SLIDING_SYNC_PREFIX = "/_matrix/client/unstable/org.matrix.simplified_msc3575"

ALL_STATE = [["*", "*"]]


def room_list(
    end: int = 19,
    *,
    timeline_limit: int = 5,
    required_state: list[list[str]] | None = None,
    **filters: Any,
) -> dict[str, Any]:
    """A list body: rooms 0..`end` by recency, with those filters."""
    body: dict[str, Any] = {
        "ranges": [[0, end]],
        "timeline_limit": timeline_limit,
        "required_state": required_state if required_state is not None else [],
    }
    if filters:
        body["filters"] = filters
    return body


@dataclass
class Connection:
    user: User
    conn_id: str = "main"
    pos: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    async def raw(
        self, body: dict[str, Any] | None = None, *, pos: str | None = None, timeout: int = 0
    ) -> httpx.Response:
        params: dict[str, Any] = {"timeout": timeout}
        if pos is not None:
            params["pos"] = pos
        return await self.user.request(
            "POST",
            "/sync",
            body={"conn_id": self.conn_id, **(self.body if body is None else body)},
            params=params,
            prefix=SLIDING_SYNC_PREFIX,
        )

    async def sync(self, body: dict[str, Any] | None = None, *, timeout: int = 0) -> dict[str, Any]:
        """One request from the last `pos` (the first without); the response's `pos` is kept."""
        if body is not None:
            self.body = body
        response = ok(await self.raw(pos=self.pos, timeout=timeout))
        self.pos = response["pos"]
        return response


def window(response: dict[str, Any], name: str) -> list[str]:
    """The room ids of a list's window, in order (its `SYNC` ops)."""
    return [room for op in response["lists"][name]["ops"] for room in op["room_ids"]]


def bodies(room: dict[str, Any]) -> list[str]:
    return [event["content"].get("body") for event in room.get("timeline", [])]


async def user_without_rooms(server: Any) -> User:
    """A new user with no room at all (the server's first account is invited to the
    admin room: that invite is declined)."""
    from tests.support.matrix import register

    user = await register(server)
    invites = ok(await user.get("/sync"))["rooms"]["invite"]
    for room_id in invites:
        await user.leave(room_id)
    return user
