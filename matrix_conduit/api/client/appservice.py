"""Endpoints only appservices use: the ping and their per-network room directories.

Spec: `content/application-service-api.md`, "Client-Server API Extensions":
`data/api/client-server/appservice_ping.yaml`
(`POST /_matrix/client/v1/appservice/{appserviceId}/ping`, 403 `M_FORBIDDEN`
when the `as_token` is not that appservice's) and
`appservice_room_directory.yaml`
(`PUT /directory/list/appservice/{networkId}/{roomId}`).
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import forbidden, invalid_param
from ..auth import appservice_of_request
from ..fields import optional_str, required_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("appservice", __name__)


@client_route(blueprint, "/appservice/<appservice_id>/ping", methods=["POST"], versions=("v1",))
async def ping(appservice_id: str) -> dict:
    appservice = appservice_of_request()
    if appservice.id != appservice_id:
        raise forbidden("The as_token is not that of this appservice.")
    body = await json_object(optional=True)
    transaction_id = optional_str(body, "transaction_id")
    duration_ms = await services().appservice_queries.ping(appservice, transaction_id)
    return {"duration_ms": duration_ms}


@client_route(blueprint, "/directory/list/appservice/<network_id>/<room_id>", methods=["PUT"])
async def publish_for_network(network_id: str, room_id: str) -> dict:
    appservice = appservice_of_request()
    visibility = required_str(await json_object(), "visibility")
    if visibility not in ("public", "private"):
        raise invalid_param("`visibility` must be `public` or `private`.")
    if not room_id.startswith("!"):
        raise invalid_param(f"{room_id[:100]!r} is not a room id.")
    services().appservice_directory.set_visibility(
        appservice.id, network_id, room_id, visibility == "public"
    )
    return {}
