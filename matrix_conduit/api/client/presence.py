"""Presence status.

Spec: `content/client-server-api/modules/presence.md`,
`data/api/client-server/presence.yaml` (`GET`/`PUT /presence/{userId}/status`).
Users set only their own presence. A user's presence is readable by
themselves and by users who share a room with them ("Presence information is
published to all users who share a room with the target user"); others get
403. A `PUT` without `status_msg` keeps the current message; `null` or `""`
removes it.
"""

from __future__ import annotations

from quart import Blueprint

from ...core.ids import is_valid_user_id
from ...errors import forbidden, invalid_param
from ..auth import authenticate
from ..fields import optional_str, required_str
from ..request import json_object, services
from .ownership import require_own
from .routes import client_route

blueprint = Blueprint("presence", __name__)


@client_route(blueprint, "/presence/<user_id>/status", methods=["GET"])
async def get_presence(user_id: str) -> dict:
    requester = authenticate()
    if not is_valid_user_id(user_id):
        raise invalid_param(f"{user_id!r} is not a user id.")
    if requester.user_id != user_id and not services().rooms.state_cache.rooms_shared(
        requester.user_id, user_id
    ):
        raise forbidden("You can only see the presence of users you share a room with.")
    return services().presence.get(user_id)


@client_route(blueprint, "/presence/<user_id>/status", methods=["PUT"])
async def set_presence(user_id: str) -> dict:
    require_own(authenticate(), user_id, "presence")
    body = await json_object()
    state = required_str(body, "presence")
    status_msg = optional_str(body, "status_msg")
    if "status_msg" in body and status_msg is None:
        status_msg = ""
    services().presence.set_presence(user_id, state, status_msg)
    return {}
