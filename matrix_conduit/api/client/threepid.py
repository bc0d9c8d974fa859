"""Third-party identifiers (email, phone): answered as a server without them.

Spec: `data/api/client-server/administrative_contact.yaml` (`/account/3pid*`),
the `requestToken` endpoints of `registration.yaml` and
`password_management.yaml`, and "Other error codes" in
`content/client-server-api/_index.md`.

This server sends no email or SMS, so a user never has a 3PID of the
homeserver's own: the list is empty, validation requests are refused with
the error each endpoint defines for "not allowed here", and adding fails as
an unverifiable credential would (no validation session can exist), before
asking for a password that could not help. Binding and unbinding on an
identity server the client names (`/account/3pid/bind`, `/unbind`) are done
by `service/third_party_invites.py`; `third_party_id` reads the
`id_server`/`id_access_token`/`medium`/`address` objects of third-party
invites (`/invite`, `invite_3pid`).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from ...errors import MatrixError, bad_json
from ...service.third_party_invites import ThirdPartyId
from ..auth import authenticate
from ..fields import optional_str, required_str
from ..rate_limits import limited_by_address
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("threepid", __name__)

NO_THREEPIDS = "This server does not support third-party identifiers (email, phone)."


@client_route(blueprint, "/account/3pid", methods=["GET"])
async def list_threepids() -> dict:
    authenticate()
    return {"threepids": []}


def third_party_id(body: Any) -> ThirdPartyId:
    """An invitee named by `id_server`, `id_access_token`, `medium` and `address` (all required)."""
    if not isinstance(body, dict):
        raise bad_json("A third-party invitee must be an object.")
    return ThirdPartyId(
        required_str(body, "id_server"),
        required_str(body, "id_access_token"),
        required_str(body, "medium"),
        required_str(body, "address"),
    )


@client_route(blueprint, "/account/3pid/bind", methods=["POST"])
async def bind_threepid() -> dict:
    """Bind a session validated on the identity server to this user (there, not here)."""
    requester = authenticate()
    body = await json_object()
    await services().third_party_invites.bind(
        requester.user_id,
        required_str(body, "id_server"),
        required_str(body, "id_access_token"),
        required_str(body, "sid"),
        required_str(body, "client_secret"),
    )
    return {}


@client_route(blueprint, "/account/3pid", methods=["POST"])
@client_route(blueprint, "/account/3pid/add", methods=["POST"])
async def add_threepid() -> dict:
    authenticate()
    raise MatrixError(403, "M_THREEPID_AUTH_FAILED", NO_THREEPIDS)


@client_route(blueprint, "/account/3pid/delete", methods=["POST"])
async def delete_threepid() -> dict:
    authenticate()
    raise MatrixError(404, "M_THREEPID_NOT_FOUND", "This account has no third-party identifiers.")


@client_route(blueprint, "/account/3pid/unbind", methods=["POST"])
async def unbind_threepid() -> dict:
    """Unbind on `id_server`, or where this server bound it; "no-support" when it knows of none."""
    requester = authenticate()
    body = await json_object()
    result = await services().third_party_invites.unbind(
        requester.user_id,
        required_str(body, "medium"),
        required_str(body, "address"),
        optional_str(body, "id_server"),
    )
    return {"id_server_unbind_result": result}


@client_route(blueprint, "/account/3pid/email/requestToken", methods=["POST"])
@client_route(blueprint, "/account/3pid/msisdn/requestToken", methods=["POST"])
@limited_by_address("threepid_validation")
async def add_threepid_request_token() -> dict:
    raise MatrixError(400, "M_THREEPID_MEDIUM_NOT_SUPPORTED", NO_THREEPIDS)


@client_route(blueprint, "/register/email/requestToken", methods=["POST"])
@client_route(blueprint, "/register/msisdn/requestToken", methods=["POST"])
@limited_by_address("threepid_validation")
async def register_request_token() -> dict:
    raise MatrixError(403, "M_THREEPID_DENIED", NO_THREEPIDS)


@client_route(blueprint, "/account/password/email/requestToken", methods=["POST"])
@client_route(blueprint, "/account/password/msisdn/requestToken", methods=["POST"])
@limited_by_address("threepid_validation")
async def password_reset_request_token() -> dict:
    raise MatrixError(400, "M_THREEPID_NOT_FOUND", NO_THREEPIDS)
