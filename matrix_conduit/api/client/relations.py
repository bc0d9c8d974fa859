"""Child events of an event, and the threads of a room.

Spec: `data/api/client-server/relations.yaml` (`GET
/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`) and
`threads_list.yaml` (`GET /rooms/{roomId}/threads`).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...errors import MatrixError
from ...service.rooms.room_events import parse_token
from ..auth import authenticate
from ..request import services
from .messages import client_events, query_int
from .routes import client_route

blueprint = Blueprint("relations", __name__)

V1 = ("v1",)
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def _optional_token(name: str) -> int | None:
    value = request.args.get(name)
    return parse_token(value, name) if value is not None else None


@client_route(blueprint, "/rooms/<room_id>/relations/<path:event_id>", methods=["GET"], versions=V1)
async def relations(room_id: str, event_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    parts = event_id.split("/")
    if len(parts) > 3:
        raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request.")
    parent_id = parts[0]
    rel_type = parts[1] if len(parts) > 1 else None
    event_type = parts[2] if len(parts) > 2 else None
    direction = request.args.get("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", '`dir` must be "b" or "f".')
    children, next_token = services().rooms.relations.page(
        requester.user_id,
        room_id,
        parent_id,
        rel_type=rel_type,
        event_type=event_type,
        from_position=_optional_token("from"),
        to_position=_optional_token("to"),
        limit=max(1, min(query_int("limit", DEFAULT_LIMIT), MAX_LIMIT)),
        direction=direction,
    )
    answer: dict = {"chunk": client_events(requester, children)}
    if next_token is not None:
        answer["next_batch"] = str(next_token)
    return answer


@client_route(blueprint, "/rooms/<room_id>/threads", methods=["GET"], versions=V1)
async def threads(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    include = request.args.get("include", "all")
    if include not in ("all", "participated"):
        raise MatrixError(400, "M_INVALID_PARAM", '`include` must be "all" or "participated".')
    roots, next_token = services().rooms.relations.threads(
        requester.user_id,
        room_id,
        participated_only=include == "participated",
        before=_optional_token("from"),
        limit=max(1, min(query_int("limit", DEFAULT_LIMIT), MAX_LIMIT)),
    )
    answer: dict = {"chunk": client_events(requester, roots)}
    if next_token is not None:
        answer["next_batch"] = str(next_token)
    return answer
