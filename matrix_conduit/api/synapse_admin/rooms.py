"""Room administration (`/_synapse/admin/v1/rooms`, `v2/rooms/{roomId}` deletion).

Synapse's admin API "Rooms": the list (paging with `from`/`limit`,
`order_by`, `dir`, `search_term`, `public_rooms`, `empty_rooms`), one room's
details, its members and its current state (`service/admin_rooms.py`); and
"Delete Room API" version 2: `DELETE /v2/rooms/{roomId}` (`block`, `purge`,
`message`) answered with a `delete_id` at once, its progress at
`v2/rooms/{roomId}/delete_status` and `v2/rooms/delete_status/{delete_id}`
(`service/room_purge.py`; `new_room_user_id` and `room_name` move the members
to a new room).
"""

from __future__ import annotations

from quart import request

from ...core.ids import is_valid_room_id
from ...errors import bad_json, invalid_param
from ...service.admin_rooms import RoomQuery
from ...service.room_purge import DeletionRequest
from ..fields import optional_str
from ..query import query_bool, query_int
from ..request import json_object, services
from ._auth import require_admin
from ._routes import admin_route


@admin_route("/rooms", methods=["GET"])
async def list_rooms() -> dict:
    require_admin()
    direction = request.args.get("dir", "f")
    if direction not in ("f", "b"):
        raise invalid_param("`dir` must be `f` or `b`.")
    query = RoomQuery(
        start=query_int("from", 0, minimum=0),
        limit=query_int("limit", 100, minimum=0),
        order_by=request.args.get("order_by", "name"),
        backwards=direction == "b",
        search_term=request.args.get("search_term"),
        public_rooms=_optional_flag("public_rooms"),
        empty_rooms=_optional_flag("empty_rooms"),
    )
    return services().admin_rooms.page(query)


@admin_route("/rooms/<room_id>", methods=["GET"])
async def room_details(room_id: str) -> dict:
    require_admin()
    return services().admin_rooms.details(_room_id(room_id))


@admin_route("/rooms/<room_id>/members", methods=["GET"])
async def room_members(room_id: str) -> dict:
    require_admin()
    return services().admin_rooms.members(_room_id(room_id))


@admin_route("/rooms/<room_id>/state", methods=["GET"])
async def room_state(room_id: str) -> dict:
    require_admin()
    return services().admin_rooms.state(_room_id(room_id), request.args.get("type") or None)


@admin_route("/rooms/<room_id>", methods=["DELETE"], version="v2")
async def delete_room(room_id: str) -> dict:
    requester = require_admin()
    body = await json_object(optional=True)
    flags = {}
    for name, default in (("block", False), ("purge", True), ("force_purge", False)):
        value = body.get(name, default)
        if not isinstance(value, bool):
            raise bad_json(f"Param '{name}' must be a boolean, if given.")
        flags[name] = value
    delete_id = services().room_purge.start(
        DeletionRequest(
            room_id=_room_id(room_id),
            requester=requester.user_id,
            block=flags["block"],
            purge=flags["purge"],
            message=optional_str(body, "message"),
            new_room_user_id=optional_str(body, "new_room_user_id"),
            room_name=optional_str(body, "room_name"),
        )
    )
    return {"delete_id": delete_id}


@admin_route("/rooms/<room_id>/delete_status", methods=["GET"], version="v2")
async def delete_status_of_room(room_id: str) -> dict:
    require_admin()
    return {"results": services().room_purge.statuses_of_room(_room_id(room_id))}


@admin_route("/rooms/delete_status/<delete_id>", methods=["GET"], version="v2")
async def delete_status(delete_id: str) -> dict:
    require_admin()
    return services().room_purge.status(delete_id)


def _room_id(room_id: str) -> str:
    if not is_valid_room_id(room_id):
        raise invalid_param(f"{room_id} is not a legal room ID.")
    return room_id


def _optional_flag(name: str) -> bool | None:
    return None if request.args.get(name) is None else query_bool(name)
