"""User administration (`/_synapse/admin/v2/users`, `v1/deactivate`, `v1/reset_password`,
`v1/users/{userId}/admin`).

Synapse's admin API "User Admin API": the list with its filters, orders and
paging; one user's record; create or modify with `PUT` (201 when created);
deactivation (with `erase`); password reset (with `logout_devices`,
default true); the admin flag; a user's joined rooms; and the spec's whois
under Synapse's path. The behaviour is `service/admin_users.py`.
"""

from __future__ import annotations

from quart import request

from ...core.ids import is_valid_user_id
from ...errors import bad_json, invalid_param, missing_param
from ...service.admin_users import UserQuery
from ..client.admin import whois
from ..fields import optional_bool, required_str
from ..query import query_bool, query_int
from ..request import json_object, services
from ._auth import require_admin
from ._routes import admin_route


@admin_route("/users", methods=["GET"], version="v2")
async def list_users() -> dict:
    require_admin()
    direction = request.args.get("dir", "f")
    if direction not in ("f", "b"):
        raise invalid_param("`dir` must be `f` or `b`.")
    admins = None if request.args.get("admins") is None else query_bool("admins")
    query = UserQuery(
        start=query_int("from", 0, minimum=0),
        limit=query_int("limit", 100, minimum=0),
        user_id=request.args.get("user_id"),
        name=request.args.get("name"),
        guests=query_bool("guests", True),
        deactivated=query_bool("deactivated", False),
        admins=admins,
        order_by=request.args.get("order_by", "name"),
        backwards=direction == "b",
    )
    return services().admin_users.page(query)


@admin_route("/users/<user_id>", methods=["GET"], version="v2")
async def get_user(user_id: str) -> dict:
    require_admin()
    admin_users = services().admin_users
    return admin_users.require_info(admin_users.local_user(user_id))


@admin_route("/users/<user_id>", methods=["PUT"], version="v2")
async def put_user(user_id: str) -> tuple[dict, int]:
    requester = require_admin()
    admin_users = services().admin_users
    user_id = admin_users.local_user(user_id)
    body = await json_object()
    created, record = await admin_users.create_or_modify(requester.user_id, user_id, body)
    return record, 201 if created else 200


@admin_route("/deactivate/<user_id>", methods=["POST"])
async def deactivate(user_id: str) -> dict:
    require_admin()
    admin_users = services().admin_users
    user_id = admin_users.local_user(user_id)
    body = await json_object(optional=True)
    erase = body.get("erase", False)
    if not isinstance(erase, bool):
        raise bad_json("'erase' must be a boolean, if given.")
    await admin_users.deactivate(user_id, erase=erase)
    return {"id_server_unbind_result": "success"}


@admin_route("/reset_password/<user_id>", methods=["POST"])
async def reset_password(user_id: str) -> dict:
    require_admin()
    admin_users = services().admin_users
    user_id = admin_users.local_user(user_id)
    body = await json_object()
    password = required_str(body, "new_password")
    if len(password) > 512:
        raise invalid_param("The password may have at most 512 characters.")
    logout_devices = optional_bool(body, "logout_devices", default=True)
    await admin_users.reset_password(user_id, password, logout_devices=logout_devices)
    return {}


@admin_route("/users/<user_id>/admin", methods=["GET"])
async def get_admin(user_id: str) -> dict:
    require_admin()
    user_id = _local_admin_candidate(user_id)
    return {"admin": services().users.is_admin(user_id)}


@admin_route("/users/<user_id>/admin", methods=["PUT"])
async def put_admin(user_id: str) -> dict:
    requester = require_admin()
    user_id = _local_admin_candidate(user_id)
    body = await json_object()
    if "admin" not in body:
        raise missing_param("admin")
    admin = body["admin"]
    if not isinstance(admin, bool):
        raise bad_json("'admin' must be true or false.")
    admin_users = services().admin_users
    admin_users.require_info(user_id)
    admin_users.set_admin(requester.user_id, user_id, admin)
    return {}


@admin_route("/users/<user_id>/joined_rooms", methods=["GET"])
async def joined_rooms(user_id: str) -> dict:
    require_admin()
    if not is_valid_user_id(user_id):
        raise invalid_param(f"{user_id!r} is not a valid user id.")
    rooms = sorted(services().rooms.state_cache.joined_rooms(user_id))
    return {"joined_rooms": rooms, "total": len(rooms)}


admin_route("/whois/<user_id>", methods=["GET"])(whois)
"""Synapse serves the spec's `/admin/whois` here too (admins, and users about themselves)."""


def _local_admin_candidate(user_id: str) -> str:
    return services().admin_users.local_user(
        user_id, remote_message="Only local users can be admins of this homeserver."
    )
