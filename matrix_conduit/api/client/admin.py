"""`GET /admin/whois/{userId}`: a user's sessions, for server admins and the user.

Spec: `data/api/client-server/admin.yaml`.
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import forbidden
from ..auth import authenticate
from ..request import services
from .routes import client_route

blueprint = Blueprint("admin", __name__)


@client_route(blueprint, "/admin/whois/<user_id>", methods=["GET"])
async def whois(user_id: str) -> dict:
    requester = authenticate()
    if requester.user_id != user_id and not services().users.is_admin(requester.user_id):
        raise forbidden("Only server admins may look up other users' sessions.")
    devices = {}
    for device in services().devices.of_user(user_id):
        connection = {}
        if device.last_seen_ip is not None:
            connection["ip"] = device.last_seen_ip
        if device.last_seen_ts is not None:
            connection["last_seen"] = device.last_seen_ts
        if device.last_seen_user_agent is not None:
            connection["user_agent"] = device.last_seen_user_agent
        devices[device.device_id] = {"sessions": [{"connections": [connection]}]}
    return {"user_id": user_id, "devices": devices}
