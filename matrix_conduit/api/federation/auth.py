"""The gate of the server-server API: federation enabled, and the request signed.

Spec: `content/server-server-api.md` § Request Authentication. Every
federation endpoint lives on a blueprint from `signed_blueprint`, whose
`before_request` runs before any of its routes: `allow_federation = false`
answers 403 `M_FORBIDDEN`, and a request without a valid `X-Matrix`
signature 401 `M_UNAUTHORIZED` with the reason. A route then reads the
authenticated server with `origin()`; a room-scoped route (make_join,
send_join, invite, state, backfill...: § Server Access Control Lists) first
calls `require_server_allowed(room_id)`, the room's server ACL, 403
`M_FORBIDDEN` when it denies that origin. One origin's requests in progress
at once are bounded (`max_inbound_requests_per_server`; beyond it 429
`M_LIMIT_EXCEEDED` with `retry_after_ms`): counted once the signature
holds, released when the request ends however it ends. The key endpoints
(`/_matrix/key/v2`), which the spec leaves unauthenticated, use
`open_blueprint`: the same 403, no signature.
"""

from __future__ import annotations

from quart import Blueprint, g, request

from ...errors import forbidden
from ..rate_limits import limit_federation
from ..request import config, parse_json, services


def _require_federation() -> None:
    if not config().allow_federation:
        raise forbidden("Federation is disabled on this server (allow_federation = false).")


async def _check_enabled() -> None:
    _require_federation()


def _request_uri() -> str:
    """The path and query exactly as the sender wrote (and signed) them."""
    raw_path = request.scope.get("raw_path") or request.path.encode()
    query = request.scope.get("query_string") or b""
    uri = raw_path.decode("latin-1")
    return f"{uri}?{query.decode('latin-1')}" if query else uri


async def _authenticate() -> None:
    _require_federation()
    data = await request.get_data(cache=True)
    content = parse_json(data) if data.strip() else None
    request_auth = services().federation.request_auth
    server_name = await request_auth.origin_of(
        request.headers.getlist("Authorization"), request.method, _request_uri(), content
    )
    limit_federation(server_name)
    request_auth.admit(server_name)
    g.federation_origin = server_name


async def _release(_error: BaseException | None) -> None:
    server_name = g.get("federation_origin")
    if server_name is not None:
        services().federation.request_auth.release(server_name)


def signed_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint whose every route needs federation enabled and an X-Matrix signature."""
    blueprint = Blueprint(name, import_name)
    blueprint.before_request(_authenticate)
    blueprint.teardown_request(_release)
    return blueprint


def open_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint for federation routes the spec leaves unsigned: only the 403 gate."""
    blueprint = Blueprint(name, import_name)
    blueprint.before_request(_check_enabled)
    return blueprint


def origin() -> str:
    """The server that signed the current request (set by `signed_blueprint`'s gate)."""
    return g.federation_origin


def require_server_allowed(room_id: str) -> None:
    """403 `M_FORBIDDEN` unless the room's server ACL lets the request's origin in."""
    server_name = origin()
    if not services().server_acl.allows(room_id, server_name):
        raise forbidden(f"The server ACL of {room_id} denies {server_name}.")
