"""`GET /_matrix/federation/v1/query/profile` and `/query/directory`, for other servers.

`/query/directory` resolves one of our room aliases to the room and the
servers in it (`ResidentMembership.directory`); what follows is `/query/profile`.

Spec: `content/server-server-api.md` § Querying for information;
`data/api/server-server/query.yaml` (`/query/profile`). Behind the X-Matrix
gate (`signed_blueprint`). `user_id` must be one of ours (400 otherwise);
an unknown user is 404 `M_NOT_FOUND`. Without `field` the answer is the
whole public profile (`displayname`, `avatar_url`; unset ones omitted);
with `field` it holds only that field, or nothing when the user has none
("the server should exclude it from the response body"; 404 is for a user
that does not exist: Synapse logged a failed request for each invite of
ours, asking for an `avatar_url` we had not set).
A remote server calls this when one of its clients looks up our user
(client `GET /profile/{userId}`) or builds a membership event for them.
"""

from __future__ import annotations

from quart import request

from ...core.errors import InvalidIdentifier
from ...core.ids import UserId
from ...errors import invalid_param, missing_param, not_found
from ..request import services
from .auth import signed_blueprint

blueprint = signed_blueprint("federation_query", __name__)


@blueprint.get("/_matrix/federation/v1/query/profile")
async def query_profile() -> dict:
    user_id = request.args.get("user_id")
    if user_id is None:
        raise missing_param("user_id")
    try:
        parsed = UserId.parse(user_id)
    except InvalidIdentifier as error:
        raise invalid_param(f"Invalid user id: {error}") from None
    users = services().users
    if parsed.server_name != users.server_name:
        raise invalid_param("This user is not hosted on this server.")
    if not users.exists(user_id):
        raise not_found("There is no such user.")
    profile = {"displayname": users.displayname(user_id), "avatar_url": users.avatar_url(user_id)}
    present = {name: value for name, value in profile.items() if value is not None}
    wanted = request.args.get("field")
    if wanted is None:
        return present
    return {wanted: present[wanted]} if wanted in present else {}


@blueprint.get("/_matrix/federation/v1/query/directory")
async def query_directory() -> dict:
    """`/query/directory`: the room one of our aliases names, and servers in it.

    Spec: `data/api/server-server/query.yaml`; 404 `M_NOT_FOUND` for an
    alias we do not have.
    """
    alias = request.args.get("room_alias")
    if alias is None:
        raise missing_param("room_alias")
    room_id, servers = services().resident_membership.directory(alias)
    return {"room_id": room_id, "servers": servers}
