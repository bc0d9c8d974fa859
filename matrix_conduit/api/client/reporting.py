"""Reporting events, rooms and users to the server's admins.

Spec: `data/api/client-server/report_content.yaml`.
"""

from __future__ import annotations

from quart import Blueprint

from ..auth import authenticate
from ..fields import optional_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("reporting", __name__)


@client_route(blueprint, "/rooms/<room_id>/report/<event_id>", methods=["POST"])
async def report_event(room_id: str, event_id: str) -> dict:
    requester = authenticate()
    reason = optional_str(await json_object(), "reason") or ""
    services().reports.report_event(requester.user_id, room_id, event_id, reason)
    return {}


@client_route(blueprint, "/rooms/<room_id>/report", methods=["POST"], versions=("v3",))
async def report_room(room_id: str) -> dict:
    requester = authenticate()
    reason = optional_str(await json_object(), "reason") or ""
    services().reports.report_room(requester.user_id, room_id, reason)
    return {}


@client_route(blueprint, "/users/<user_id>/report", methods=["POST"], versions=("v3",))
async def report_user(user_id: str) -> dict:
    requester = authenticate()
    reason = optional_str(await json_object(), "reason") or ""
    services().reports.report_user(requester.user_id, user_id, reason)
    return {}
