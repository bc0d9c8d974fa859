"""Account data, global and per room, and room tags (stored as `m.tag` room account data).

Spec: `content/client-server-api/modules/account_data.md` and `tags.md`;
`data/api/client-server/account-data.yaml` (`GET`/`PUT
/user/{userId}/account_data/{type}` and `/user/{userId}/rooms/{roomId}/account_data/{type}`)
and `tags.yaml` (`GET /user/{userId}/rooms/{roomId}/tags`, `PUT`/`DELETE
.../tags/{tag}`). Users read and write only their own; an invalid room id is
400 `M_INVALID_PARAM`; server-managed types cannot be set (405, in the service).
"""

from __future__ import annotations

from quart import Blueprint

from ...core.ids import is_valid_room_id
from ...errors import invalid_param, not_found
from ..auth import authenticate
from ..request import json_object, services
from .ownership import require_own
from .routes import client_route

blueprint = Blueprint("account_data", __name__)

GLOBAL = "/user/<user_id>/account_data/<path:event_type>"
PER_ROOM = "/user/<user_id>/rooms/<room_id>/account_data/<path:event_type>"
TAGS = "/user/<user_id>/rooms/<room_id>/tags"
TAG = "/user/<user_id>/rooms/<room_id>/tags/<path:tag>"


def _own_room_data(user_id: str, room_id: str) -> None:
    require_own(authenticate(), user_id, "account data")
    if not is_valid_room_id(room_id):
        raise invalid_param(f"{room_id!r} is not a room id.")


def _content(user_id: str, room_id: str | None, event_type: str) -> dict:
    content = services().account_data.get(user_id, room_id, event_type)
    if content is None:
        raise not_found(f"No {event_type} account data.")
    return content


@client_route(blueprint, GLOBAL, methods=["GET"])
async def get_global(user_id: str, event_type: str) -> dict:
    require_own(authenticate(), user_id, "account data")
    return _content(user_id, None, event_type)


@client_route(blueprint, GLOBAL, methods=["PUT"])
async def put_global(user_id: str, event_type: str) -> dict:
    require_own(authenticate(), user_id, "account data")
    services().account_data.set_by_client(user_id, None, event_type, await json_object())
    return {}


@client_route(blueprint, PER_ROOM, methods=["GET"])
async def get_per_room(user_id: str, room_id: str, event_type: str) -> dict:
    _own_room_data(user_id, room_id)
    return _content(user_id, room_id, event_type)


@client_route(blueprint, PER_ROOM, methods=["PUT"])
async def put_per_room(user_id: str, room_id: str, event_type: str) -> dict:
    _own_room_data(user_id, room_id)
    services().account_data.set_by_client(user_id, room_id, event_type, await json_object())
    return {}


@client_route(blueprint, TAGS, methods=["GET"])
async def get_tags(user_id: str, room_id: str) -> dict:
    _own_room_data(user_id, room_id)
    return {"tags": services().account_data.tags(user_id, room_id)}


@client_route(blueprint, TAG, methods=["PUT"])
async def put_tag(user_id: str, room_id: str, tag: str) -> dict:
    _own_room_data(user_id, room_id)
    services().account_data.add_tag(user_id, room_id, tag, await json_object())
    return {}


@client_route(blueprint, TAG, methods=["DELETE"])
async def delete_tag(user_id: str, room_id: str, tag: str) -> dict:
    _own_room_data(user_id, room_id)
    services().account_data.remove_tag(user_id, room_id, tag)
    return {}
