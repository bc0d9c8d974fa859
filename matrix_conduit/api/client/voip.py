"""`GET /voip/turnServer`: TURN credentials for calls.

Spec: `data/api/client-server/voip.yaml`; the credentials are `service/turn.py`.
"""

from __future__ import annotations

from quart import Blueprint

from ..auth import authenticate
from ..request import services
from .routes import client_route

blueprint = Blueprint("voip", __name__)


@client_route(blueprint, "/voip/turnServer", methods=["GET"])
async def turn_server() -> dict:
    requester = authenticate(allow_guest=True)
    return services().turn.credentials(requester.user_id)
