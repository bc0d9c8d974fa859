"""Room state and members.

Spec: `data/api/client-server/room_state.yaml` (`PUT
/rooms/{roomId}/state/{eventType}/{stateKey}`), `rooms.yaml` (`GET
/rooms/{roomId}/state`, `.../state/{eventType}/{stateKey}`, `.../members`,
`.../joined_members`).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.client_events import client_event
from ...errors import MatrixError
from ...service.rooms.room_events import parse_token
from ..auth import authenticate
from ..request import json_object, services
from .messages import client_events
from .routes import client_route

blueprint = Blueprint("state", __name__)


@client_route(blueprint, "/rooms/<room_id>/state/<event_type>/<path:state_key>", methods=["PUT"])
@client_route(blueprint, "/rooms/<room_id>/state/<event_type>/", methods=["PUT"])
@client_route(blueprint, "/rooms/<room_id>/state/<event_type>", methods=["PUT"])
async def put_state(room_id: str, event_type: str, state_key: str = "") -> dict:
    requester = authenticate()
    content = await json_object()
    event_id = await services().rooms.events.send(
        room_id, requester.user_id, requester.device_id, event_type, content, state_key=state_key
    )
    return {"event_id": event_id}


@client_route(blueprint, "/rooms/<room_id>/state/<event_type>/<path:state_key>", methods=["GET"])
@client_route(blueprint, "/rooms/<room_id>/state/<event_type>/", methods=["GET"])
@client_route(blueprint, "/rooms/<room_id>/state/<event_type>", methods=["GET"])
async def get_state_event(room_id: str, event_type: str, state_key: str = "") -> dict:
    requester = authenticate(allow_guest=True)
    event = services().rooms.events.state_event(requester.user_id, room_id, event_type, state_key)
    if request.args.get("format") == "event":
        return client_event(event)
    return dict(event.get("content") or {})


@client_route(blueprint, "/rooms/<room_id>/state", methods=["GET"])
async def get_state(room_id: str) -> list:
    requester = authenticate(allow_guest=True)
    return client_events(requester, services().rooms.events.state(requester.user_id, room_id))


@client_route(blueprint, "/rooms/<room_id>/members", methods=["GET"])
async def members(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    memberships = ("join", "invite", "knock", "leave", "ban")
    membership = request.args.get("membership")
    not_membership = request.args.get("not_membership")
    for name, value in (("membership", membership), ("not_membership", not_membership)):
        if value is not None and value not in memberships:
            raise MatrixError(400, "M_INVALID_PARAM", f"`{name}` must be one of {memberships}.")
    at = request.args.get("at")
    found = services().rooms.events.members(
        requester.user_id,
        room_id,
        at=parse_token(at, "at") if at is not None else None,
        membership=membership,
        not_membership=not_membership,
    )
    return {"chunk": client_events(requester, found)}


@client_route(blueprint, "/rooms/<room_id>/joined_members", methods=["GET"])
async def joined_members(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    return {"joined": services().rooms.events.joined_members(requester.user_id, room_id)}
