"""The content repository over HTTP, on its authenticated and its legacy paths.

Spec: `content/client-server-api/modules/content_repo.md`;
`data/api/client-server/authed-content-repo.yaml` (`/_matrix/client/v1/media/`
download, thumbnail, config, preview_url: an access token is required, and
guests may download and thumbnail, as the Guest Access module lists) and
`content-repo.yaml` (`/_matrix/media/{r0,v3}/`: upload, config, and the
deprecated unauthenticated download and thumbnail, still served for clients
that have not moved yet; `POST /_matrix/media/v1/create` with
`PUT /_matrix/media/v3/upload/{serverName}/{mediaId}` for uploads whose URI
is sent before the content).

Every file is served as "Serving inline content" asks: `inline` only for the
spec's list of types a browser cannot run as a page, `attachment` for all
else, and headers that keep a malicious upload from acting as a web page
(sandboxing CSP, `nosniff`) while web clients on other origins may still
embed it (`Cross-Origin-Resource-Policy`).

Other servers' media is fetched from them at the first request and kept
(`service/media.py`); on the legacy paths `allow_remote=false` serves only
what is already here (404 `M_NOT_FOUND` otherwise: what the federation
fallback of other servers sends, so that no request loops between servers).
This server never redirects a download (`allow_redirect` may only permit
one), so that parameter is accepted and changes nothing. URL previews
(`preview_url`) are `api/client/url_previews.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import quote

from quart import Blueprint, Response, request

from ...errors import invalid_param
from ...service.media import MediaContent
from ...service.thumbnails import METHODS, Method
from ..auth import authenticate
from ..query import query_bool, query_int
from ..rate_limits import limit_user
from ..request import config, services
from .routes import View, client_route, versioned_route

blueprint = Blueprint("media", __name__)

AUTHENTICATED_MEDIA = ("v1",)
LEGACY_MEDIA = ("r0", "v3")
DEFAULT_TIMEOUT_MS = 20_000

INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)
"""The spec's "Serving inline content" list; everything else is an attachment."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
        "style-src 'unsafe-inline'; object-src 'self';"
    ),
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
}
"""On every served file: the spec's recommended CSP, and no content sniffing."""


def media_route(
    rule: str, *, methods: Sequence[str], versions: Sequence[str] = LEGACY_MEDIA
) -> Callable[[View], View]:
    """Register the decorated view at `/_matrix/media/<version><rule>` for each version."""
    return versioned_route(blueprint, "media", rule, methods=methods, versions=versions)


# ---------------------------------------------------------------- uploads


@media_route("/upload", methods=["POST"])
async def upload() -> dict:
    requester = authenticate()
    limit_user("media_create", requester)
    data = await request.get_data(cache=False)
    content_uri = await services().media.upload(
        requester.user_id, data, request.headers.get("Content-Type"), request.args.get("filename")
    )
    return {"content_uri": content_uri}


@media_route("/create", methods=["POST"], versions=("v1",))
async def create() -> dict:
    requester = authenticate()
    limit_user("media_create", requester)
    content_uri, unused_expires_at = services().media.create(requester.user_id)
    return {"content_uri": content_uri, "unused_expires_at": unused_expires_at}


@media_route("/upload/<server_name>/<media_id>", methods=["PUT"], versions=("v3",))
async def upload_to(server_name: str, media_id: str) -> dict:
    requester = authenticate()
    limit_user("media_create", requester)
    data = await request.get_data(cache=False)
    await services().media.upload_to(
        requester.user_id,
        server_name,
        media_id,
        data,
        request.headers.get("Content-Type"),
        request.args.get("filename"),
    )
    return {}


# ---------------------------------------------------------------- downloads


@client_route(
    blueprint,
    "/media/download/<server_name>/<media_id>",
    methods=["GET"],
    versions=AUTHENTICATED_MEDIA,
)
@client_route(
    blueprint,
    "/media/download/<server_name>/<media_id>/<path:file_name>",
    methods=["GET"],
    versions=AUTHENTICATED_MEDIA,
)
async def download(server_name: str, media_id: str, file_name: str | None = None) -> Response:
    authenticate(allow_guest=True)
    return await _download(server_name, media_id, file_name)


@media_route("/download/<server_name>/<media_id>", methods=["GET"])
@media_route("/download/<server_name>/<media_id>/<path:file_name>", methods=["GET"])
async def legacy_download(
    server_name: str, media_id: str, file_name: str | None = None
) -> Response:
    return await _download(server_name, media_id, file_name, query_bool("allow_remote", True))


@client_route(
    blueprint,
    "/media/thumbnail/<server_name>/<media_id>",
    methods=["GET"],
    versions=AUTHENTICATED_MEDIA,
)
async def thumbnail(server_name: str, media_id: str) -> Response:
    authenticate(allow_guest=True)
    return await _thumbnail(server_name, media_id)


@media_route("/thumbnail/<server_name>/<media_id>", methods=["GET"])
async def legacy_thumbnail(server_name: str, media_id: str) -> Response:
    return await _thumbnail(server_name, media_id, query_bool("allow_remote", True))


async def _download(
    server_name: str, media_id: str, file_name: str | None, allow_remote: bool = True
) -> Response:
    content = await services().media.download(
        server_name,
        media_id,
        timeout_ms=query_int("timeout_ms", DEFAULT_TIMEOUT_MS),
        allow_remote=allow_remote,
    )
    return media_response(content, file_name or content.filename)


async def _thumbnail(server_name: str, media_id: str, allow_remote: bool = True) -> Response:
    content = await thumbnail_of(server_name, media_id, allow_remote=allow_remote)
    return media_response(content, content.filename)


async def thumbnail_of(server_name: str, media_id: str, *, allow_remote: bool) -> MediaContent:
    """The thumbnail the request's `width`, `height`, `method`, `animated` and
    `timeout_ms` ask for (also what the federation thumbnail endpoint answers)."""
    width = query_int("width")
    height = query_int("height")
    return await services().media.thumbnail(
        server_name,
        media_id,
        width,
        height,
        _query_method(),
        animated=query_bool("animated"),
        timeout_ms=query_int("timeout_ms", DEFAULT_TIMEOUT_MS),
        allow_remote=allow_remote,
    )


# ---------------------------------------------------------------- config, previews


@client_route(blueprint, "/media/config", methods=["GET"], versions=AUTHENTICATED_MEDIA)
@media_route("/config", methods=["GET"])
async def media_config() -> dict:
    authenticate()
    return {"m.upload.size": config().max_request_size}


# ---------------------------------------------------------------- serving


def media_response(content: MediaContent, filename: str | None) -> Response:
    """The file, labelled with its type and disposition, with the safety headers."""
    response = Response(content.data, status=200)
    response.headers["Content-Type"] = content.content_type
    response.headers["Content-Disposition"] = content_disposition(content.content_type, filename)
    response.headers.update(SECURITY_HEADERS)
    return response


def content_disposition(content_type: str, filename: str | None) -> str:
    """`inline` for the safe types, else `attachment`; with the file name (RFC 6266)."""
    base_type = content_type.partition(";")[0].strip().lower()
    disposition = "inline" if base_type in INLINE_CONTENT_TYPES else "attachment"
    if not filename:
        return disposition
    if all(" " <= character <= "~" and character not in '"\\' for character in filename):
        return f'{disposition}; filename="{filename}"'
    return f"{disposition}; filename*=utf-8''{quote(filename, safe='')}"


# ---------------------------------------------------------------- query parameters


def _query_method() -> Method:
    requested = request.args.get("method", "scale")
    for method in METHODS:
        if requested == method:
            return method
    raise invalid_param(f"`method` must be one of {', '.join(METHODS)}.")
