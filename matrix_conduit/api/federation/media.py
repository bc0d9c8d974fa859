"""`GET /_matrix/federation/v1/media/download/{mediaId}` and `/thumbnail/{mediaId}`.

Spec: `content/server-server-api.md` § Content Repository;
`data/api/server-server/content_repository.yaml`. Behind the X-Matrix gate
(`signed_blueprint`): any server may ask, as any client may download. Only
this server's own media is served here (a media id names no server: it is
ours); other servers' media that we keep is theirs to serve.

The answer is `multipart/mixed` with exactly two parts: `application/json`
metadata (an empty object, as the spec says for now) and the file with its
`Content-Type` and `Content-Disposition`. The JSON part's only header is
its `Content-Type`: Synapse's reader insists on it. The boundary is random
and checked against the file, so no file can end its own part early. Errors
are the client API's: 404 `M_NOT_FOUND`, 504 `M_NOT_YET_UPLOADED` once
`timeout_ms` passed, for thumbnails 400 `M_UNKNOWN`/413 `M_TOO_LARGE`.
"""

from __future__ import annotations

import secrets

from quart import Response

from ...service.media import MediaContent
from ..client.media import DEFAULT_TIMEOUT_MS, content_disposition, thumbnail_of
from ..query import query_int
from ..request import config, services
from .auth import signed_blueprint

blueprint = signed_blueprint("federation_media", __name__)

MEDIA = "/_matrix/federation/v1/media"
METADATA = b"{}"
"""The first part: the media's metadata, "currently always an empty object"."""


@blueprint.get(f"{MEDIA}/download/<media_id>")
async def download(media_id: str) -> Response:
    content = await services().media.download(
        config().server_name,
        media_id,
        timeout_ms=query_int("timeout_ms", DEFAULT_TIMEOUT_MS),
        allow_remote=False,
    )
    return multipart_response(content)


@blueprint.get(f"{MEDIA}/thumbnail/<media_id>")
async def thumbnail(media_id: str) -> Response:
    content = await thumbnail_of(config().server_name, media_id, allow_remote=False)
    return multipart_response(content)


def multipart_response(content: MediaContent) -> Response:
    """The spec's two-part `multipart/mixed` answer: `{}` metadata, then the file."""
    boundary = secrets.token_hex(16)
    while boundary.encode() in content.data:
        boundary = secrets.token_hex(16)
    file_headers = (
        f"Content-Type: {content.content_type}\r\n"
        f"Content-Disposition: {content_disposition(content.content_type, content.filename)}\r\n"
    )
    body = b"".join(
        (
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(),
            METADATA,
            f"\r\n--{boundary}\r\n".encode(),
            file_headers.encode("latin-1", "replace"),
            b"\r\n",
            content.data,
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    response = Response(body, status=200)
    response.headers["Content-Type"] = f"multipart/mixed; boundary={boundary}"
    return response
