"""`GET /room_summary/{roomIdOrAlias}`: what a room is, before joining it.

Spec: `content/client-server-api/_index.md` "Room Summaries" and
`data/api/client-server/room_summary.yaml` (v1.15, MSC3266); the visibility
rules and the federation fallback are `service/rooms/hierarchy.py`
(`room_summary`). Also served where clients written against MSC3266 call it:
`/_matrix/client/v1/rooms/{roomIdOrAlias}/summary` and the unstable
`im.nheko.summary` paths. An access token is optional: without one only rooms
anyone may peek at (public, knockable, world-readable) are described, and
`membership` is left out; with one, `membership` is the requester's (`leave`
when they have none, as Synapse answers).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...core.ids import is_valid_server_name
from ...errors import invalid_param
from ..auth import authenticate_if_present
from ..request import services
from .routes import versioned_route

blueprint = Blueprint("summary", __name__)

UNSTABLE = ("unstable",)


@versioned_route(
    blueprint, "client", "/room_summary/<path:room_id_or_alias>", methods=["GET"], versions=("v1",)
)
@versioned_route(
    blueprint,
    "client",
    "/rooms/<path:room_id_or_alias>/summary",
    methods=["GET"],
    versions=("v1",),
)
@versioned_route(
    blueprint,
    "client",
    "/im.nheko.summary/rooms/<path:room_id_or_alias>/summary",
    methods=["GET"],
    versions=UNSTABLE,
)
@versioned_route(
    blueprint,
    "client",
    "/im.nheko.summary/summary/<path:room_id_or_alias>",
    methods=["GET"],
    versions=UNSTABLE,
)
async def room_summary(room_id_or_alias: str) -> dict:
    requester = authenticate_if_present(allow_guest=True)
    via = request.args.getlist("via")
    for server in via:
        if not is_valid_server_name(server):
            raise invalid_param(f"`via` is not a server name: {server[:300]!r}.")
    if room_id_or_alias.startswith("#"):
        room_id, alias_servers = await services().remote_membership.resolve_alias(room_id_or_alias)
        via = [*via, *alias_servers]
    elif room_id_or_alias.startswith("!"):
        room_id = room_id_or_alias
    else:
        raise invalid_param(f"{room_id_or_alias[:300]!r} is not a room id or alias.")
    user_id = requester.user_id if requester else None
    summary = await services().rooms.hierarchy.room_summary(user_id, room_id, via)
    if user_id is not None:
        summary["membership"] = _membership(room_id, user_id)
    return summary


def _membership(room_id: str, user_id: str) -> str:
    """The requester's membership: from their member event where this server has the
    room's state (`ban` included), else what it knows of invites and knocks."""
    rooms = services().rooms
    if rooms.hierarchy.is_known(room_id):
        membership = rooms.timeline.state_content(room_id, "m.room.member", user_id).get(
            "membership"
        )
        if membership in ("invite", "join", "knock", "leave", "ban"):
            return membership
    return rooms.state_cache.membership(room_id, user_id) or "leave"
