"""Reading a room's whole history back through `/messages`, for the backfill tests.

Spec: `content/client-server-api/_index.md` § Pagination: `GET /messages` with
`dir=b` from the newest event, following `end` until a page comes without it
(the start of the room). Works for a user of ours (`tests.support.matrix.User`)
and for a Synapse account (`tests.support.synapse_rooms.Account`) alike.
"""

from __future__ import annotations

from typing import Any

from tests.support.matrix import User, ok, path_part

MAX_PAGES = 200
"""Pages read before giving up: a token that never ends is a failure, not a hang."""


async def _messages(account: Any, room_id: str, params: dict[str, Any]) -> dict[str, Any]:
    path = f"/rooms/{path_part(room_id)}/messages"
    if isinstance(account, User):
        return ok(await account.get(path, **params))
    return ok(await account.request("GET", path, **params))


async def history(account: Any, room_id: str, *, page: int = 20) -> list[dict[str, Any]]:
    """Every event `/messages?dir=b` gives `account`, page by page, oldest first."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"dir": "b", "limit": page}
        if token is not None:
            params["from"] = token
        answer = await _messages(account, room_id, params)
        events.extend(answer["chunk"])
        token = answer.get("end")
        if token is None:
            events.reverse()
            return events
    raise AssertionError(f"/messages of {room_id} still had an `end` after {MAX_PAGES} pages")


def bodies(events: list[dict[str, Any]]) -> list[str]:
    """The bodies of the messages among `events`, in order (redacted ones have none)."""
    return [
        event["content"]["body"]
        for event in events
        if event["type"] == "m.room.message" and "body" in event.get("content", {})
    ]
