"""Third-party networks (bridges' protocols) — none are configured on this server yet.

Spec: `data/api/client-server/third_party_lookup.yaml`. Clients ask for the
protocol list at start-up; without appservices there are none, and lookups
of a protocol this server does not know answer 404 as the spec says.
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import not_found
from ..auth import authenticate
from .routes import client_route

blueprint = Blueprint("third_party", __name__)


@client_route(blueprint, "/thirdparty/protocols", methods=["GET"])
async def protocols() -> dict:
    authenticate()
    return {}


@client_route(blueprint, "/thirdparty/protocol/<protocol>", methods=["GET"])
@client_route(blueprint, "/thirdparty/location/<protocol>", methods=["GET"])
@client_route(blueprint, "/thirdparty/user/<protocol>", methods=["GET"])
async def unknown_protocol(protocol: str) -> dict:
    authenticate()
    raise not_found(f"No third-party protocol {protocol!r} is bridged on this server.")


@client_route(blueprint, "/thirdparty/location", methods=["GET"])
@client_route(blueprint, "/thirdparty/user", methods=["GET"])
async def reverse_lookup() -> list:
    authenticate()
    return []
