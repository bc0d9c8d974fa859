"""Who is making this request: access tokens, guests, and user-interactive auth.

Spec: `content/client-server-api/_index.md`, "Using access tokens" (the
`Authorization: Bearer` header, and the `access_token` query parameter that
versions before v1.20 accept; missing → 401 `M_MISSING_TOKEN`, unknown →
401 `M_UNKNOWN_TOKEN`), "Soft logout", the Guest Access module (guests get
403 `M_GUEST_ACCESS_FORBIDDEN` outside the endpoints it lists), and
"User-Interactive Authentication API".

Every handler that needs a user starts with `requester = authenticate()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quart import request

from ..errors import MatrixError
from .request import services


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str | None
    is_guest: bool


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


def _requester_for(token: str, *, allow_guest: bool) -> Requester:
    owner = services().devices.owner_of_access_token(
        token, ip=request.remote_addr, user_agent=request.headers.get("User-Agent")
    )
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
