"""Local accounts: passwords, profiles, the admin flag, guests, deactivation.

Spec: `content/client-server-api/_index.md`, "Account registration and
management" (password management, account deactivation), "Profiles", the
Guest Access module, and the user identifier grammar of
`content/appendices.md` ("User Identifiers": new localparts are lower-case,
and `@USER:server` must reach `@user:server`).

An account exists as long as it has a `userid_password` entry, even an empty
one: guests have no password, deactivated accounts had theirs wiped (so they
can never log in again, and the name stays taken), and the server's own user
`@conduit:<server_name>` has one only while `emergency_password` is set.
That server user is created at startup; when the emergency password is
removed from the config, the next start wipes its password and logs out its
devices, so the emergency access ends.

Besides the display name and avatar, a profile holds custom fields (spec
v1.16 "profile fields"; `profile_fields.py` checks keys and sizes). An
account deactivated with `erase` is remembered in `userid_erased`, with the
stream position of the erasure (who had joined by then keeps seeing its
events unredacted: `rooms/visibility`).

Profile changes are announced through `profile_changed` (the rooms service
updates the user's membership events with it) and deactivations through
`account_deactivated` (the rooms service makes the user leave their rooms).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Config
from ..core.errors import InvalidIdentifier
from ..core.ids import UserId, is_on_server
from ..errors import MatrixError, bad_json, forbidden
from ..storage import Database, Tree, WriteBatch
from ..storage.kv import SEPARATOR, from_u64, u64
from .clock import Clock, now_ms
from .cluster import Cluster
from .coherence import Invalidations
from .devices import Devices
from .passwords import PasswordHashing

log = logging.getLogger(__name__)

TREES = (
    "userid_password",
    "userid_displayname",
    "userid_avatarurl",
    "useridkey_profilefield",
    "userid_erased",
    "userid_guest",
    "userid_deactivated",
    "userid_admin",
    "milestone_userid",
)

SERVER_USER_LOCALPART = "conduit"
LIGHTNING_BOLT = " ⚡️"
_FIRST_USER = b"first_user"

UserHook = Callable[[str], Awaitable[None]]


class Users:
    def __init__(
        self,
        db: Database,
        config: Config,
        devices: Devices,
        passwords: PasswordHashing,
        *,
        clock: Clock = now_ms,
        stream_position: Callable[[], int] | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self._db = db
        self._devices = devices
        self._passwords = passwords
        self._clock = clock
        self._stream_position = stream_position
        """A new global counter position (`Globals.next_count`), which orders erasures."""
        self._enable_lightning_bolt = config.enable_lightning_bolt
        self.server_name = config.server_name
        self.server_user_id = f"@{SERVER_USER_LOCALPART}:{config.server_name}"
        self._password = db.tree("userid_password")
        self._displayname = db.tree("userid_displayname")
        self._avatar_url = db.tree("userid_avatarurl")
        self._profile_fields = db.tree("useridkey_profilefield")
        self._erased_tree = db.tree("userid_erased")
        self._erased: dict[str, int] = {}
        self._reload_erased()
        self._erasures = Invalidations(
            cluster, "erased", self._erased_elsewhere, self._reload_erased
        )
        """Accounts another process erased."""
        self._guest = db.tree("userid_guest")
        self._deactivated = db.tree("userid_deactivated")
        self._admin = db.tree("userid_admin")
        self._milestones = db.tree("milestone_userid")
        self.profile_changed: list[UserHook] = []
        """Awaited with the user id after its display name or avatar changed."""
        self.account_deactivated: list[UserHook] = []
        """Awaited with the user id after the account was deactivated."""
        self.account_erased: list[UserHook] = []
        """Awaited after `account_deactivated` when the deactivation erased the account
        (its other data goes: account data)."""
        self._set_up_server_user(config.emergency_password)

    # ------------------------------------------------------------ facts

    def exists(self, user_id: str) -> bool:
        return self._password.get(user_id.encode()) is not None

    def is_deactivated(self, user_id: str) -> bool:
        return self._deactivated.get(user_id.encode()) is not None

    def is_guest(self, user_id: str) -> bool:
        return self._guest.get(user_id.encode()) is not None

    def _erased_elsewhere(self, item: list[object]) -> None:
        user_id, position = item
        self._erased[str(user_id)] = int(str(position))

    def _reload_erased(self) -> None:
        self._erased = {
            key.decode(): from_u64(value) for key, value in self._erased_tree.iter_prefix(b"")
        }

    def is_erased(self, user_id: str) -> bool:
        """Whether the account was deactivated with `erase` (its messages are hidden from
        users who were not in the room when they were sent: `rooms/visibility`)."""
        return user_id in self._erased

    def erased_at(self, user_id: str) -> int | None:
        """The stream position of the account's erasure; None if it was not erased."""
        return self._erased.get(user_id)

    def is_admin(self, user_id: str) -> bool:
        return self._admin.get(user_id.encode()) is not None

    def local_user_ids(self) -> list[str]:
        """Every account of this server (deactivated and guests included), by id."""
        return [key.decode() for key in self._password.keys_with_prefix()]

    def set_admin(self, user_id: str, admin: bool) -> None:
        """Make the account a server admin, or not (the admin API; `create-user --admin`)."""
        if admin:
            self._admin.put(user_id.encode(), b"")
        else:
            self._admin.delete(user_id.encode())

    def admin_user_ids(self) -> list[str]:
        """The server admins (the admin room invites each and gives them power level 100)."""
        return [key.decode() for key in self._admin.keys_with_prefix(b"")]

    def first_user(self) -> str | None:
        """The first account ever created besides the server user (it became admin)."""
        stored = self._milestones.get(_FIRST_USER)
        return None if stored is None else stored.decode()

    def local_user_id(self, user: str) -> str | None:
        """The local user a login names, by localpart or full id (any case); None if foreign."""
        if user.startswith("@"):
            try:
                parsed = UserId.parse(user)
            except InvalidIdentifier:
                return None
            if not is_on_server(user, self.server_name):
                return None
            user = parsed.localpart
        return f"@{user.lower()}:{self.server_name}"

    def user_id_from_identifier(self, body: dict[str, Any]) -> str | None:
        """The local user named by a login body or a password auth dict.

        Spec: "Identifier types". `m.id.user` (or the deprecated top-level
        `user`) names a user by localpart or user id; None when that cannot be
        a local user. Third-party identifiers get 403, as the spec requires
        for a 3PID the server does not know: this server keeps none.
        """
        identifier = body.get("identifier")
        if identifier is None:
            if "medium" in body or "address" in body:
                raise _unknown_third_party_identifier()
            identifier = {"type": "m.id.user", "user": body.get("user")}
        if not isinstance(identifier, dict):
            raise bad_json("identifier must be an object.")
        kind = identifier.get("type")
        if kind in ("m.id.thirdparty", "m.id.phone"):
            raise _unknown_third_party_identifier()
        if kind != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", f"Unknown identifier type {kind!r}.")
        user = identifier.get("user")
        if not isinstance(user, str):
            raise bad_json("The identifier needs a string `user`.")
        return self.local_user_id(user)

    # ------------------------------------------------------------ passwords

    async def check_password(self, user_id: str, password: object) -> bool:
        """Whether `password` is the account's password (never true without one).

        A hash made with older argon2 parameters is replaced after a match.
        """
        stored = self._password.get(user_id.encode())
        stored_hash = "" if stored is None else stored.decode()
        if not isinstance(password, str):
            return False
        if not await self._passwords.verify(stored_hash, password):
            return False
        if self._passwords.needs_rehash(stored_hash):
            new_hash = await self._passwords.hash(password)
            if self._password.get(user_id.encode()) == stored:
                self._password.put(user_id.encode(), new_hash.encode())
        return True

    async def set_password(
        self, user_id: str, password: str, *, log_out_devices: bool, keep_device_id: str | None
    ) -> None:
        """A new password; with `log_out_devices`, every other device is deleted."""
        password_hash = await self._passwords.hash(password)
        with self._db.batch() as batch:
            batch.put(self._password, user_id.encode(), password_hash.encode())
            if log_out_devices:
                self._devices.delete_all(user_id, except_device_id=keep_device_id, batch=batch)

    # ------------------------------------------------------------ profiles

    def displayname(self, user_id: str) -> str | None:
        stored = self._displayname.get(user_id.encode())
        return None if stored is None else stored.decode()

    def avatar_url(self, user_id: str) -> str | None:
        stored = self._avatar_url.get(user_id.encode())
        return None if stored is None else stored.decode()

    async def set_displayname(self, user_id: str, displayname: str | None) -> None:
        """Set (None: remove) the display name, then tell `profile_changed`."""
        _put_or_delete(self._displayname, user_id, displayname)
        await self._announce(self.profile_changed, user_id)

    async def set_avatar_url(self, user_id: str, avatar_url: str | None) -> None:
        """Set (None: remove) the avatar, then tell `profile_changed`."""
        _put_or_delete(self._avatar_url, user_id, avatar_url)
        await self._announce(self.profile_changed, user_id)

    def custom_profile_fields(self, user_id: str) -> dict[str, Any]:
        """The profile fields besides `displayname` and `avatar_url` (spec v1.16 "Profiles"),
        by key."""
        prefix = user_id.encode() + SEPARATOR
        return {
            key[len(prefix) :].decode(): json.loads(raw)
            for key, raw in self._profile_fields.iter_prefix(prefix)
        }

    def set_custom_profile_field(self, user_id: str, key_name: str, value: Any) -> None:
        """Store one custom field (any JSON value, `null` included: the spec says a stored
        `null` is not a deletion); the caller checked the key and the size limits."""
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        self._profile_fields.put(_field_key(user_id, key_name), encoded)

    def delete_custom_profile_field(self, user_id: str, key_name: str) -> None:
        self._profile_fields.delete(_field_key(user_id, key_name))

    # ------------------------------------------------------------ account lifecycle

    def default_displayname(self, localpart: str) -> str:
        return localpart + LIGHTNING_BOLT if self._enable_lightning_bolt else localpart

    def write_new_account(
        self,
        batch: WriteBatch,
        user_id: str,
        password_hash: str,
        *,
        guest: bool = False,
        admin: bool = False,
        appservice: bool = False,
    ) -> None:
        """Queue a new account's records in `batch` (the caller checked the name is free).

        The first non-guest account of the server becomes its admin, unless an
        appservice made it (a bridge's bot or ghost is nobody's admin account).
        """
        key = user_id.encode()
        batch.put(self._password, key, password_hash.encode())
        localpart = UserId.parse(user_id).localpart
        batch.put(self._displayname, key, self.default_displayname(localpart).encode())
        if guest:
            batch.put(self._guest, key, b"")
            return
        if self.first_user() is None and not appservice:
            batch.put(self._milestones, _FIRST_USER, key)
            admin = True
        if admin:
            batch.put(self._admin, key, b"")

    def upgrade_guest(self, batch: WriteBatch, user_id: str, password_hash: str) -> None:
        """Queue turning guest `user_id` into a full account (same id, rooms and profile).

        Spec: Guest Access ("Guest users can also upgrade their account").
        """
        key = user_id.encode()
        batch.put(self._password, key, password_hash.encode())
        batch.delete(self._guest, key)
        if self.first_user() is None:
            batch.put(self._milestones, _FIRST_USER, key)
            batch.put(self._admin, key, b"")

    async def deactivate(self, user_id: str, *, erase: bool = False) -> None:
        """Deactivate for good: no password, no devices, no profile, no admin flag.

        The `userid_password` entry stays (empty), so the name stays taken.
        The server's own user cannot be deactivated: the server acts through it.
        With `erase` (spec: "Account deactivation", `erase`), the account is also
        marked erased: what it sent is served redacted to users who join its rooms
        after the erasure (the spec's words; `rooms/visibility`).
        """
        if user_id == self.server_user_id:
            raise forbidden("The server's own user cannot be deactivated.")
        key = user_id.encode()
        with self._db.batch() as batch:
            batch.put(self._password, key, b"")
            batch.put(self._deactivated, key, u64(self._clock()))
            for tree in (self._displayname, self._avatar_url, self._admin):
                batch.delete(tree, key)
            for field_key in list(self._profile_fields.keys_with_prefix(key + SEPARATOR)):
                batch.delete(self._profile_fields, field_key)
            if erase:
                position = self._stream_position() if self._stream_position else 0
                batch.put(self._erased_tree, key, u64(position))
                batch.after_commit(lambda: self._erased.__setitem__(user_id, position))
                self._erasures.tell([user_id, position], batch)
            self._devices.delete_all(user_id, batch=batch)
        log.info("deactivated %s%s", user_id, " (erased)" if erase else "")
        await self._announce(self.account_deactivated, user_id)
        if erase:
            await self._announce(self.account_erased, user_id)

    async def reactivate(self, user_id: str, password: str) -> None:
        """Let a deactivated account log in again with a new password (the admin API).

        Its profile, devices and rooms are gone for good; an erasure stays (what it
        sent before stays hidden from later joiners).
        """
        password_hash = await self._passwords.hash(password)
        key = user_id.encode()
        with self._db.batch() as batch:
            batch.put(self._password, key, password_hash.encode())
            batch.delete(self._deactivated, key)
            localpart = UserId.parse(user_id).localpart
            batch.put(self._displayname, key, self.default_displayname(localpart).encode())
        log.info("reactivated %s", user_id)

    def _set_up_server_user(self, emergency_password: str | None) -> None:
        """Create `@conduit:<server_name>`; its password is the emergency password, if any."""
        key = self.server_user_id.encode()
        password_hash = (
            self._passwords.hash_blocking(emergency_password) if emergency_password else ""
        )
        with self._db.batch() as batch:
            batch.put(self._password, key, password_hash.encode())
            if not emergency_password:
                self._devices.delete_all(self.server_user_id, batch=batch)
        if emergency_password:
            log.warning(
                "emergency_password is set: %s can log in with it; remove it when done",
                self.server_user_id,
            )

    async def _announce(self, hooks: list[UserHook], user_id: str) -> None:
        for hook in hooks:
            await hook(user_id)


def _put_or_delete(tree: Tree, user_id: str, value: str | None) -> None:
    if value is None:
        tree.delete(user_id.encode())
    else:
        tree.put(user_id.encode(), value.encode())


def _field_key(user_id: str, key_name: str) -> bytes:
    return user_id.encode() + SEPARATOR + key_name.encode()


def _unknown_third_party_identifier() -> MatrixError:
    return MatrixError(
        403,
        "M_FORBIDDEN",
        "This server keeps no third-party identifiers (email, phone); use your user id.",
    )
