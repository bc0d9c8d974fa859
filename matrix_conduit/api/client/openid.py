"""`POST /user/{userId}/openid/request_token`.

Spec: `content/client-server-api/modules/openid.md` and
`data/api/client-server/openid.yaml`.
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import forbidden
from ..auth import authenticate
from ..request import config, json_object, services
from .routes import client_route

blueprint = Blueprint("openid", __name__)


@client_route(blueprint, "/user/<user_id>/openid/request_token", methods=["POST"])
async def request_token(user_id: str) -> dict:
    requester = authenticate()
    await json_object(optional=True)
    if requester.user_id != user_id:
        raise forbidden("You can only request OpenID tokens for yourself.")
    token, lifetime = services().openid.create_token(user_id)
    return {
        "access_token": token,
        "token_type": "Bearer",
        "matrix_server_name": config().server_name,
        "expires_in": lifetime,
    }
