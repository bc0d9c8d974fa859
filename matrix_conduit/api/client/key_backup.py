"""Server-side key backups over HTTP: `/room_keys/version` and `/room_keys/keys`.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
"Server-side key backups", and `data/api/client-server/key_backup.yaml`. The
keys endpoints come in three sizes (all rooms, one room, one session) and
take the backup `version` as a query parameter; the rules are
`service/key_backup.py`.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from ...errors import bad_json, missing_param, not_found
from ...service.key_backup import KeyData, check_key_data
from ..auth import authenticate
from ..fields import optional_str, required_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("key_backup", __name__)

VERSION = "/room_keys/version/<version>"
ALL_KEYS = "/room_keys/keys"
ROOM_KEYS = "/room_keys/keys/<room_id>"
SESSION_KEY = "/room_keys/keys/<room_id>/<path:session_id>"


def _required_object(body: dict[str, Any], field: str) -> dict[str, Any]:
    value = body.get(field)
    if value is None:
        raise missing_param(field)
    if not isinstance(value, dict):
        raise bad_json(f"`{field}` must be a JSON object.")
    return value


def _sessions(body: dict[str, Any]) -> dict[str, KeyData]:
    """A `RoomKeyBackup`'s sessions, each key data checked."""
    sessions = _required_object(body, "sessions")
    return {session_id: check_key_data(data) for session_id, data in sessions.items()}


def _query_version() -> str:
    version = request.args.get("version")
    if version is None:
        raise missing_param("version")
    return version


# ---- versions


@client_route(blueprint, "/room_keys/version", methods=["POST"])
async def create_backup() -> dict:
    requester = authenticate()
    body = await json_object()
    version = services().key_backup.create(
        requester.user_id, required_str(body, "algorithm"), _required_object(body, "auth_data")
    )
    return {"version": version}


@client_route(blueprint, "/room_keys/version", methods=["GET"])
async def current_backup() -> dict:
    requester = authenticate()
    return services().key_backup.info(requester.user_id, None)


@client_route(blueprint, VERSION, methods=["GET"])
async def get_backup(version: str) -> dict:
    requester = authenticate()
    return services().key_backup.info(requester.user_id, version)


@client_route(blueprint, VERSION, methods=["PUT"])
async def update_backup(version: str) -> dict:
    requester = authenticate()
    body = await json_object()
    services().key_backup.update(
        requester.user_id,
        version,
        required_str(body, "algorithm"),
        _required_object(body, "auth_data"),
        optional_str(body, "version"),
    )
    return {}


@client_route(blueprint, VERSION, methods=["DELETE"])
async def delete_backup(version: str) -> dict:
    requester = authenticate()
    services().key_backup.delete(requester.user_id, version)
    return {}


# ---- keys


@client_route(blueprint, ALL_KEYS, methods=["PUT"])
async def put_all_keys() -> dict:
    requester = authenticate()
    body = await json_object()
    rooms = {}
    for room_id, room in _required_object(body, "rooms").items():
        if not isinstance(room, dict):
            raise bad_json(f"The backup of room {room_id} must be a JSON object.")
        rooms[room_id] = _sessions(room)
    return services().key_backup.put_keys(requester.user_id, _query_version(), rooms)


@client_route(blueprint, ROOM_KEYS, methods=["PUT"])
async def put_room_keys(room_id: str) -> dict:
    requester = authenticate()
    sessions = _sessions(await json_object())
    return services().key_backup.put_keys(requester.user_id, _query_version(), {room_id: sessions})


@client_route(blueprint, SESSION_KEY, methods=["PUT"])
async def put_session_key(room_id: str, session_id: str) -> dict:
    requester = authenticate()
    data = check_key_data(await json_object())
    return services().key_backup.put_keys(
        requester.user_id, _query_version(), {room_id: {session_id: data}}
    )


@client_route(blueprint, ALL_KEYS, methods=["GET"])
async def get_all_keys() -> dict:
    requester = authenticate()
    rooms = services().key_backup.get_keys(requester.user_id, _query_version())
    return {"rooms": {room_id: {"sessions": sessions} for room_id, sessions in rooms.items()}}


@client_route(blueprint, ROOM_KEYS, methods=["GET"])
async def get_room_keys(room_id: str) -> dict:
    requester = authenticate()
    rooms = services().key_backup.get_keys(requester.user_id, _query_version(), room_id)
    return {"sessions": rooms.get(room_id, {})}


@client_route(blueprint, SESSION_KEY, methods=["GET"])
async def get_session_key(room_id: str, session_id: str) -> dict:
    requester = authenticate()
    data = services().key_backup.get_key(requester.user_id, _query_version(), room_id, session_id)
    if data is None:
        raise not_found("No key for this session in the backup.")
    return data


@client_route(blueprint, ALL_KEYS, methods=["DELETE"])
async def delete_all_keys() -> dict:
    requester = authenticate()
    return services().key_backup.delete_keys(requester.user_id, _query_version())


@client_route(blueprint, ROOM_KEYS, methods=["DELETE"])
async def delete_room_keys(room_id: str) -> dict:
    requester = authenticate()
    return services().key_backup.delete_keys(requester.user_id, _query_version(), room_id)


@client_route(blueprint, SESSION_KEY, methods=["DELETE"])
async def delete_session_key(room_id: str, session_id: str) -> dict:
    requester = authenticate()
    return services().key_backup.delete_keys(
        requester.user_id, _query_version(), room_id, session_id
    )
