"""Accounts as the server admin sees them: Synapse's user admin API behind a service.

Synapse's admin API "User Admin API" (`/_synapse/admin/v2/users`,
`v2/users/{userId}`, `v1/deactivate`, `v1/reset_password`,
`v1/users/{userId}/admin`), which synapse-admin and scripts use:

- the user record Synapse answers (`name`, `admin`, `deactivated`,
  `is_guest`, `erased`, `displayname`, `avatar_url`, `creation_ts`,
  `last_seen_ts`, `threepids`, ...), with what this server keeps; flags it
  has no notion of (shadow bans, locks, user types, consent) are the value
  they always have here;
- the list with Synapse's filters (`user_id`, `name`, `guests`,
  `deactivated`, `admins`), orders (`order_by`, `dir`) and offset paging;
- create or modify through one `PUT`, as Synapse does: display name,
  avatar, password (logging out devices unless told not to), admin flag
  (an admin cannot demote themselves), deactivation (and reactivation, which
  needs a new password).

When each account was created is kept here (`userid_createdts`, written when
an account is registered); accounts older than this record report 0.
This server keeps no third-party identifiers: `threepids` is always `[]`,
and a request to set some is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.ids import UserId, is_on_server
from ..errors import MatrixError, bad_json, invalid_param, not_found
from ..storage import Database
from ..storage.kv import from_u64, u64
from .clock import Clock, now_ms
from .devices import Devices
from .registration import Registration
from .users import Users

TREES = ("userid_createdts",)

ORDERS = (
    "name",
    "displayname",
    "is_guest",
    "admin",
    "deactivated",
    "user_type",
    "avatar_url",
    "shadow_banned",
    "creation_ts",
    "last_seen_ts",
    "locked",
)
"""Synapse's `order_by` values (`guest` is Synapse's spelling for `is_guest`)."""
_ORDER_ALIASES = {"guest": "is_guest"}


@dataclass(frozen=True)
class UserQuery:
    """`GET /_synapse/admin/v2/users`, parsed."""

    start: int = 0
    limit: int = 100
    user_id: str | None = None
    name: str | None = None
    guests: bool = True
    deactivated: bool = False
    admins: bool | None = None
    order_by: str = "name"
    backwards: bool = False


class AdminUsers:
    def __init__(
        self,
        db: Database,
        users: Users,
        devices: Devices,
        registration: Registration,
        *,
        clock: Clock = now_ms,
    ) -> None:
        self._users = users
        self._devices = devices
        self._registration = registration
        self._created = db.tree("userid_createdts")
        self._clock = clock
        self.server_name = users.server_name

    def note_registered(self, user_id: str) -> None:
        """Remember when the account was made (`Registration.registered`)."""
        self._created.put(user_id.encode(), u64(self._clock()))

    # ------------------------------------------------------------ reading

    def local_user(
        self,
        user_id: str,
        *,
        remote_message: str = "This endpoint can only be used with local users.",
    ) -> str:
        """`user_id` if it is a well-formed id of this server, else 400 `M_INVALID_PARAM`
        (with `remote_message`, Synapse's words, for another server's user)."""
        try:
            UserId.parse(user_id)
        except ValueError:
            raise invalid_param(f"{user_id!r} is not a valid user id.") from None
        if not is_on_server(user_id, self.server_name):
            raise invalid_param(remote_message)
        return user_id

    def info(self, user_id: str) -> dict[str, Any] | None:
        """Synapse's user record, or None if there is no such account."""
        if not self._users.exists(user_id):
            return None
        record = self._summary(user_id)
        record.update(
            {
                "threepids": [],
                "external_ids": [],
                "appservice_id": None,
                "consent_server_notice_sent": None,
                "consent_version": None,
                "consent_ts": None,
                "suspended": False,
            }
        )
        return record

    def require_info(self, user_id: str) -> dict[str, Any]:
        record = self.info(user_id)
        if record is None:
            raise not_found("User not found.")
        return record

    def page(self, query: UserQuery) -> dict[str, Any]:
        """One page of the user list and the total that matched, as Synapse answers."""
        order = _ORDER_ALIASES.get(query.order_by, query.order_by)
        if order not in ORDERS:
            raise invalid_param(f"`order_by` must be one of {', '.join(ORDERS)}.")
        records = (self._summary(user_id) for user_id in self._users.local_user_ids())
        matching = [record for record in records if _matches(record, query)]
        matching.sort(key=lambda record: (_sort_value(record[order]), record["name"]))
        if query.backwards:
            matching.reverse()
        users = matching[query.start : query.start + query.limit]
        answer: dict[str, Any] = {"users": users, "total": len(matching)}
        if query.start + query.limit < len(matching):
            answer["next_token"] = str(query.start + len(users))
        return answer

    def _summary(self, user_id: str) -> dict[str, Any]:
        created = self._created.get(user_id.encode())
        seen = [d.last_seen_ts for d in self._devices.of_user(user_id) if d.last_seen_ts]
        return {
            "name": user_id,
            "user_type": None,
            "is_guest": self._users.is_guest(user_id),
            "admin": self._users.is_admin(user_id),
            "deactivated": self._users.is_deactivated(user_id),
            "shadow_banned": False,
            "displayname": self._users.displayname(user_id),
            "avatar_url": self._users.avatar_url(user_id),
            "creation_ts": 0 if created is None else from_u64(created),
            "last_seen_ts": max(seen) if seen else None,
            "locked": False,
            "erased": self._users.is_erased(user_id),
        }

    # ------------------------------------------------------------ changing

    async def create_or_modify(
        self, requester: str, user_id: str, body: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        """`PUT /_synapse/admin/v2/users/{userId}`: (created, the user record)."""
        fields = _checked_fields(body)
        existing = self.info(user_id)
        if existing is None:
            await self._create(user_id, body, fields)
            return True, self.require_info(user_id)
        if existing["deactivated"] and fields.deactivated is False and "deactivated" in body:
            if fields.password is None:
                raise invalid_param("Must provide a password to re-activate an account.")
            await self._users.reactivate(user_id, fields.password)
        if "displayname" in body:
            await self._users.set_displayname(user_id, fields.displayname or None)
        if "avatar_url" in body:
            await self._users.set_avatar_url(user_id, fields.avatar_url or None)
        if "admin" in body and fields.admin != existing["admin"]:
            self.set_admin(requester, user_id, fields.admin)
        if fields.password is not None and not existing["deactivated"]:
            await self._users.set_password(
                user_id,
                fields.password,
                log_out_devices=fields.logout_devices,
                keep_device_id=None,
            )
        if fields.deactivated and not existing["deactivated"]:
            await self._users.deactivate(user_id)
        return False, self.require_info(user_id)

    async def _create(self, user_id: str, body: dict[str, Any], fields: _Fields) -> None:
        if fields.deactivated:
            raise invalid_param("A new account cannot be created deactivated.")
        localpart = UserId.parse(user_id).localpart
        if localpart != localpart.lower():
            raise MatrixError(
                400, "M_INVALID_USERNAME", "New user ids must be lower-case on this server."
            )
        await self._registration.register(
            username=localpart, password=fields.password, login=None, admin=fields.admin
        )
        if fields.displayname:
            await self._users.set_displayname(user_id, fields.displayname)
        if fields.avatar_url:
            await self._users.set_avatar_url(user_id, fields.avatar_url)

    def set_admin(self, requester: str, user_id: str, admin: bool) -> None:
        """Make `user_id` a server admin or not; nobody demotes themselves."""
        if user_id == requester and not admin:
            raise invalid_param("You may not demote yourself.")
        self._users.set_admin(user_id, admin)

    async def reset_password(self, user_id: str, password: str, *, logout_devices: bool) -> None:
        """`POST /_synapse/admin/v1/reset_password/{userId}`."""
        if not self._users.exists(user_id):
            raise not_found("User not found.")
        if self._users.is_deactivated(user_id):
            raise invalid_param("The account is deactivated; reactivate it with a new password.")
        await self._users.set_password(
            user_id, password, log_out_devices=logout_devices, keep_device_id=None
        )

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        """`POST /_synapse/admin/v1/deactivate/{userId}` (again: nothing more happens)."""
        if not self._users.exists(user_id):
            raise not_found("User not found.")
        if self._users.is_deactivated(user_id) and (not erase or self._users.is_erased(user_id)):
            return
        await self._users.deactivate(user_id, erase=erase)


@dataclass(frozen=True)
class _Fields:
    password: str | None
    logout_devices: bool
    admin: bool
    deactivated: bool
    displayname: str | None
    avatar_url: str | None


def _checked_fields(body: dict[str, Any]) -> _Fields:
    """The `PUT` body's fields, type-checked before anything changes."""
    password = body.get("password")
    if password is not None and (not isinstance(password, str) or len(password) > 512):
        raise invalid_param("Invalid password: a string of at most 512 characters.")
    flags = {}
    for name, default in (("logout_devices", True), ("admin", False), ("deactivated", False)):
        value = body.get(name, default)
        if not isinstance(value, bool):
            raise bad_json(f"'{name}' must be a boolean, if given.")
        flags[name] = value
    texts = {}
    for name in ("displayname", "avatar_url"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise bad_json(f"'{name}' must be a string or null.")
        texts[name] = value
    avatar_url = texts["avatar_url"]
    if avatar_url and not avatar_url.startswith("mxc://"):
        raise invalid_param("'avatar_url' must be an mxc:// URI.")
    threepids = body.get("threepids")
    if threepids is not None and threepids != []:
        raise invalid_param(
            "This server keeps no third-party identifiers (email, phone): "
            "`threepids` can only be empty."
        )
    if flags["deactivated"] and body.get("locked") is True:
        raise invalid_param("A user can't be deactivated and locked.")
    return _Fields(
        password,
        flags["logout_devices"],
        flags["admin"],
        flags["deactivated"],
        texts["displayname"],
        avatar_url,
    )


def _matches(record: dict[str, Any], query: UserQuery) -> bool:
    if query.user_id is not None and query.user_id.lower() not in record["name"].lower():
        return False
    if query.name is not None:
        needle = query.name.lower()
        if (
            needle not in record["name"].lower()
            and needle not in (record["displayname"] or "").lower()
        ):
            return False
    if not query.guests and record["is_guest"]:
        return False
    if not query.deactivated and record["deactivated"]:
        return False
    return query.admins is None or record["admin"] == query.admins


def _sort_value(value: object) -> tuple[int, Any]:
    """Orders None first, then values of one kind (bools, numbers, strings) among themselves."""
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (1, value.lower())
    return (1, value)
