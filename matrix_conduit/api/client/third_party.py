"""Third-party networks (bridges' protocols), answered by the appservices that bridge them.

Spec: `data/api/client-server/third_party_lookup.yaml`, forwarded to the
application-service `protocols.yaml` endpoints
(`service/appservice_queries.py`). Without appservices there are no
protocols, and lookups of a protocol this server does not know answer 404 as
the spec says.
"""

from __future__ import annotations

from quart import Blueprint, request

from ..auth import authenticate
from ..request import services
from .routes import client_route

blueprint = Blueprint("third_party", __name__)


def _query() -> dict[str, list[str]]:
    return {key: request.args.getlist(key) for key in request.args}


@client_route(blueprint, "/thirdparty/protocols", methods=["GET"])
async def protocols() -> dict:
    authenticate()
    return await services().appservice_queries.protocols()


@client_route(blueprint, "/thirdparty/protocol/<protocol>", methods=["GET"])
async def protocol(protocol: str) -> dict:
    authenticate()
    return await services().appservice_queries.protocol(protocol)


@client_route(blueprint, "/thirdparty/location/<protocol>", methods=["GET"])
async def locations(protocol: str) -> list:
    authenticate()
    return await services().appservice_queries.lookup("location", protocol, _query())


@client_route(blueprint, "/thirdparty/user/<protocol>", methods=["GET"])
async def users(protocol: str) -> list:
    authenticate()
    return await services().appservice_queries.lookup("user", protocol, _query())


@client_route(blueprint, "/thirdparty/location", methods=["GET"])
async def location_by_alias() -> list:
    authenticate()
    return await services().appservice_queries.lookup("location", None, _query())


@client_route(blueprint, "/thirdparty/user", methods=["GET"])
async def user_by_id() -> list:
    authenticate()
    return await services().appservice_queries.lookup("user", None, _query())
