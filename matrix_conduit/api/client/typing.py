"""Typing notifications.

Spec: `content/client-server-api/modules/typing_notifications.md`,
`data/api/client-server/typing.yaml` (`PUT /rooms/{roomId}/typing/{userId}`).
Users say only that they themselves are typing, in rooms they are joined to
(403 otherwise). `timeout` is needed only when starting to type; a client that
leaves it out gets `DEFAULT_TIMEOUT_MS`.
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import missing_param
from ..auth import authenticate
from ..fields import optional_bool, optional_int
from ..request import json_object, services
from .ownership import require_own
from .routes import client_route

blueprint = Blueprint("typing", __name__)

DEFAULT_TIMEOUT_MS = 30_000


@client_route(blueprint, "/rooms/<room_id>/typing/<user_id>", methods=["PUT"])
async def set_typing(room_id: str, user_id: str) -> dict:
    require_own(authenticate(), user_id, "typing notifications")
    body = await json_object()
    if "typing" not in body:
        raise missing_param("typing")
    typing = optional_bool(body, "typing", default=False)
    timeout_ms = optional_int(body, "timeout")
    services().typing.set_typing(
        room_id, user_id, typing, DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms
    )
    return {}
