"""The extensions of a sliding sync response: to-device, e2ee, account data, receipts, typing.

Spec: MSC3885 (to-device: its own `since`/`next_batch`, messages kept until a
request with the `next_batch` that carried them), MSC3884 (e2ee:
`device_lists`, `device_one_time_keys_count`,
`device_unused_fallback_key_types`), MSC3959 (account data, global and per
room), MSC3960 (receipts), MSC3961 (typing). The per-room ones cover the
rooms of the lists and subscriptions the extension names (`lists`, `rooms`,
`*` or absent: all of them).

To-device messages come from the same per-device queue as `/sync`'s
(`ToDevice.deliver`, positions on the global counter): whichever of the two
acknowledges a message deletes it, so a message is handed to a device until
one of them acknowledges it and never after, across both APIs and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import MatrixError
from ...service.rooms.room_events import parse_token
from .requests import ExtensionRequest


@dataclass(frozen=True)
class ExtensionContext:
    user_id: str
    device_id: str | None
    since: int | None
    """The connection's previous stream position (None: its first request)."""
    upto: int
    room_since: dict[str, int | None]
    """The rooms the per-room extensions may cover, with the position the connection
    has each from (None: new to the connection)."""
    list_rooms: dict[str, list[str]]
    subscriptions: list[str]


class Extensions:
    def __init__(self, services: Any) -> None:
        self._services = services

    def build(
        self, requests: dict[str, ExtensionRequest], context: ExtensionContext
    ) -> dict[str, Any]:
        builders = {
            "to_device": self._to_device,
            "e2ee": self._e2ee,
            "account_data": self._account_data,
            "receipts": self._receipts,
            "typing": self._typing,
        }
        results = {}
        for name, request in requests.items():
            if request.enabled:
                result = builders[name](request, context)
                if result is not None:
                    results[name] = result
        return results

    @staticmethod
    def has_news(extensions: dict[str, Any]) -> bool:
        """Whether anything in these results is worth ending a long poll for."""
        for name, result in extensions.items():
            if name == "to_device" and result.get("events"):
                return True
            if name == "e2ee" and any(result.get("device_lists", {}).values()):
                return True
            if name == "account_data" and (result.get("global") or result.get("rooms")):
                return True
            if name in ("receipts", "typing") and result.get("rooms"):
                return True
        return False

    def _rooms_for(self, request: ExtensionRequest, context: ExtensionContext) -> list[str]:
        lists = request.lists
        rooms = request.rooms
        chosen: dict[str, None] = {}
        for name, room_ids in context.list_rooms.items():
            if lists is None or "*" in lists or name in lists:
                chosen.update(dict.fromkeys(room_ids))
        for room_id in context.subscriptions:
            if rooms is None or "*" in rooms or room_id in rooms:
                chosen[room_id] = None
        return [room for room in chosen if room in context.room_since]

    def _to_device(
        self, request: ExtensionRequest, context: ExtensionContext
    ) -> dict[str, Any] | None:
        if context.device_id is None:
            return None
        since = None
        if request.since is not None:
            try:
                since = parse_token(request.since, "extensions.to_device.since")
            except MatrixError:
                raise MatrixError(
                    400,
                    "M_INVALID_PARAM",
                    "`extensions.to_device.since` is not a next_batch of ours.",
                ) from None
        events = self._services.to_device.deliver(
            context.user_id, context.device_id, since, context.upto
        )
        return {"next_batch": str(context.upto), "events": events}

    def _e2ee(self, request: ExtensionRequest, context: ExtensionContext) -> dict[str, Any] | None:
        services = self._services
        result: dict[str, Any] = {
            "device_lists": (
                services.device_sync.device_lists(context.user_id, context.since, context.upto)
                if context.since is not None
                else {"changed": [], "left": []}
            )
        }
        if context.device_id is not None:
            result["device_one_time_keys_count"] = services.keys.one_time_key_counts(
                context.user_id, context.device_id
            )
            result["device_unused_fallback_key_types"] = services.keys.unused_fallback_key_types(
                context.user_id, context.device_id
            )
        return result

    def _account_data(self, request: ExtensionRequest, context: ExtensionContext) -> dict[str, Any]:
        account_data = self._services.account_data
        rooms = {}
        for room_id in self._rooms_for(request, context):
            since = context.room_since[room_id]
            changes = account_data.changes_since(context.user_id, room_id, since or 0)
            if changes:
                rooms[room_id] = changes
        return {
            "global": account_data.changes_since(context.user_id, None, context.since or 0),
            "rooms": rooms,
        }

    def _receipts(self, request: ExtensionRequest, context: ExtensionContext) -> dict[str, Any]:
        receipts = self._services.receipts
        rooms = {}
        for room_id in self._rooms_for(request, context):
            content = receipts.receipts_since(
                room_id, context.room_since[room_id] or 0, context.user_id
            )
            if content:
                rooms[room_id] = {"type": "m.receipt", "content": content}
        return {"rooms": rooms}

    def _typing(self, request: ExtensionRequest, context: ExtensionContext) -> dict[str, Any]:
        typing = self._services.typing
        rooms = {}
        for room_id in self._rooms_for(request, context):
            since = context.room_since[room_id]
            users = typing.typing_users(room_id)
            if users if since is None else typing.last_change(room_id) > since:
                rooms[room_id] = {"type": "m.typing", "content": {"user_ids": users}}
        return {"rooms": rooms}
