"""`GET /rooms/{roomId}/hierarchy`: the rooms of a space.

Spec: `data/api/client-server/space_hierarchy.yaml`; the walk is
`service/rooms/hierarchy.py`. `from` is an offset into the walk.
"""

from __future__ import annotations

from quart import Blueprint

from ..auth import authenticate
from ..query import optional_query_int, query_bool, query_int, query_offset
from ..request import services
from .routes import client_route

blueprint = Blueprint("spaces", __name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@client_route(blueprint, "/rooms/<room_id>/hierarchy", methods=["GET"], versions=("v1",))
async def hierarchy(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    rooms, next_offset = services().rooms.hierarchy.walk(
        requester.user_id,
        room_id,
        suggested_only=query_bool("suggested_only"),
        max_depth=optional_query_int("max_depth", minimum=0),
        offset=query_offset("from"),
        limit=max(1, min(query_int("limit", DEFAULT_LIMIT), MAX_LIMIT)),
    )
    answer: dict = {"rooms": rooms}
    if next_offset is not None:
        answer["next_batch"] = str(next_offset)
    return answer
