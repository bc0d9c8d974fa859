"""Profiles: display names and avatars of local users.

Spec: `content/client-server-api/_index.md`, "Profiles";
`data/api/client-server/profile.yaml` (`GET /profile/{userId}`,
`GET`/`PUT /profile/{userId}/displayname` and `/avatar_url`), and the Guest
Access module (guests may change their display name only).

Since v1.16 any field (`GET`/`PUT`/`DELETE /profile/{userId}/{keyName}`,
"profile fields"; limits and storage in `service/profile_fields.py`). Only
the owner may change a profile (others get 403). For `displayname` and
`avatar_url` a `null` or empty value removes the field, as clients before the
`DELETE` endpoint do. An avatar must be an `mxc://` URI. Profiles of users on
other servers are asked of their server (server-server `/query/profile`).
"""

from __future__ import annotations

from quart import Blueprint

from ...core.errors import InvalidIdentifier
from ...core.ids import UserId, is_on_server
from ...errors import forbidden, invalid_param, missing_param, not_found
from ...service.profile_fields import check_key_name
from ..auth import authenticate
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("profile", __name__)


def _is_local_user(user_id: str) -> bool:
    """Whether `user_id` is ours (it must exist then: 404), or another server's (400 if
    it is not a user id at all)."""
    try:
        UserId.parse(user_id)
    except InvalidIdentifier as error:
        raise invalid_param(f"Invalid user id: {error}") from None
    users = services().users
    if not is_on_server(user_id, users.server_name):
        return False
    if not users.exists(user_id):
        raise not_found("There is no such user.")
    return True


async def _profile(user_id: str, field: str | None = None) -> dict:
    """The public profile (or one field of it), ours or from the user's server."""
    if is_on_server(user_id, services().users.server_name):
        await services().appservice_queries.user_exists(user_id)  # a bridge may make it now
    if not _is_local_user(user_id):
        return await services().remote_profiles.profile(user_id, field)
    profile = services().profile_fields.profile(user_id)
    return {key: value for key, value in profile.items() if field in (None, key)}


@client_route(blueprint, "/profile/<path:user_id>", methods=["GET"])
async def get_profile(user_id: str) -> dict:
    return await _profile(user_id)


@client_route(blueprint, "/profile/<path:user_id>/<key_name>", methods=["GET"])
async def get_profile_field(user_id: str, key_name: str) -> dict:
    check_key_name(key_name)
    profile = await _profile(user_id, key_name)
    if key_name not in profile:
        raise not_found(f"This user has no {key_name}.")
    return profile


@client_route(blueprint, "/profile/<path:user_id>/<key_name>", methods=["PUT"])
async def set_profile_field(user_id: str, key_name: str) -> dict:
    # Guest Access module: guests may change their display name, nothing else.
    requester = authenticate(allow_guest=key_name == "displayname")
    _check_owner(requester.user_id, user_id)
    check_key_name(key_name)
    body = await json_object()
    if key_name not in body:
        raise missing_param(key_name)
    await services().profile_fields.set(user_id, key_name, body[key_name])
    return {}


@client_route(blueprint, "/profile/<path:user_id>/<key_name>", methods=["DELETE"])
async def delete_profile_field(user_id: str, key_name: str) -> dict:
    requester = authenticate(allow_guest=key_name == "displayname")
    _check_owner(requester.user_id, user_id)
    await services().profile_fields.delete(user_id, key_name)
    return {}


def _check_owner(requester_id: str, user_id: str) -> None:
    if requester_id != user_id:
        raise forbidden("You can only change your own profile.")
