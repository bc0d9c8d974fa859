"""Other servers' typing, receipts, presence and to-device messages, for our clients.

Spec: `content/server-server-api.md`, "Typing Notifications", "Receipts",
"Presence", "Send-to-device messaging"; the EDU schemas in
`data/api/server-server/definitions/event-schemas/`. Each handler checks that
the users an EDU speaks for belong to its origin (a server speaks only for
its own users), that the room's server ACL lets the origin take part (spec:
"Server Access Control Lists", typing and receipts), and that the users are
in the room it names, then hands the change
to the service our clients read, so `/sync` carries it as it carries a
local user's: typing in the room's `ephemeral`, receipts likewise, presence
of users who share a room, to-device messages in `to_device`.

To-device messages are deduplicated by (sender, `message_id`): a
transaction retried by its origin delivers each message once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import MatrixError
from ..presence import Presence
from ..receipts import READ, Receipts
from ..rooms.state_cache import StateCache
from ..to_device import ToDevice
from ..typing import Typing
from .edus import EduHandlers, MalformedEdu
from .outbox import server_of
from .remote_devices import RemoteDeviceLists

FEDERATION_TYPING_TIMEOUT_MS = 30_000
"""How long a remote user stays typing without a new `m.typing` (the EDU has no timeout;
Synapse uses 30 s too)."""


def _string(content: dict[str, Any], field: str) -> str:
    value = content.get(field)
    if not isinstance(value, str):
        raise MalformedEdu(f"`{field}` is not a string")
    return value


def _origin_user(origin: str, user_id: object) -> str:
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        raise MalformedEdu("a user id is not one")
    if server_of(user_id) != origin:
        raise MalformedEdu(f"{user_id} is not a user of {origin}")
    return user_id


class IncomingEdus:
    def __init__(
        self,
        server_name: str,
        state_cache: StateCache,
        typing: Typing,
        receipts: Receipts,
        presence: Presence,
        to_device: ToDevice,
        server_allowed: Callable[[str, str], bool],
    ) -> None:
        """`server_allowed(room_id, server_name)`: the room's server ACL."""
        self._server_name = server_name
        self._server_allowed = server_allowed
        self._state_cache = state_cache
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._to_device = to_device

    def register(self, handlers: EduHandlers, device_lists: RemoteDeviceLists) -> None:
        handlers.register("m.typing", self.typing)
        handlers.register("m.receipt", self.receipt)
        handlers.register("m.presence", self.presence)
        handlers.register("m.direct_to_device", self.direct_to_device)
        handlers.register("m.device_list_update", device_lists.device_list_update)
        handlers.register("m.signing_key_update", device_lists.signing_key_update)

    async def typing(self, origin: str, content: dict[str, Any]) -> None:
        room_id = _string(content, "room_id")
        user_id = _origin_user(origin, content.get("user_id"))
        typing = content.get("typing")
        if not isinstance(typing, bool):
            raise MalformedEdu("`typing` is not a boolean")
        if not self._server_allowed(room_id, origin):
            return
        try:
            self._typing.set_typing(room_id, user_id, typing, FEDERATION_TYPING_TIMEOUT_MS)
        except MatrixError:
            return  # not joined here: nobody of ours to tell

    async def receipt(self, origin: str, content: dict[str, Any]) -> None:
        for room_id, by_type in content.items():
            if not isinstance(by_type, dict):
                raise MalformedEdu(f"the receipts of {room_id} are not an object")
            by_user = by_type.get(READ)
            if not isinstance(by_user, dict) or not self._server_allowed(room_id, origin):
                continue
            for user_id, receipt in by_user.items():
                _origin_user(origin, user_id)
                if not isinstance(receipt, dict):
                    raise MalformedEdu(f"the receipt of {user_id} is not an object")
                event_ids = receipt.get("event_ids")
                data = receipt.get("data")
                if not isinstance(event_ids, list) or not event_ids or not isinstance(data, dict):
                    raise MalformedEdu(f"the receipt of {user_id} has no `event_ids` or `data`")
                event_id, ts = event_ids[-1], data.get("ts")
                thread_id = data.get("thread_id")
                if not isinstance(event_id, str) or not isinstance(ts, int):
                    raise MalformedEdu(f"the receipt of {user_id} has no event id or `ts`")
                self._receipts.set_remote_receipt(
                    room_id,
                    user_id,
                    READ,
                    event_id,
                    thread_id=thread_id if isinstance(thread_id, str) and thread_id else None,
                    ts=ts,
                )

    async def presence(self, origin: str, content: dict[str, Any]) -> None:
        updates = content.get("push")
        if not isinstance(updates, list):
            raise MalformedEdu("`push` is not a list")
        for update in updates:
            if not isinstance(update, dict):
                raise MalformedEdu("a presence update is not an object")
            user_id = _origin_user(origin, update.get("user_id"))
            if self._state_cache.joined_rooms(user_id):
                self._presence.set_remote(user_id, update)

    async def direct_to_device(self, origin: str, content: dict[str, Any]) -> None:
        sender = _origin_user(origin, content.get("sender"))
        event_type = _string(content, "type")
        message_id = _string(content, "message_id")
        messages = content.get("messages")
        if not isinstance(messages, dict):
            raise MalformedEdu("`messages` is not an object")
        ours = {
            user_id: by_device
            for user_id, by_device in messages.items()
            if isinstance(user_id, str)
            and server_of(user_id) == self._server_name
            and isinstance(by_device, dict)
            and all(isinstance(message, dict) for message in by_device.values())
        }
        self._to_device.send(sender, None, event_type, f"federation {message_id}", ours)
