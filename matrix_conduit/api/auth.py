"""Who is making this request: access tokens, guests, and user-interactive auth.

Spec: `content/client-server-api/_index.md`, "Using access tokens" (the
`Authorization: Bearer` header, and the `access_token` query parameter that
versions before v1.20 accept; missing → 401 `M_MISSING_TOKEN`, unknown →
401 `M_UNKNOWN_TOKEN`), "Soft logout", the Guest Access module (guests get
403 `M_GUEST_ACCESS_FORBIDDEN` outside the endpoints it lists), and
"User-Interactive Authentication API".

An appservice's `as_token` (spec: application-service-api.md, "Identity
assertion") acts as its sender, or as the user the `user_id` parameter
names if that user is in its namespaces and registered (else 403
`M_FORBIDDEN`), with the device `device_id` names (v1.17; unknown: 400
`M_UNKNOWN_DEVICE`).

Every handler that needs a user starts with `requester = authenticate()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quart import g, request

from ..core.ids import is_on_server
from ..errors import MatrixError, forbidden
from ..service.appservices import AppService
from .request import services


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str | None
    is_guest: bool
    appservice: AppService | None = None
    """The appservice whose `as_token` made the request (masquerading or as its sender)."""


def access_token() -> str | None:
    """The request's access token: the Bearer header, else the `access_token` parameter."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(
                401, "M_MISSING_TOKEN", "The Authorization header must be `Bearer <token>`."
            )
        return token.strip()
    return request.args.get("access_token")


def authenticate(*, allow_guest: bool = False) -> Requester:
    """The authenticated requester, or the spec's 401 (no/unknown token) or 403 (guest)."""
    token = access_token()
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "This endpoint needs an access token.")
    return _requester_for(token, allow_guest=allow_guest)


def authenticate_if_present(*, allow_guest: bool = False) -> Requester | None:
    """For endpoints that work with or without a token; a token given must be valid."""
    token = access_token()
    return None if token is None else _requester_for(token, allow_guest=allow_guest)


def appservice_of_request() -> AppService:
    """The appservice whose `as_token` the request carries, or 401 (missing, unknown)."""
    token = access_token()
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "This needs an appservice's as_token.")
    appservice = services().appservices.by_as_token(token)
    if appservice is None:
        raise MatrixError(401, "M_UNKNOWN_TOKEN", "This is not an appservice's as_token.")
    return appservice


def _appservice_requester(appservice: AppService) -> Requester:
    user_id = request.args.get("user_id") or appservice.sender
    local = is_on_server(user_id, services().globals.server_name)
    if not (local and appservice.owns_user(user_id)):
        raise forbidden(
            f"The appservice {appservice.id!r} cannot masquerade as {user_id[:300]}: "
            "it is outside its user namespaces."
        )
    if not services().users.exists(user_id):
        raise forbidden(f"The appservice {appservice.id!r} has not registered {user_id}.")
    device_id = request.args.get("device_id") or request.args.get("org.matrix.msc3202.device_id")
    if device_id is not None and services().devices.get(user_id, device_id) is None:
        raise MatrixError(400, "M_UNKNOWN_DEVICE", f"{user_id} has no device {device_id[:100]}.")
    g.user_id = user_id  # for the request log
    return Requester(user_id, device_id, False, appservice)


def _requester_for(token: str, *, allow_guest: bool) -> Requester:
    appservice = services().appservices.by_as_token(token)
    if appservice is not None:
        return _appservice_requester(appservice)
    owner = services().devices.owner_of_access_token(
        token, ip=request.remote_addr, user_agent=request.headers.get("User-Agent")
    )
    g.user_id = owner.user_id  # for the request log
    is_guest = services().users.is_guest(owner.user_id)
    if is_guest and not allow_guest:
        raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest accounts cannot do this.")
    return Requester(owner.user_id, owner.device_id, is_guest)


async def user_interactive_auth(
    body: dict, flows: Sequence[Sequence[str]], *, user_id: str | None
) -> str | None:
    """Run user-interactive auth for this request; the authenticated user id when complete.

    Raises the spec's 401 (flows, session, completed) until a flow is done.
    """
    return await services().uiaa.authenticate(
        body.get("auth"),
        flows=flows,
        endpoint=f"{request.method} {request.path}",
        user_id=user_id,
    )
