"""Creating and upgrading rooms, and listing the rooms a user is in.

Spec: `data/api/client-server/create_room.yaml` (`POST /createRoom`),
`room_upgrades.yaml` (`POST /rooms/{roomId}/upgrade`), `joined_rooms.yaml`
(`GET /joined_rooms`).
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import bad_json, forbidden
from ...service.rooms.create import PRESETS, RoomSettings
from ..auth import authenticate
from ..fields import optional_bool, optional_object, optional_str, optional_str_list, required_str
from ..request import config, json_object, services
from .routes import client_route
from .threepid import third_party_id

blueprint = Blueprint("rooms", __name__)


def _initial_state(body: dict) -> list[dict]:
    initial_state = body.get("initial_state") or []
    if not isinstance(initial_state, list):
        raise bad_json("`initial_state` must be a list of state events.")
    for event in initial_state:
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("type"), str)
            or not isinstance(event.get("content", {}), dict)
            or not isinstance(event.get("state_key", ""), str)
        ):
            raise bad_json("Each `initial_state` entry needs a `type`, `content` and `state_key`.")
    return initial_state


@client_route(blueprint, "/createRoom", methods=["POST"])
async def create_room() -> dict:
    requester = authenticate()
    if not config().allow_room_creation:
        raise forbidden("Room creation is disabled on this server.")
    body = await json_object()
    visibility = optional_str(body, "visibility") or "private"
    if visibility not in ("public", "private"):
        raise bad_json('`visibility` must be "public" or "private".')
    preset = optional_str(body, "preset") or (
        "public_chat" if visibility == "public" else "private_chat"
    )
    if preset not in PRESETS:
        raise bad_json(f"Unknown preset {preset!r}.")
    room_version = body.get("room_version", config().default_room_version)
    if not isinstance(room_version, str):
        raise bad_json("`room_version` must be a string.")
    settings = RoomSettings(
        room_version=room_version,
        preset=preset,
        visibility=visibility,
        creation_content=optional_object(body, "creation_content") or {},
        initial_state=_initial_state(body),
        name=optional_str(body, "name"),
        topic=optional_str(body, "topic"),
        invite=optional_str_list(body, "invite") or [],
        is_direct=optional_bool(body, "is_direct", default=False),
        power_level_content_override=optional_object(body, "power_level_content_override"),
        room_alias_name=optional_str(body, "room_alias_name"),
    )
    invite_3pid = body.get("invite_3pid") or []
    if not isinstance(invite_3pid, list):
        raise bad_json("`invite_3pid` must be a list.")
    third_party_invitees = [third_party_id(invitee) for invitee in invite_3pid]
    room_id = await services().rooms.creation.create(requester.user_id, settings)
    if third_party_invitees:
        await services().third_party_invites.invite_all(
            room_id, requester.user_id, third_party_invitees
        )
    return {"room_id": room_id}


@client_route(blueprint, "/rooms/<room_id>/upgrade", methods=["POST"])
async def upgrade_room(room_id: str) -> dict:
    requester = authenticate()
    body = await json_object()
    new_version = required_str(body, "new_version")
    additional_creators = optional_str_list(body, "additional_creators")
    replacement = await services().rooms.upgrades.upgrade(
        room_id, requester.user_id, new_version, additional_creators
    )
    return {"replacement_room": replacement}


@client_route(blueprint, "/joined_rooms", methods=["GET"])
async def joined_rooms() -> dict:
    # Not in the Guest Access module's list, but Synapse serves guests here and
    # guest clients (Element's guest mode) ask which rooms they are in.
    requester = authenticate(allow_guest=True)
    return {"joined_rooms": list(services().rooms.state_cache.joined_rooms(requester.user_id))}
