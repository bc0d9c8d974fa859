"""`GET /rooms/{roomId}/hierarchy`: the rooms of a space.

Spec: `data/api/client-server/space_hierarchy.yaml`; the walk is
`service/rooms/hierarchy.py`. `from` is an offset into the walk. `via`
(repeatable; ours, as `/join` has it) names servers to ask for a space this
server is not in, besides the server of its room id.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.ids import is_valid_server_name
from ...errors import invalid_param
from ..auth import authenticate
from ..query import optional_query_int, query_bool, query_int, query_offset
from ..request import services
from .routes import client_route

blueprint = Blueprint("spaces", __name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def _via() -> list[str]:
    servers = request.args.getlist("via")
    for server in servers:
        if not is_valid_server_name(server):
            raise invalid_param(f"`via` is not a server name: {server[:300]!r}.")
    return servers


@client_route(blueprint, "/rooms/<room_id>/hierarchy", methods=["GET"], versions=("v1",))
async def hierarchy(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    rooms, next_offset = await services().rooms.hierarchy.walk(
        requester.user_id,
        room_id,
        suggested_only=query_bool("suggested_only"),
        max_depth=optional_query_int("max_depth", minimum=0),
        offset=query_offset("from"),
        limit=max(1, min(query_int("limit", DEFAULT_LIMIT), MAX_LIMIT)),
        via=_via(),
    )
    answer: dict = {"rooms": rooms}
    if next_offset is not None:
        answer["next_batch"] = str(next_offset)
    return answer
