"""`GET /rooms/{roomId}/hierarchy`: the rooms of a space.

Spec: `data/api/client-server/space_hierarchy.yaml`; the walk is
`service/rooms/hierarchy.py`. `from` is an offset into the walk.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...errors import MatrixError
from ..auth import authenticate
from ..request import services
from .messages import query_int
from .routes import client_route

blueprint = Blueprint("spaces", __name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@client_route(blueprint, "/rooms/<room_id>/hierarchy", methods=["GET"], versions=("v1",))
async def hierarchy(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    offset = request.args.get("from", "0")
    if not offset.isdigit():
        raise MatrixError(400, "M_INVALID_PARAM", "`from` is not a valid token.")
    suggested = request.args.get("suggested_only", "false")
    if suggested not in ("true", "false"):
        raise MatrixError(400, "M_INVALID_PARAM", "`suggested_only` must be true or false.")
    max_depth = request.args.get("max_depth")
    rooms, next_offset = services().rooms.hierarchy.walk(
        requester.user_id,
        room_id,
        suggested_only=suggested == "true",
        max_depth=query_int("max_depth", 0) if max_depth is not None else None,
        offset=int(offset),
        limit=max(1, min(query_int("limit", DEFAULT_LIMIT), MAX_LIMIT)),
    )
    answer: dict = {"rooms": rooms}
    if next_offset is not None:
        answer["next_batch"] = str(next_offset)
    return answer
