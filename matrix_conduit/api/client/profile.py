"""Profiles: display names and avatars of local users.

Spec: `content/client-server-api/_index.md`, "Profiles";
`data/api/client-server/profile.yaml` (`GET /profile/{userId}`,
`GET`/`PUT /profile/{userId}/displayname` and `/avatar_url`), and the Guest
Access module (guests may change their display name only).

Only the owner may change a profile (others get 403). A `null` or empty
value removes the field, as clients before the v1.16 `DELETE` endpoint do.
An avatar must be an `mxc://` URI. Profiles of users on other servers are
asked of their server (server-server `/query/profile`).
"""

from __future__ import annotations

from quart import Blueprint

from ...core.errors import InvalidIdentifier
from ...core.ids import UserId, is_on_server
from ...errors import forbidden, invalid_param, not_found
from ..auth import authenticate
from ..fields import optional_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("profile", __name__)

MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000


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
    if not _is_local_user(user_id):
        return await services().remote_profiles.profile(user_id, field)
    users = services().users
    profile = {"displayname": users.displayname(user_id), "avatar_url": users.avatar_url(user_id)}
    return {
        key: value for key, value in profile.items() if value is not None and field in (None, key)
    }


async def _profile_field(user_id: str, field: str) -> dict:
    profile = await _profile(user_id, field)
    if field not in profile:
        raise not_found(f"This user has no {field}.")
    return profile


@client_route(blueprint, "/profile/<path:user_id>", methods=["GET"])
async def get_profile(user_id: str) -> dict:
    return await _profile(user_id)


@client_route(blueprint, "/profile/<path:user_id>/displayname", methods=["GET"])
async def get_displayname(user_id: str) -> dict:
    return await _profile_field(user_id, "displayname")


@client_route(blueprint, "/profile/<path:user_id>/avatar_url", methods=["GET"])
async def get_avatar_url(user_id: str) -> dict:
    return await _profile_field(user_id, "avatar_url")


@client_route(blueprint, "/profile/<path:user_id>/displayname", methods=["PUT"])
async def set_displayname(user_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    displayname = await _new_value(requester.user_id, user_id, "displayname")
    if displayname is not None and len(displayname) > MAX_DISPLAYNAME_LENGTH:
        raise invalid_param(f"A display name has at most {MAX_DISPLAYNAME_LENGTH} characters.")
    await services().users.set_displayname(user_id, displayname)
    return {}


@client_route(blueprint, "/profile/<path:user_id>/avatar_url", methods=["PUT"])
async def set_avatar_url(user_id: str) -> dict:
    requester = authenticate()
    avatar_url = await _new_value(requester.user_id, user_id, "avatar_url")
    if avatar_url is not None and (
        not avatar_url.startswith("mxc://") or len(avatar_url) > MAX_AVATAR_URL_LENGTH
    ):
        raise invalid_param("`avatar_url` must be an mxc:// URI of at most 1000 characters.")
    await services().users.set_avatar_url(user_id, avatar_url)
    return {}


async def _new_value(requester_id: str, user_id: str, field: str) -> str | None:
    """The value a PUT sets (None: remove), once the requester may change this profile."""
    if requester_id != user_id:
        raise forbidden("You can only change your own profile.")
    return optional_str(await json_object(), field) or None
