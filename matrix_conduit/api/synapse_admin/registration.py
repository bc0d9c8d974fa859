"""Shared-secret registration and the server version, which need no admin token.

Synapse's admin API "Shared-Secret Registration" (`GET`/`POST
/_synapse/admin/v1/register`: a nonce, then the account with its HMAC;
`service/shared_secret_registration.py`) and "Server Version" (`GET
/_synapse/admin/v1/server_version`).
"""

from __future__ import annotations

from ... import __version__
from ..client.session import login_json
from ..request import json_object, services
from ._routes import admin_route


@admin_route("/register", methods=["GET"])
async def register_nonce() -> dict:
    return {"nonce": services().shared_secret_registration.new_nonce()}


@admin_route("/register", methods=["POST"])
async def register_with_shared_secret() -> dict:
    registration = services().shared_secret_registration
    body = await json_object() if registration.enabled else {}
    registered = await registration.register(body)
    assert registered.tokens is not None  # always logged in
    return login_json(registered.tokens)


@admin_route("/server_version", methods=["GET"])
async def server_version() -> dict:
    return {"server_version": f"matrix-conduit {__version__}"}
