"""`GET /media/preview_url`: the OpenGraph data of a URL a client saw in a message.

Spec: `data/api/client-server/authed-content-repo.yaml`
(`/_matrix/client/v1/media/preview_url`) and `content-repo.yaml` (the
deprecated `/_matrix/media/{r0,v3}/preview_url`): `url` required, `ts`
optional. With `url_preview_enabled` off the endpoint answers 404
`M_UNRECOGNIZED`, the spec's error for an endpoint a server does not offer,
which clients take as "no previews here". The fetching and its limits are
`service/url_previews.py`.
"""

from __future__ import annotations

from quart import Blueprint, request

from ...errors import MatrixError, missing_param
from ..auth import authenticate
from ..query import optional_query_int
from ..request import config, services
from .routes import client_route, versioned_route

blueprint = Blueprint("url_previews", __name__)


@client_route(blueprint, "/media/preview_url", methods=["GET"], versions=("v1",))
@versioned_route(blueprint, "media", "/preview_url", methods=["GET"], versions=("r0", "v3"))
async def preview_url() -> dict:
    requester = authenticate()
    if not config().url_preview_enabled:
        raise MatrixError(
            404, "M_UNRECOGNIZED", "URL previews are off on this server (url_preview_enabled)."
        )
    url = request.args.get("url")
    if not url:
        raise missing_param("url")
    ts = optional_query_int("ts", minimum=0)
    return await services().url_previews.preview(requester.user_id, url, ts)
