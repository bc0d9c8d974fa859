"""Registering accounts: `POST /register`, name availability, registration tokens.

Spec: `data/api/client-server/registration.yaml` (`POST /register`,
`GET /register/available`), `registration_tokens.yaml`
(`GET /v1/register/m.login.registration_token/validity`), and
`content/client-server-api/_index.md`, "User-Interactive Authentication
API", "Token-authenticated registration", Guest Access module.

The name checks (`M_INVALID_USERNAME`, `M_USER_IN_USE`) come before
user-interactive auth, as registration.yaml requires. Guest registration
skips user-interactive auth and ignores every body field but
`initial_device_display_name`.

An appservice registers its users with `type: m.login.application_service`
and its `as_token` (application-service-api.md, "Server admin style
permissions"): no user-interactive auth, whatever `allow_registration`
says, names in its user namespaces only (else 400 `M_EXCLUSIVE`).
"""

from __future__ import annotations

from quart import Blueprint, request

from ...errors import invalid_param, missing_param
from ...service.devices import DeviceLogin
from ..auth import appservice_of_request, user_interactive_auth
from ..fields import optional_bool, optional_str
from ..rate_limits import limited_by_address
from ..request import config, json_object, services
from .routes import client_route
from .session import APPSERVICE_LOGIN, device_login, login_json

blueprint = Blueprint("register", __name__)


@client_route(blueprint, "/register", methods=["POST"])
@limited_by_address("registration", charge_on_success=True)
async def register() -> dict:
    kind = request.args.get("kind", "user")
    if kind not in ("user", "guest"):
        raise invalid_param("`kind` must be `user` or `guest`.")
    body = await json_object()
    registration = services().registration
    if body.get("type") == APPSERVICE_LOGIN and kind == "user":
        return await _register_for_appservice(body)
    registration.check_allowed(guest=kind == "guest")
    if kind == "guest":
        display_name = optional_str(body, "initial_device_display_name")
        login: DeviceLogin | None = DeviceLogin(initial_display_name=display_name)
        username = password = None
    else:
        username = optional_str(body, "username")
        if username is not None and body.get("guest_access_token") is None:
            registration.available_user_id(username)
        password = optional_str(body, "password")
        inhibit_login = optional_bool(body, "inhibit_login", default=False)
        login = None if inhibit_login else device_login(body)
        await user_interactive_auth(body, registration.flows(), user_id=None)
    guest_access_token = optional_str(body, "guest_access_token") if kind == "user" else None
    auth = body.get("auth")
    uia_session = auth.get("session") if isinstance(auth, dict) and kind == "user" else None
    if guest_access_token is not None:
        registered = await registration.upgrade_guest(
            guest_access_token=guest_access_token,
            username=username,
            password=password,
            login=login,
            uia_session=uia_session,
        )
    else:
        registered = await registration.register(
            username=username,
            password=password,
            guest=kind == "guest",
            login=login,
            uia_session=uia_session,
        )
    if registered.tokens is None:
        return {"user_id": registered.user_id, "home_server": config().server_name}
    return login_json(registered.tokens)


async def _register_for_appservice(body: dict) -> dict:
    appservice = appservice_of_request()
    username = optional_str(body, "username")
    inhibit_login = optional_bool(body, "inhibit_login", default=False)
    registered = await services().registration.register(
        username=username,
        password=None,
        login=None if inhibit_login else device_login(body),
        appservice=appservice,
    )
    if registered.tokens is None:
        return {"user_id": registered.user_id, "home_server": config().server_name}
    return login_json(registered.tokens)


@client_route(blueprint, "/register/available", methods=["GET"])
async def username_available() -> dict:
    username = request.args.get("username")
    if username is None:
        raise missing_param("username")
    services().registration.available_user_id(username)
    return {"available": True}


@client_route(
    blueprint,
    "/register/m.login.registration_token/validity",
    methods=["GET"],
    versions=("v1",),
)
async def registration_token_validity() -> dict:
    token = request.args.get("token")
    if token is None:
        raise missing_param("token")
    return {"valid": services().registration.token_is_valid(token)}
