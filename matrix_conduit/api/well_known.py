"""`/.well-known/matrix/client` and `/.well-known/matrix/server`: delegation.

Spec: `content/client-server-api/_index.md` ("Well-known URIs") and
`content/server-server-api.md` ("Resolving server names"). Values come from
`[global.well_known]`, defaulting to `https://<server_name>` and
`<server_name>:443`.
"""

from __future__ import annotations

from quart import Blueprint

from .request import config

blueprint = Blueprint("well_known", __name__)


@blueprint.get("/.well-known/matrix/client")
async def client() -> dict:
    return {"m.homeserver": {"base_url": config().well_known_client}}


@blueprint.get("/.well-known/matrix/server")
async def server() -> dict:
    return {"m.server": config().well_known_server}
