"""Logging in and out, and refreshing access tokens.

Spec: `content/client-server-api/_index.md`, "Login" (legacy API),
"Refreshing access tokens", "Soft logout"; `data/api/client-server/login.yaml`
(`GET`/`POST /login`), `logout.yaml` (`/logout`, `/logout/all`: the device
goes with its token), `refresh.yaml` (`POST /refresh`).

`GET /login` lists exactly the types `POST /login` accepts:
`m.login.password` always, the JWT types when `jwt_secret` is set,
`m.login.application_service` when an appservice is registered.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from ...errors import MatrixError, bad_json, forbidden
from ...service.devices import DeviceLogin, Tokens, check_device_id
from ...service.jwt_login import LOGIN_TYPES as JWT_LOGIN_TYPES
from ..auth import appservice_of_request, authenticate
from ..fields import optional_bool, optional_str, required_str
from ..rate_limits import limited_login
from ..request import config, json_object, services
from .routes import client_route

blueprint = Blueprint("session", __name__)

PASSWORD_LOGIN = "m.login.password"
APPSERVICE_LOGIN = "m.login.application_service"
WRONG_CREDENTIALS = "Wrong user name or password."


def device_login(body: dict[str, Any]) -> DeviceLogin:
    """The device part of a login or registration body."""
    device_id = body.get("device_id")
    return DeviceLogin(
        device_id=None if device_id is None else check_device_id(device_id),
        initial_display_name=optional_str(body, "initial_device_display_name"),
        refreshable=optional_bool(body, "refresh_token", default=False),
    )


def tokens_json(tokens: Tokens) -> dict[str, Any]:
    """The token fields of a login, registration or refresh answer."""
    answer: dict[str, Any] = {"access_token": tokens.access_token}
    if tokens.refresh_token is not None:
        answer["refresh_token"] = tokens.refresh_token
        answer["expires_in_ms"] = tokens.expires_in_ms
    return answer


def login_json(tokens: Tokens) -> dict[str, Any]:
    """The answer to a successful login or registration."""
    return {
        "user_id": tokens.user_id,
        "device_id": tokens.device_id,
        "home_server": config().server_name,
        **tokens_json(tokens),
    }


def login_types() -> list[str]:
    jwt_types = list(JWT_LOGIN_TYPES) if services().jwt_login.enabled else []
    appservice_types = [APPSERVICE_LOGIN] if services().appservices.list() else []
    return [PASSWORD_LOGIN, *jwt_types, *appservice_types]


@client_route(blueprint, "/login", methods=["GET"])
async def get_login_types() -> dict:
    return {"flows": [{"type": login_type} for login_type in login_types()]}


@client_route(blueprint, "/login", methods=["POST"])
@limited_login
async def login() -> dict:
    body = await json_object()
    login_type = body.get("type")
    if login_type == PASSWORD_LOGIN:
        user_id = await _password_login(body)
    elif login_type == APPSERVICE_LOGIN:
        user_id = _appservice_login(body)
    elif login_type in JWT_LOGIN_TYPES:
        user_id = await services().jwt_login.user_id_for(body.get("token"))
        _refuse_deactivated(user_id)
    elif not isinstance(login_type, str):
        raise bad_json("`type` must be the login type, a string.")
    else:
        raise MatrixError(400, "M_UNKNOWN", f"Unsupported login type {login_type!r}.")
    answer = login_json(services().devices.log_in(user_id, device_login(body)))
    if config().well_known.client is not None:
        answer["well_known"] = {"m.homeserver": {"base_url": config().well_known.client}}
    return answer


async def _password_login(body: dict[str, Any]) -> str:
    users = services().users
    user_id = users.user_id_from_identifier(body)
    password = required_str(body, "password")
    if user_id is not None:
        _refuse_deactivated(user_id)
    if user_id is None or not await users.check_password(user_id, password):
        raise forbidden(WRONG_CREDENTIALS)
    return user_id


def _appservice_login(body: dict[str, Any]) -> str:
    """An appservice logs in as one of its users with its `as_token` (spec:
    application-service-api.md, "Server admin style permissions"): another
    user is 400 `M_EXCLUSIVE`."""
    appservice = appservice_of_request()
    user_id = services().users.user_id_from_identifier(body)
    if user_id is None or not appservice.owns_user(user_id):
        raise MatrixError(
            400, "M_EXCLUSIVE", f"That user is outside the namespaces of {appservice.id!r}."
        )
    if not services().users.exists(user_id):
        raise forbidden(WRONG_CREDENTIALS)
    _refuse_deactivated(user_id)
    return user_id


def _refuse_deactivated(user_id: str) -> None:
    if services().users.is_deactivated(user_id):
        raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated.")


@client_route(blueprint, "/logout", methods=["POST"])
async def logout() -> dict:
    requester = authenticate(allow_guest=True)
    if requester.device_id is not None:
        services().devices.delete(requester.user_id, [requester.device_id])
    return {}


@client_route(blueprint, "/logout/all", methods=["POST"])
async def logout_all() -> dict:
    requester = authenticate(allow_guest=True)
    services().devices.delete_all(requester.user_id)
    return {}


@client_route(blueprint, "/refresh", methods=["POST"], versions=("v3",))
async def refresh() -> dict:
    body = await json_object()
    return tokens_json(services().devices.refresh(required_str(body, "refresh_token")))
