"""How stored room events look to clients: the spec's ClientEvent and stripped state.

Spec: `content/client-server-api/_index.md`, "Room Events" (ClientEvent,
ClientEventWithoutRoomID) and "Stripped state" (used for invites and knocks).
The server stores each PDU with its `event_id` and an `unsigned` object; this
module chooses what of that a client sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CLIENT_EVENT_KEYS = ("content", "event_id", "origin_server_ts", "sender", "type", "state_key")

STRIPPED_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.encryption",
)
"""The state an invited or knocking user is shown (spec: Stripped state)."""


def client_event(
    event: Mapping[str, Any],
    *,
    with_room_id: bool = True,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    """The ClientEvent form of a stored event.

    `transaction_id` goes in `unsigned` when the event is served to the device
    that sent it, so the client can match it with its local echo.
    """
    result = {key: event[key] for key in CLIENT_EVENT_KEYS if key in event}
    if with_room_id:
        result["room_id"] = event["room_id"]
    if "redacts" in event:
        result["redacts"] = event["redacts"]
    unsigned = dict(event.get("unsigned") or {})
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if unsigned:
        result["unsigned"] = unsigned
    return result


def stripped_state_event(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": event["type"],
        "state_key": event.get("state_key", ""),
        "content": event.get("content", {}),
        "sender": event["sender"],
    }


def stripped_state(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [stripped_state_event(event) for event in events]
