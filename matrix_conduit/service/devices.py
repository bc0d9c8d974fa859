"""Devices and their access and refresh tokens.

Spec: `content/client-server-api/_index.md`, "Relationship between access
tokens and devices", "Refreshing access tokens", "Soft logout", and the
Device Management module (`data/api/client-server/device_management.yaml`).

Every access token belongs to one device, and a device has at most one live
access token (plus, for clients that asked for refresh tokens, a refresh
token). Tokens are 256 random bits; only their sha256 is stored, as the key of
the lookup tree, so a copy of the database holds no usable token and a
request's token is found with one `get`. A plain hash is enough: nobody can
guess a 256-bit token, so there is nothing for a slow hash to slow down.

Refresh (spec, "Refreshing access tokens"): a refresh issues a new access and
refresh token; the old refresh token stays valid until the new access or
refresh token is first used, so a client that lost the response can repeat
the refresh. Access tokens from a refreshable login expire after
`access_token_lifetime_ms`; an expired one gets `M_UNKNOWN_TOKEN` with
`soft_logout: true`. Tokens of clients that did not ask for refresh tokens do
not expire.

Device list changes (new device, deleted device, renamed device) each take a
position on the global counter, recorded per user, so `/sync` can report
`device_lists.changed` since a token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import MatrixError
from ..storage import Database, WriteBatch
from ..storage.kv import SEPARATOR, from_u64, join_key, u64
from .clock import Clock, now_ms
from .globals import Globals

TREES = (
    "userdeviceid_metadata",
    "userdeviceid_tokens",
    "accesstokenhash_session",
    "refreshtokenhash_userdeviceid",
    "userid_devicelistversion",
    "devicelistversion_userid",
)

DEFAULT_ACCESS_TOKEN_LIFETIME_MS = 30 * 60 * 1000
"""Lifetime of access tokens given to clients that support refresh tokens."""

LAST_SEEN_PRECISION_MS = 5 * 60 * 1000
"""`last_seen_ts` is rewritten at most this often per device (the spec allows it to lag)."""
MAX_USER_AGENT_LENGTH = 512

MAX_DEVICE_ID_LENGTH = 255
_DEVICE_ID_ALPHABET = string.ascii_uppercase
_GENERATED_DEVICE_ID_LENGTH = 10

DeviceDeletedHook = Callable[[WriteBatch, str, str], None]


@dataclass(frozen=True)
class Device:
    device_id: str
    display_name: str | None
    last_seen_ip: str | None
    last_seen_ts: int | None
    last_seen_user_agent: str | None = None
    """The `User-Agent` of the last request (`/admin/whois` shows it)."""


@dataclass(frozen=True)
class DeviceLogin:
    """What a client asked for when logging in or registering."""

    device_id: str | None = None
    initial_display_name: str | None = None
    refreshable: bool = False


@dataclass(frozen=True)
class Tokens:
    """What a login, registration or refresh hands the client."""

    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None = None
    expires_in_ms: int | None = None


@dataclass(frozen=True)
class TokenOwner:
    user_id: str
    device_id: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def unknown_token(message: str, *, soft_logout: bool = False) -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", message, soft_logout=soft_logout)


def check_device_id(device_id: object) -> str:
    """A client-chosen device id, or `M_INVALID_PARAM`."""
    if (
        not isinstance(device_id, str)
        or not device_id
        or len(device_id.encode()) > MAX_DEVICE_ID_LENGTH
    ):
        raise MatrixError(
            400, "M_INVALID_PARAM", "device_id must be a non-empty string of at most 255 bytes."
        )
    return device_id


class Devices:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        *,
        access_token_lifetime_ms: int = DEFAULT_ACCESS_TOKEN_LIFETIME_MS,
        clock: Clock = now_ms,
    ) -> None:
        self._db = db
        self._globals = globals_
        self._metadata = db.tree("userdeviceid_metadata")
        self._tokens = db.tree("userdeviceid_tokens")
        self._access = db.tree("accesstokenhash_session")
        self._refresh = db.tree("refreshtokenhash_userdeviceid")
        self._list_version = db.tree("userid_devicelistversion")
        self._list_changes = db.tree("devicelistversion_userid")
        self.access_token_lifetime_ms = access_token_lifetime_ms
        self.clock = clock
        self.device_deleted: list[DeviceDeletedHook] = []
        """Called with (batch, user_id, device_id) inside the batch that deletes a
        device, so that data tied to the device (its E2EE keys) goes in the same write."""
        self.device_list_changed: list[DeviceDeletedHook] = []
        """Called with (batch, user_id, device_id) inside the batch that adds, renames or
        deletes a device: the federation outbox queues `m.device_list_update` there."""

    # ------------------------------------------------------------ reading

    def device_ids(self, user_id: str) -> list[str]:
        prefix = join_key(user_id, b"")
        return [key[len(prefix) :].decode() for key in self._metadata.keys_with_prefix(prefix)]

    def get(self, user_id: str, device_id: str) -> Device | None:
        stored = self._metadata.get(join_key(user_id, device_id))
        return None if stored is None else _device(device_id, json.loads(stored))

    def of_user(self, user_id: str) -> list[Device]:
        prefix = join_key(user_id, b"")
        return [
            _device(key[len(prefix) :].decode(), json.loads(value))
            for key, value in self._metadata.iter_prefix(prefix)
        ]

    def device_list_version(self, user_id: str) -> int | None:
        """The counter position of the last change to the user's devices, if any."""
        stored = self._list_version.get(user_id.encode())
        return None if stored is None else from_u64(stored)

    def users_with_device_list_changes(self, since: int) -> list[str]:
        """Users whose device list changed after counter position `since`, oldest first."""
        changes = self._list_changes.iter_prefix(start=u64(since + 1))
        # Keys are u64 position, separator, user id: the position may itself hold 0xFF.
        return [key[len(u64(0)) + len(SEPARATOR) :].decode() for key, _ in changes]

    # ------------------------------------------------------------ tokens

    def owner_of_access_token(
        self, access_token: str, *, ip: str | None = None, user_agent: str | None = None
    ) -> TokenOwner:
        """Who `access_token` belongs to, or 401 `M_UNKNOWN_TOKEN`.

        Also notes when and from where the device was last seen, and, at the
        first use of a token issued by a refresh, revokes the refresh token
        that was used (spec: the old refresh token lives until the new access
        token is used).
        """
        token_hash = _token_hash(access_token)
        stored = self._access.get(token_hash.encode())
        if stored is None:
            raise unknown_token("Unknown access token.")
        session = json.loads(stored)
        owner = TokenOwner(session["user_id"], session["device_id"])
        now = self.clock()
        expires_ts = session.get("expires_ts")
        if expires_ts is not None and now >= expires_ts:
            raise unknown_token("The access token has expired; refresh it.", soft_logout=True)
        revokes = session.pop("revokes_refresh", None)
        if revokes is not None:
            with self._db.batch() as batch:
                self._revoke_refresh(batch, owner, revokes)
                batch.put(self._access, token_hash.encode(), json.dumps(session).encode())
        self._note_last_seen(owner, ip, user_agent, now)
        return owner

    def log_in(
        self, user_id: str, login: DeviceLogin, *, batch: WriteBatch | None = None
    ) -> Tokens:
        """New tokens for a (new or existing) device of `user_id`.

        An existing device keeps its display name and loses its old tokens
        (spec: tokens previously assigned to that device are invalidated).
        With `batch`, the writes join the caller's batch.
        """
        if batch is None:
            with self._db.batch() as own_batch:
                return self.log_in(user_id, login, batch=own_batch)
        device_id = login.device_id or self._generate_device_id(user_id)
        key = join_key(user_id, device_id)
        if self._metadata.get(key) is None:
            metadata = {"display_name": login.initial_display_name}
            batch.put(self._metadata, key, json.dumps(metadata).encode())
            self._record_device_list_change(batch, user_id, [device_id])
        else:
            self._revoke_device_tokens(batch, user_id, device_id)
        owner = TokenOwner(user_id, device_id)
        return self._issue(batch, owner, refreshable=login.refreshable, revokes_refresh=None)

    def refresh(self, refresh_token: str) -> Tokens:
        """New access and refresh tokens for the device `refresh_token` belongs to."""
        refresh_hash = _token_hash(refresh_token)
        stored = self._refresh.get(refresh_hash.encode())
        if stored is None:
            raise unknown_token("Unknown refresh token.")
        user_id, device_id = (part.decode() for part in stored.split(SEPARATOR, 1))
        owner = TokenOwner(user_id, device_id)
        current = self._device_tokens(user_id, device_id)
        with self._db.batch() as batch:
            if current.get("access"):
                batch.delete(self._access, current["access"].encode())
            if refresh_hash == current.get("refresh"):
                # The newest refresh token is in use: its predecessor is done for.
                if current.get("previous_refresh"):
                    batch.delete(self._refresh, current["previous_refresh"].encode())
            elif current.get("refresh"):
                # The client repeats a refresh whose answer it never got: the
                # tokens that answer carried were never used, so drop them.
                batch.delete(self._refresh, current["refresh"].encode())
            return self._issue(batch, owner, refreshable=True, revokes_refresh=refresh_hash)

    def _issue(
        self,
        batch: WriteBatch,
        owner: TokenOwner,
        *,
        refreshable: bool,
        revokes_refresh: str | None,
    ) -> Tokens:
        access_token = _new_token()
        session: dict[str, Any] = {"user_id": owner.user_id, "device_id": owner.device_id}
        tokens: dict[str, str | None] = {"access": _token_hash(access_token)}
        refresh_token = expires_in_ms = None
        if refreshable:
            refresh_token = _new_token()
            expires_in_ms = self.access_token_lifetime_ms
            session["expires_ts"] = self.clock() + expires_in_ms
            tokens["refresh"] = _token_hash(refresh_token)
            key = join_key(owner.user_id, owner.device_id)
            batch.put(self._refresh, tokens["refresh"].encode(), key)
            if revokes_refresh is not None:
                session["revokes_refresh"] = revokes_refresh
                tokens["previous_refresh"] = revokes_refresh
        batch.put(self._access, tokens["access"].encode(), json.dumps(session).encode())
        batch.put(
            self._tokens, join_key(owner.user_id, owner.device_id), json.dumps(tokens).encode()
        )
        return Tokens(owner.user_id, owner.device_id, access_token, refresh_token, expires_in_ms)

    def _device_tokens(self, user_id: str, device_id: str) -> dict[str, str | None]:
        stored = self._tokens.get(join_key(user_id, device_id))
        return {} if stored is None else json.loads(stored)

    def _revoke_refresh(self, batch: WriteBatch, owner: TokenOwner, refresh_hash: str) -> None:
        batch.delete(self._refresh, refresh_hash.encode())
        tokens = self._device_tokens(owner.user_id, owner.device_id)
        if tokens.get("previous_refresh") == refresh_hash:
            tokens["previous_refresh"] = None
            key = join_key(owner.user_id, owner.device_id)
            batch.put(self._tokens, key, json.dumps(tokens).encode())

    def _revoke_device_tokens(self, batch: WriteBatch, user_id: str, device_id: str) -> None:
        tokens = self._device_tokens(user_id, device_id)
        if tokens.get("access"):
            batch.delete(self._access, tokens["access"].encode())
        for kind in ("refresh", "previous_refresh"):
            if tokens.get(kind):
                batch.delete(self._refresh, tokens[kind].encode())
        batch.delete(self._tokens, join_key(user_id, device_id))

    def _note_last_seen(
        self, owner: TokenOwner, ip: str | None, user_agent: str | None, now: int
    ) -> None:
        key = join_key(owner.user_id, owner.device_id)
        stored = self._metadata.get(key)
        if stored is None:
            return
        metadata = json.loads(stored)
        last_seen_ts = metadata.get("last_seen_ts") or 0
        if user_agent is not None:
            user_agent = user_agent[:MAX_USER_AGENT_LENGTH]  # kept per device: bounded
        unchanged = (
            metadata.get("last_seen_ip") == ip
            and metadata.get("last_seen_user_agent") == user_agent
        )
        if unchanged and now - last_seen_ts < LAST_SEEN_PRECISION_MS:
            return
        metadata.update(last_seen_ip=ip, last_seen_ts=now, last_seen_user_agent=user_agent)
        self._metadata.put(key, json.dumps(metadata).encode())

    # ------------------------------------------------------------ changing devices

    def set_display_name(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        """Rename a device; False when the user has no such device."""
        key = join_key(user_id, device_id)
        stored = self._metadata.get(key)
        if stored is None:
            return False
        metadata = json.loads(stored)
        metadata["display_name"] = display_name
        with self._db.batch() as batch:
            batch.put(self._metadata, key, json.dumps(metadata).encode())
            self._record_device_list_change(batch, user_id, [device_id])
        return True

    def delete(
        self, user_id: str, device_ids: Iterable[str], *, batch: WriteBatch | None = None
    ) -> None:
        """Delete devices (those that exist) and every token they hold."""
        if batch is None:
            with self._db.batch() as own_batch:
                self.delete(user_id, device_ids, batch=own_batch)
                return
        deleted = []
        for device_id in dict.fromkeys(device_ids):
            key = join_key(user_id, device_id)
            if self._metadata.get(key) is None:
                continue
            self._revoke_device_tokens(batch, user_id, device_id)
            batch.delete(self._metadata, key)
            for hook in self.device_deleted:
                hook(batch, user_id, device_id)
            deleted.append(device_id)
        if deleted:
            self._record_device_list_change(batch, user_id, deleted)

    def delete_all(
        self,
        user_id: str,
        *,
        except_device_id: str | None = None,
        batch: WriteBatch | None = None,
    ) -> None:
        """Delete every device of `user_id` but `except_device_id`."""
        doomed = [d for d in self.device_ids(user_id) if d != except_device_id]
        self.delete(user_id, doomed, batch=batch)

    def _generate_device_id(self, user_id: str) -> str:
        while True:
            device_id = "".join(
                secrets.choice(_DEVICE_ID_ALPHABET) for _ in range(_GENERATED_DEVICE_ID_LENGTH)
            )
            if self._metadata.get(join_key(user_id, device_id)) is None:
                return device_id

    def _record_device_list_change(
        self, batch: WriteBatch, user_id: str, device_ids: list[str]
    ) -> None:
        for device_id in device_ids:
            for hook in self.device_list_changed:
                hook(batch, user_id, device_id)
        position = self._globals.next_count()
        previous = self._list_version.get(user_id.encode())
        if previous is not None:
            batch.delete(self._list_changes, join_key(previous, user_id))
        batch.put(self._list_version, user_id.encode(), u64(position))
        batch.put(self._list_changes, join_key(u64(position), user_id), b"")


def _device(device_id: str, metadata: dict[str, Any]) -> Device:
    return Device(
        device_id,
        metadata.get("display_name"),
        metadata.get("last_seen_ip"),
        metadata.get("last_seen_ts"),
        metadata.get("last_seen_user_agent"),
    )
