"""`GET /_matrix/federation/v1/hierarchy/{roomId}`: one of our spaces, for another server.

Spec: `content/server-server-api.md` "Spaces"
(`data/api/server-server/space_hierarchy.yaml`). Behind the X-Matrix gate
and the room's server ACL. The room and its direct children, as far as the
asking server may peek at or join them (`Hierarchy.for_server`); 404
`M_NOT_FOUND` for a room this server is not in or will not show it.
"""

from __future__ import annotations

from ..query import query_bool
from ..request import services
from .auth import origin, require_server_allowed, signed_blueprint

blueprint = signed_blueprint("federation_hierarchy", __name__)


@blueprint.get("/_matrix/federation/v1/hierarchy/<room_id>")
async def hierarchy(room_id: str) -> dict:
    require_server_allowed(room_id)
    return services().rooms.hierarchy.for_server(origin(), room_id, query_bool("suggested_only"))
