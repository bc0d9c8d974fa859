"""The account itself: who am I, changing the password, deactivating.

Spec: `data/api/client-server/whoami.yaml` (`GET /account/whoami`),
`password_management.yaml` (`POST /account/password`: user-interactive
auth; `logout_devices`, default true, deletes every other device and its
tokens), `account_deactivation.yaml` (`POST /account/deactivate`), and
`content/client-server-api/_index.md`, "Account management".

Password change and deactivation work with or without an access token
(both have `security: [{}, accessTokenBearer]`): without one, the
`m.login.password` stage says who the user is.
"""

from __future__ import annotations

from quart import Blueprint

from ...service.uiaa import PASSWORD_FLOWS
from ..auth import Requester, authenticate, authenticate_if_present, user_interactive_auth
from ..fields import optional_bool, required_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("account", __name__)


@client_route(blueprint, "/account/whoami", methods=["GET"])
async def whoami() -> dict:
    requester = authenticate(allow_guest=True)
    answer: dict = {"user_id": requester.user_id, "is_guest": requester.is_guest}
    if requester.device_id is not None:
        answer["device_id"] = requester.device_id
    return answer


@client_route(blueprint, "/account/password", methods=["POST"])
async def change_password() -> dict:
    requester = authenticate_if_present()
    body = await json_object()
    new_password = required_str(body, "new_password")
    log_out_devices = optional_bool(body, "logout_devices", default=True)
    user_id = await _user_interactive_auth(body, requester)
    await services().users.set_password(
        user_id,
        new_password,
        log_out_devices=log_out_devices,
        keep_device_id=requester.device_id if requester else None,
    )
    return {}


@client_route(blueprint, "/account/deactivate", methods=["POST"])
async def deactivate() -> dict:
    requester = authenticate_if_present()
    body = await json_object()
    user_id = await _user_interactive_auth(body, requester)
    # `erase`: hide what the account sent from users who join later (Users.deactivate)
    erase = optional_bool(body, "erase", default=False)
    await services().users.deactivate(user_id, erase=erase)
    # This server binds no third-party identifiers, so there was nothing to unbind.
    return {"id_server_unbind_result": "success"}


async def _user_interactive_auth(body: dict, requester: Requester | None) -> str:
    """The user the password stage authenticated (the requester, when there is one)."""
    user_id = await user_interactive_auth(
        body, PASSWORD_FLOWS, user_id=requester.user_id if requester else None
    )
    assert user_id is not None, "the password flow always names a user"
    return user_id
