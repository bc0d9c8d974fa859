"""Registration tokens an admin manages (`/_synapse/admin/v1/registration_tokens`).

Synapse's admin API "Registration Tokens": list (`valid` filter), create
(`POST .../new` with `token` or `length`, `uses_allowed`, `expiry_time`),
get, update (`PUT`), delete. The tokens count at `/register` beside the
configured `registration_token` (`service/registration_tokens.py`).
"""

from __future__ import annotations

from typing import Any

from quart import request

from ...errors import invalid_param
from ...service.registration_tokens import DEFAULT_GENERATED_LENGTH
from ..query import query_bool
from ..request import json_object, services
from ._auth import require_admin
from ._routes import admin_route


@admin_route("/registration_tokens", methods=["GET"])
async def list_tokens() -> dict:
    require_admin()
    valid = None if request.args.get("valid") is None else query_bool("valid")
    tokens = services().registration_tokens.all(valid=valid)
    return {"registration_tokens": [token.to_json() for token in tokens]}


@admin_route("/registration_tokens/new", methods=["POST"])
async def create_token() -> dict:
    require_admin()
    body = await json_object(optional=True)
    token = body.get("token")
    if "token" in body and not isinstance(token, str):
        raise invalid_param("`token` must be a string.")
    length = body.get("length", DEFAULT_GENERATED_LENGTH)
    if token is None and type(length) is not int:
        raise invalid_param("`length` must be an integer.")
    created = services().registration_tokens.create(
        token=token,
        length=length,
        uses_allowed=body.get("uses_allowed"),
        expiry_time=body.get("expiry_time"),
    )
    return created.to_json()


@admin_route("/registration_tokens/<token>", methods=["GET"])
async def get_token(token: str) -> dict:
    require_admin()
    return services().registration_tokens.get(token).to_json()


@admin_route("/registration_tokens/<token>", methods=["PUT"])
async def update_token(token: str) -> dict:
    require_admin()
    body = await json_object()
    changes: dict[str, Any] = {
        name: body[name] for name in ("uses_allowed", "expiry_time") if name in body
    }
    return services().registration_tokens.update(token, **changes).to_json()


@admin_route("/registration_tokens/<token>", methods=["DELETE"])
async def delete_token(token: str) -> dict:
    require_admin()
    services().registration_tokens.delete(token)
    return {}
