"""Joining, leaving, inviting, kicking, banning, knocking and forgetting.

Spec: `content/client-server-api/_index.md` ("Room membership") and the
OpenAPI of `joining.yaml`, `leaving.yaml`, `inviting.yaml`, `kicking.yaml`,
`banning.yaml`, `knocking.yaml`.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...errors import MatrixError
from ..auth import authenticate
from ..fields import optional_bool, optional_str, required_str
from ..rate_limits import limit_invite, limit_join
from ..request import json_object, services
from .routes import client_route
from .threepid import third_party_id

blueprint = Blueprint("membership", __name__)


def resolve_room(room_id_or_alias: str) -> str:
    """A room id, or the room an alias on this server points to."""
    if room_id_or_alias.startswith("#"):
        room_id = services().rooms.aliases.resolve(room_id_or_alias)
        if room_id is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {room_id_or_alias} not found.")
        return room_id
    if not room_id_or_alias.startswith("!"):
        raise MatrixError(
            400, "M_INVALID_PARAM", f"{room_id_or_alias!r} is not a room id or alias."
        )
    return room_id_or_alias


@client_route(blueprint, "/join/<path:room_id_or_alias>", methods=["POST"])
async def join_by_id_or_alias(room_id_or_alias: str) -> dict:
    """Join by id or alias; `via` (and its older name `server_name`) name servers to
    join through when the room is on other servers (an alias adds its own)."""
    requester = authenticate(allow_guest=True)  # as Synapse: guests may use this route too
    body = await json_object(optional=True)
    room_id, servers = await _room_and_servers(room_id_or_alias)
    limit_join(requester, room_id)
    if requester.is_guest:
        services().guest_access.check_join(room_id)
    await services().rooms.membership.join(
        room_id, requester.user_id, reason=optional_str(body, "reason"), servers=servers
    )
    return {"room_id": room_id}


@client_route(blueprint, "/rooms/<room_id>/join", methods=["POST"])
async def join(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    body = await json_object(optional=True)
    room_id = resolve_room(room_id)
    limit_join(requester, room_id)
    if requester.is_guest:
        services().guest_access.check_join(room_id)
    await services().rooms.membership.join(
        room_id, requester.user_id, reason=optional_str(body, "reason")
    )
    return {"room_id": room_id}


@client_route(blueprint, "/rooms/<room_id>/leave", methods=["POST"])
async def leave(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    body = await json_object(optional=True)
    await services().rooms.membership.leave(
        room_id, requester.user_id, reason=optional_str(body, "reason")
    )
    return {}


@client_route(blueprint, "/rooms/<room_id>/forget", methods=["POST"])
async def forget(room_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    services().rooms.membership.forget(room_id, requester.user_id)
    return {}


@client_route(blueprint, "/rooms/<room_id>/invite", methods=["POST"])
async def invite(room_id: str) -> dict:
    """By user id, or (third_party_membership.yaml) by `id_server`/`medium`/`address`."""
    requester = authenticate()
    body = await json_object()
    limit_invite(requester, body.get("user_id"))
    if "user_id" not in body and ("medium" in body or "id_server" in body):
        await services().third_party_invites.invite(
            room_id, requester.user_id, third_party_id(body)
        )
        return {}
    # An unknown user in a bridge's namespace is asked of the bridge, which may create it.
    await services().appservice_queries.user_exists(required_str(body, "user_id"))
    await services().rooms.membership.invite(
        room_id,
        requester.user_id,
        required_str(body, "user_id"),
        reason=optional_str(body, "reason"),
        is_direct=optional_bool(body, "is_direct", default=False),
    )
    return {}


async def _targeted(room_id: str, action: str) -> dict:
    requester = authenticate()
    body = await json_object()
    perform = getattr(services().rooms.membership, action)
    await perform(
        room_id,
        requester.user_id,
        required_str(body, "user_id"),
        reason=optional_str(body, "reason"),
    )
    return {}


@client_route(blueprint, "/rooms/<room_id>/kick", methods=["POST"])
async def kick(room_id: str) -> dict:
    return await _targeted(room_id, "kick")


@client_route(blueprint, "/rooms/<room_id>/ban", methods=["POST"])
async def ban(room_id: str) -> dict:
    return await _targeted(room_id, "ban")


@client_route(blueprint, "/rooms/<room_id>/unban", methods=["POST"])
async def unban(room_id: str) -> dict:
    return await _targeted(room_id, "unban")


async def _room_and_servers(room_id_or_alias: str) -> tuple[str, list[str]]:
    """The room an id or alias names, and the servers to reach it through: the client's
    `via` (and its older name `server_name`), then an alias's own."""
    servers = request.args.getlist("via") + request.args.getlist("server_name")
    if room_id_or_alias.startswith("#"):
        room_id, alias_servers = await services().remote_membership.resolve_alias(room_id_or_alias)
        return room_id, servers + alias_servers
    return resolve_room(room_id_or_alias), servers


@client_route(blueprint, "/knock/<path:room_id_or_alias>", methods=["POST"], versions=("v3",))
async def knock(room_id_or_alias: str) -> dict:
    """Knock by id or alias; `via`/`server_name` as for `/join` when the room is on
    other servers."""
    requester = authenticate()
    body = await json_object(optional=True)
    room_id, servers = await _room_and_servers(room_id_or_alias)
    await services().rooms.membership.knock(
        room_id, requester.user_id, reason=optional_str(body, "reason"), servers=servers
    )
    return {"room_id": room_id}
