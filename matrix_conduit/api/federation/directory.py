"""`GET` and `POST /_matrix/federation/v1/publicRooms`: our room directory, for other servers.

Spec: `content/server-server-api.md` "Published Room Directory"
(`data/api/server-server/public_rooms.yaml`). Behind the X-Matrix gate; then
`allow_public_rooms_over_federation = false` answers 403 `M_FORBIDDEN` (the
servers asking relay it to their users as "not allowed to view"). Only rooms
published on this server are listed (the spec: not those of other servers'
directories). `limit` 0 or absent means no limit; `since` is a token of an
earlier answer of ours.
"""

from __future__ import annotations

import dataclasses

from quart import request

from ...errors import forbidden, invalid_param
from ...service.rooms.directory import PublicRoomsQuery
from ..client.directory import search_query
from ..query import optional_query_int, query_bool
from ..request import config, json_object, services
from .auth import signed_blueprint

blueprint = signed_blueprint("federation_directory", __name__)

PATH = "/_matrix/federation/v1/publicRooms"


def _require_shared() -> None:
    if not config().allow_public_rooms_over_federation:
        raise forbidden(
            "This server does not share its room directory with other servers "
            "(allow_public_rooms_over_federation = false)."
        )


@blueprint.get(PATH)
async def public_rooms() -> dict:
    _require_shared()
    query = PublicRoomsQuery(
        limit=optional_query_int("limit", minimum=0) or None,
        since=request.args.get("since"),
        include_all_networks=query_bool("include_all_networks"),
        third_party_instance_id=request.args.get("third_party_instance_id"),
    )
    if query.include_all_networks and query.third_party_instance_id is not None:
        raise invalid_param(
            "`third_party_instance_id` can only be used when `include_all_networks` is false."
        )
    return services().rooms.directory.answer(query)


@blueprint.post(PATH)
async def search_public_rooms() -> dict:
    _require_shared()
    query = search_query(await json_object())
    if query.limit == 0:
        query = dataclasses.replace(query, limit=None)
    return services().rooms.directory.answer(query)
