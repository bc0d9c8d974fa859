"""Room aliases and the public room directory.

Spec: `data/api/client-server/directory.yaml` (`/directory/room/{roomAlias}`,
`/rooms/{roomId}/aliases`), `list_public_rooms.yaml` (`/publicRooms`,
`/directory/list/room/{roomId}`). `/publicRooms?server=X` of another server
asks X over federation (`service/federation/public_rooms.py`).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from ...core.ids import InvalidIdentifier, RoomAlias, is_on_server, is_valid_server_name
from ...errors import MatrixError, bad_json, forbidden, invalid_param, not_found
from ...service.rooms.directory import PublicRoomsQuery
from ..auth import authenticate, authenticate_if_present
from ..fields import optional_bool, optional_int, optional_object, optional_str, required_str
from ..query import optional_query_int
from ..request import config, json_object, services
from .routes import client_route

blueprint = Blueprint("directory", __name__)


def _local_alias(alias: str) -> RoomAlias:
    try:
        parsed = RoomAlias.parse(alias)
    except InvalidIdentifier as error:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"{alias!r} is not a room alias: {error}"
        ) from None
    if not is_on_server(alias, config().server_name):
        raise MatrixError(
            400, "M_INVALID_PARAM", f"{alias} is on another server; only local aliases here."
        )
    return parsed


@client_route(blueprint, "/directory/room/<path:room_alias>", methods=["GET"])
async def get_alias(room_alias: str) -> dict:
    _local_alias(room_alias)
    room_id = await services().rooms.aliases.resolve_or_ask(room_alias)
    if room_id is None:
        raise not_found(f"Room alias {room_alias} not found.")
    return {"room_id": room_id, "servers": [config().server_name]}


@client_route(blueprint, "/directory/room/<path:room_alias>", methods=["PUT"])
async def put_alias(room_alias: str) -> dict:
    requester = authenticate()
    _local_alias(room_alias)
    room_id = required_str(await json_object(), "room_id")
    rooms = services().rooms
    if rooms.aliases.resolve(room_alias) is not None:
        raise MatrixError(409, "M_UNKNOWN", f"Room alias {room_alias} already exists.")
    rooms.aliases.check_namespace(room_alias, requester.user_id, requester.appservice)
    if not rooms.state_cache.is_joined(requester.user_id, room_id):
        raise forbidden("You must be in the room to give it an alias.")
    with services().db.batch() as batch:
        rooms.aliases.set(room_alias, room_id, requester.user_id, batch)
    return {}


@client_route(blueprint, "/directory/room/<path:room_alias>", methods=["DELETE"])
async def delete_alias(room_alias: str) -> dict:
    requester = authenticate()
    _local_alias(room_alias)
    rooms = services().rooms
    room_id = rooms.aliases.resolve(room_alias)
    if room_id is None:
        raise not_found(f"Room alias {room_alias} not found.")
    allowed = (
        rooms.aliases.creator(room_alias) == requester.user_id
        or services().users.is_admin(requester.user_id)
        or rooms.timeline.power_levels(room_id).can_send(
            requester.user_id, "m.room.canonical_alias", True
        )
    )
    if not allowed:
        raise forbidden("Only the alias's creator or a room moderator may delete it.")
    rooms.aliases.check_namespace(room_alias, requester.user_id, requester.appservice)
    with services().db.batch() as batch:
        rooms.aliases.remove(room_alias, batch)
    return {}


@client_route(blueprint, "/rooms/<room_id>/aliases", methods=["GET"])
async def room_aliases(room_id: str) -> dict:
    requester = authenticate()
    rooms = services().rooms
    if not rooms.visibility.can_read_current_state(requester.user_id, room_id):
        raise forbidden(f"You are not a member of {room_id}.")
    return {"aliases": rooms.aliases.local_aliases(room_id)}


@client_route(blueprint, "/directory/list/room/<room_id>", methods=["GET"])
async def get_room_visibility(room_id: str) -> dict:
    rooms = services().rooms
    try:
        rooms.timeline.room_version(room_id)
    except KeyError:
        raise not_found(f"Room {room_id} not found.") from None
    return {"visibility": "public" if rooms.directory.is_public(room_id) else "private"}


@client_route(blueprint, "/directory/list/room/<room_id>", methods=["PUT"])
async def set_room_visibility(room_id: str) -> dict:
    requester = authenticate()
    visibility = optional_str(await json_object(), "visibility") or "public"
    if visibility not in ("public", "private"):
        raise bad_json('`visibility` must be "public" or "private".')
    rooms = services().rooms
    try:
        power_levels = rooms.timeline.power_levels(room_id)
    except KeyError:
        raise not_found(f"Room {room_id} not found.") from None
    if not (
        services().users.is_admin(requester.user_id)
        or power_levels.can_send(requester.user_id, "m.room.canonical_alias", True)
    ):
        raise forbidden("You need the power to change the room's aliases to list it.")
    with services().db.batch() as batch:
        rooms.directory.set_public(room_id, visibility == "public", batch)
    return {}


def _remote_server() -> str | None:
    """The `server` query parameter when it names another server (else None: ours)."""
    server = request.args.get("server")
    if server is None or server == config().server_name:
        return None
    if not is_valid_server_name(server):
        raise invalid_param(f"`server` is not a server name: {server[:300]!r}.")
    return server


def _room_types(search: dict[str, Any]) -> tuple[str | None, ...] | None:
    value = search.get("room_types")
    if value is None:
        return None
    if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
        raise bad_json("`filter.room_types` must be a list of room types (strings or null).")
    return tuple(value)


def search_query(body: dict[str, Any]) -> PublicRoomsQuery:
    """The fields of a `POST /publicRooms` body (the client's and the federation one's).

    Spec: `list_public_rooms.yaml`, server-server `public_rooms.yaml`:
    `third_party_instance_id` "can only be used if `include_all_networks`
    is false".
    """
    search = optional_object(body, "filter") or {}
    query = PublicRoomsQuery(
        limit=optional_int(body, "limit"),
        since=optional_str(body, "since"),
        search_term=optional_str(search, "generic_search_term"),
        room_types=_room_types(search),
        include_all_networks=optional_bool(body, "include_all_networks", default=False),
        third_party_instance_id=optional_str(body, "third_party_instance_id"),
    )
    if query.include_all_networks and query.third_party_instance_id is not None:
        raise invalid_param(
            "`third_party_instance_id` can only be used when `include_all_networks` is false."
        )
    if query.limit is not None and query.limit < 0:
        raise invalid_param("`limit` must not be negative.")
    return query


async def _answer(server: str | None, query: PublicRoomsQuery) -> dict:
    if server is None:
        return services().rooms.directory.answer(query)
    return await services().remote_public_rooms.page(server, query)


@client_route(blueprint, "/publicRooms", methods=["GET"])
async def public_rooms() -> dict:
    """Our directory for anyone; another server's (`server`) only for a logged-in user,
    as Synapse does, so this server is no anonymous proxy to every other one."""
    server = _remote_server()
    if server is None:
        authenticate_if_present(allow_guest=True)
    else:
        authenticate(allow_guest=True)
    query = PublicRoomsQuery(
        limit=optional_query_int("limit", minimum=0), since=request.args.get("since")
    )
    return await _answer(server, query)


@client_route(blueprint, "/publicRooms", methods=["POST"])
async def search_public_rooms() -> dict:
    authenticate()
    server = _remote_server()
    return await _answer(server, search_query(await json_object()))
