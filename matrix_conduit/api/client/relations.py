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
from ..query import query_int
from ..request import services
from .messages import client_events
from .routes import client_route

blueprint = Blueprint("relations", __name__)

V1 = ("v1",)
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def _optional_token(name: str) -> int | None:
    value = request.args.get(name)
    return parse_token(value, name) if value is not None else None


RELATIONS = "/rooms/<room_id>/relations/<event_id>"


@client_route(blueprint, RELATIONS, methods=["GET"], versions=V1)
@client_route(blueprint, RELATIONS + "/<rel_type>", methods=["GET"], versions=V1)
@client_route(blueprint, RELATIONS + "/<rel_type>/<event_type>", methods=["GET"], versions=V1)
async def relations(
    room_id: str, event_id: str, rel_type: str | None = None, event_type: str | None = None
) -> dict:
    """Each id is one path segment: a v3 event id's `/` arrives as `%2F` (`url_routing`)."""
    requester = authenticate(allow_guest=True)
    direction = request.args.get("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", '`dir` must be "b" or "f".')
    children, next_token = services().rooms.relations.page(
        requester.user_id,
        room_id,
        event_id,
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
