"""Rate limits as handlers use them: one line per limited endpoint.

Spec: `content/client-server-api/_index.md`, "Rate limiting" (429
`M_LIMIT_EXCEEDED`, `retry_after_ms`; the app adds `Retry-After`). The
buckets are `service/rate_limiter.py`; this module only says whose bucket
a request charges:

- `limit_user(name, requester)`: the authenticated user (messages, media);
- `limit_join(requester, room_id)`: `joins_local` when this server is in the
  room already, else `joins_remote` (a remote join costs other servers work);
- `limit_invite(requester, invitee)`: the inviter, and the invitee's bucket of
  invites received;
- `limit_federation(origin)`: the server that signed a federation request;
- `@limited_by_address(name)`: the client's address, before the handler runs
  (3PID requests; `registration` is charged only when one succeeds, as
  Synapse does, so a UIA round trip costs one);
- `@limited_login`: the address and the account on every attempt, plus the
  account's `login_failed_attempts` on each wrong password.

Exempt: an appservice whose registration says `rate_limited: false`, and
server admins unless `exempt_admins = false`.

`client_address()` is the address the limits (and the request log) use:
the peer, or the `X-Forwarded-For` entry the first untrusted hop wrote when
the peer is one of `trusted_proxies` (a header from anyone else is a lie
anyone can tell, so it is ignored).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from quart import g, request

from ..core.ids import is_on_server
from ..core.ip_ranges import IpNetwork, parse_network
from ..errors import MatrixError
from .auth import Requester, access_token
from .request import config, parse_json, services

P = ParamSpec("P")
T = TypeVar("T")


@functools.lru_cache(maxsize=8)
def _networks(texts: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return tuple(parse_network(text) for text in texts)


def _is_trusted(address: str, trusted: tuple[IpNetwork, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[IpNetwork, ...]) -> str:
    """The client behind `peer`: from `X-Forwarded-For` only through trusted proxies.

    Read from the right: each trusted proxy appended the address it saw, so
    the first entry from the right that is not a trusted proxy is the client
    (entries left of it are whatever the client wrote). An untrusted peer is
    the client itself.
    """
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        client = hop
        if not _is_trusted(hop, trusted):
            break
    return client


def client_address() -> str:
    """The address of the client making this request (see the module docstring)."""
    cached = g.get("client_address")
    if cached is not None:
        return cached
    peer = request.remote_addr or ""
    trusted = config().trusted_proxies
    address = peer
    if trusted:
        address = forwarded_client(
            peer, request.headers.getlist("X-Forwarded-For"), _networks(tuple(trusted))
        )
    g.client_address = address
    return address


def _is_exempt_user(user_id: str) -> bool:
    settings = config().rate_limits
    if not settings.exempt_admins:
        return False
    return is_on_server(user_id, config().server_name) and services().users.is_admin(user_id)


def _is_exempt(requester: Requester) -> bool:
    if requester.appservice is not None:
        return not requester.appservice.rate_limited
    return _is_exempt_user(requester.user_id)


def _exempt_appservice_request() -> bool:
    """The request carries the `as_token` of an appservice that is not rate limited."""
    try:
        token = access_token()
    except MatrixError:
        return False
    appservice = None if token is None else services().appservices.by_as_token(token)
    return appservice is not None and not appservice.rate_limited


def limit_user(name: str, requester: Requester) -> None:
    """Charge the requester's bucket of limit `name` (429 when empty) unless exempt."""
    limiter = services().rate_limiter
    if limiter.enabled and not _is_exempt(requester):
        limiter.check(name, requester.user_id)


def limit_join(requester: Requester, room_id: str) -> None:
    """Charge a join: `joins_local` if this server is in the room, else `joins_remote`."""
    limiter = services().rate_limiter
    if not limiter.enabled or _is_exempt(requester):
        return
    server_name = config().server_name
    members = services().rooms.state_cache.joined_members(room_id)
    local = any(is_on_server(member, server_name) for member in members)
    limiter.check("joins_local" if local else "joins_remote", requester.user_id)


def limit_invite(requester: Requester, invitee: object) -> None:
    """Charge an invite to its sender (`invites_per_issuer`) and its target (`invites_per_user`)."""
    limiter = services().rate_limiter
    if not limiter.enabled or _is_exempt(requester):
        return
    limiter.check("invites_per_issuer", requester.user_id)
    if isinstance(invitee, str):
        limiter.check("invites_per_user", invitee)


def limit_federation(origin: str) -> None:
    """Charge the bucket of the server that signed this federation request."""
    limiter = services().rate_limiter
    if limiter.enabled:
        limiter.check("federation", origin)


def limited_by_address(
    name: str, *, charge_on_success: bool = False
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorate a handler so each request charges the client address's bucket of `name`.

    `charge_on_success`: only requests that succeed are charged (an empty
    bucket still refuses every request): registration, whose UIA steps are
    several requests for one account.
    """

    def decorate(handler: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(handler)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            limiter = services().rate_limiter
            if not limiter.enabled or _exempt_appservice_request():
                return await handler(*args, **kwargs)
            address = client_address()
            if not charge_on_success:
                limiter.check(name, address)
                return await handler(*args, **kwargs)
            limiter.would_allow(name, address)
            answer = await handler(*args, **kwargs)
            limiter.record(name, address)
            return answer

        return limited

    return decorate


async def _login_account() -> str | None:
    """The account a login body names, as its bucket key (None: none, or not parsable)."""
    try:
        body = parse_json(await request.get_data(cache=True))
        user_id = services().users.user_id_from_identifier(body) if isinstance(body, dict) else None
    except MatrixError:
        return None
    return user_id


def limited_login(handler: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate `/login`: address and account buckets per attempt, failures per account.

    A wrong password (403 `M_FORBIDDEN`) charges `login_failed_attempts`; once
    it is empty the account refuses further attempts from anywhere until it
    refills, so guessing a password costs time whatever the address.
    """

    @functools.wraps(handler)
    async def limited(*args: P.args, **kwargs: P.kwargs) -> T:
        limiter = services().rate_limiter
        if not limiter.enabled or _exempt_appservice_request():
            return await handler(*args, **kwargs)
        limiter.check("login_address", client_address())
        # Not authenticated yet: an admin's account is guarded like any other.
        account = await _login_account()
        if account is not None:
            limiter.would_allow("login_failed_attempts", account)
            limiter.check("login_account", account)
        try:
            return await handler(*args, **kwargs)
        except MatrixError as error:
            if account is not None and error.status == 403 and error.errcode == "M_FORBIDDEN":
                limiter.record("login_failed_attempts", account)
            raise

    return limited


def retry_after_headers(error: MatrixError) -> dict[str, Any]:
    """`Retry-After` for a 429 that says when to come back (RFC 9110 § 10.2.3), else none."""
    milliseconds = error.extra.get("retry_after_ms")
    if error.status != 429 or not isinstance(milliseconds, int):
        return {}
    return {"Retry-After": str(max(1, -(-milliseconds // 1000)))}
