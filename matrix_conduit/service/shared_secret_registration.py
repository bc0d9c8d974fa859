"""Registration with the server's shared secret: what `register_new_matrix_user` does.

Synapse's admin API "Shared-Secret Registration" (`/_synapse/admin/v1/
register`), which scripts and the `register_new_matrix_user` tool use to make
accounts (admins included) whatever the registration policy:

1. `GET` hands out a nonce (valid `NONCE_LIFETIME_S` seconds, once);
2. `POST` sends `nonce`, `username`, `password`, `admin` and `mac`: the hex
   HMAC-SHA1, keyed with the secret, of `nonce NUL username NUL password NUL
   ("admin" | "notadmin")`, then `NUL user_type` when a user type is given.

The secret is `registration_shared_secret` (or the contents of the file
`registration_shared_secret_path` names); without one the endpoint refuses
(400, as Synapse does). A wrong mac is 403 `M_FORBIDDEN`; the nonce is spent
either way, so a guess costs a new nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable

from ..errors import MatrixError, bad_json, forbidden, invalid_param
from .devices import DeviceLogin
from .registration import Registered, Registration
from .users import Users

log = logging.getLogger(__name__)

NONCE_LIFETIME_S = 60
MAX_NONCES = 10_000
"""Nonces kept at most (the oldest go first), so that a flood of `GET`s holds no more memory."""
MAX_FIELD_LENGTH = 512
USER_TYPES = ("bot", "support")
"""The user types Synapse knows; accepted in the mac, not stored (this server has none)."""


def shared_secret_mac(
    secret: str, nonce: str, username: str, password: str, *, admin: bool, user_type: str | None
) -> str:
    """The hex HMAC-SHA1 the client must send (Synapse's construction, byte for byte)."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(nonce.encode())
    mac.update(b"\x00")
    mac.update(username.encode())
    mac.update(b"\x00")
    mac.update(password.encode())
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00")
        mac.update(user_type.encode())
    return mac.hexdigest()


class SharedSecretRegistration:
    def __init__(
        self,
        secret: str | None,
        registration: Registration,
        users: Users,
        *,
        monotonic: Callable[[], float],
    ) -> None:
        self._secret = secret
        self._registration = registration
        self._users = users
        self._monotonic = monotonic
        self._nonces: dict[str, float] = {}
        """Nonces handed out and not spent, with when they were made."""

    @property
    def enabled(self) -> bool:
        return self._secret is not None

    def new_nonce(self) -> str:
        self._forget_old_nonces()
        nonce = secrets.token_hex(64)
        self._nonces[nonce] = self._monotonic()
        while len(self._nonces) > MAX_NONCES:
            del self._nonces[next(iter(self._nonces))]
        return nonce

    async def register(self, body: dict) -> Registered:
        """Check the request as Synapse does, in its order; the new account, logged in."""
        self._forget_old_nonces()
        if self._secret is None:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled.")
        nonce = body.get("nonce")
        if nonce is None:
            raise bad_json("nonce must be specified.")
        if not isinstance(nonce, str) or self._nonces.pop(nonce, None) is None:
            raise invalid_param(
                "Unrecognised nonce (a nonce is good for one try within 60 seconds)."
            )
        username = _text_field(body, "username")
        password = _text_field(body, "password")
        admin = body.get("admin")
        user_type = body.get("user_type")
        if user_type is not None and user_type not in USER_TYPES:
            raise invalid_param(f"Invalid user type (one of {', '.join(USER_TYPES)}).")
        displayname = body.get("displayname")
        if displayname is not None and not isinstance(displayname, str):
            raise bad_json("displayname must be a string.")
        got_mac = body.get("mac")
        if got_mac is None:
            raise bad_json("mac must be specified.")
        want_mac = shared_secret_mac(
            self._secret, nonce, username, password, admin=bool(admin), user_type=user_type
        )
        if not isinstance(got_mac, str) or not hmac.compare_digest(
            want_mac.encode(), got_mac.encode("utf-8", "replace")
        ):
            raise forbidden("HMAC incorrect.")
        registered = await self._registration.register(
            username=username, password=password, login=DeviceLogin(), admin=bool(admin)
        )
        if displayname:
            await self._users.set_displayname(registered.user_id, displayname)
        log.info("registered %s with the shared secret (admin: %s)", registered.user_id, admin)
        return registered

    def _forget_old_nonces(self) -> None:
        oldest = self._monotonic() - NONCE_LIFETIME_S
        for nonce, made in list(self._nonces.items()):
            if made < oldest:
                del self._nonces[nonce]


def _text_field(body: dict, name: str) -> str:
    """`username`/`password`: required, a string of at most 512 characters without NUL."""
    if name not in body:
        raise bad_json(f"{name} must be specified.")
    value = body[name]
    if not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH or "\x00" in value:
        raise invalid_param(
            f"Invalid {name}: a string of at most {MAX_FIELD_LENGTH} characters, without NUL."
        )
    return value
