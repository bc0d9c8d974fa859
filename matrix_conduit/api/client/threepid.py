"""Third-party identifiers (email, phone): answered as a server without them.

Spec: `data/api/client-server/administrative_contact.yaml` (`/account/3pid*`),
the `requestToken` endpoints of `registration.yaml` and
`password_management.yaml`, and "Other error codes" in
`content/client-server-api/_index.md`.

This server sends no email or SMS and talks to no identity server, so a user
never has a 3PID: the list is empty, validation requests are refused with
the error each endpoint defines for "not allowed here", and adding or
binding fails as an unverifiable credential would (no validation session can
exist), before asking for a password that could not help.
"""

from __future__ import annotations

from quart import Blueprint

from ...errors import MatrixError
from ..auth import authenticate
from .routes import client_route

blueprint = Blueprint("threepid", __name__)

NO_THREEPIDS = "This server does not support third-party identifiers (email, phone)."


@client_route(blueprint, "/account/3pid", methods=["GET"])
async def list_threepids() -> dict:
    authenticate()
    return {"threepids": []}


@client_route(blueprint, "/account/3pid", methods=["POST"])
@client_route(blueprint, "/account/3pid/add", methods=["POST"])
@client_route(blueprint, "/account/3pid/bind", methods=["POST"])
async def add_threepid() -> dict:
    authenticate()
    raise MatrixError(403, "M_THREEPID_AUTH_FAILED", NO_THREEPIDS)


@client_route(blueprint, "/account/3pid/delete", methods=["POST"])
async def delete_threepid() -> dict:
    authenticate()
    raise MatrixError(404, "M_THREEPID_NOT_FOUND", "This account has no third-party identifiers.")


@client_route(blueprint, "/account/3pid/unbind", methods=["POST"])
async def unbind_threepid() -> dict:
    authenticate()
    # The spec's answer when the server does not know the identity server used.
    return {"id_server_unbind_result": "no-support"}


@client_route(blueprint, "/account/3pid/email/requestToken", methods=["POST"])
@client_route(blueprint, "/account/3pid/msisdn/requestToken", methods=["POST"])
async def add_threepid_request_token() -> dict:
    raise MatrixError(400, "M_THREEPID_MEDIUM_NOT_SUPPORTED", NO_THREEPIDS)


@client_route(blueprint, "/register/email/requestToken", methods=["POST"])
@client_route(blueprint, "/register/msisdn/requestToken", methods=["POST"])
async def register_request_token() -> dict:
    raise MatrixError(403, "M_THREEPID_DENIED", NO_THREEPIDS)


@client_route(blueprint, "/account/password/email/requestToken", methods=["POST"])
@client_route(blueprint, "/account/password/msisdn/requestToken", methods=["POST"])
async def password_reset_request_token() -> dict:
    raise MatrixError(400, "M_THREEPID_NOT_FOUND", NO_THREEPIDS)
