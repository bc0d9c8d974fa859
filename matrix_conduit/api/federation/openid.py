"""`GET /_matrix/federation/v1/openid/userinfo`: who an OpenID token belongs to.

Spec: `data/api/server-server/openid.yaml`. Third parties (integration
managers, widgets) call it with a token the user gave them. The one
`/_matrix/federation` route that answers with `allow_federation = false`:
it is how widgets learn who a user is, on a private server too (Synapse
serves it as a listener resource of its own for the same reason).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...errors import MatrixError
from ..request import services

blueprint = Blueprint("federation_openid", __name__)


@blueprint.get("/_matrix/federation/v1/openid/userinfo")
async def userinfo() -> dict:
    token = request.args.get("access_token")
    user_id = services().openid.user_for(token) if token else None
    if user_id is None:
        raise MatrixError(401, "M_UNKNOWN_TOKEN", "The OpenID token is unknown or expired.")
    return {"sub": user_id}
