"""Who may register, under which name, and creating the account (logged in or not).

Spec: `data/api/client-server/registration.yaml` (`POST /register`,
`GET /register/available`), `registration_tokens.yaml`,
`content/client-server-api/_index.md` "Token-authenticated registration",
the Guest Access module, and `content/appendices.md` "User Identifiers"
(new localparts: `a-z 0-9 . _ = - / +`; the server downcases the requested
name, so `@Alice` registers `@alice`).

Policy, as Conduit's configuration describes it: with `allow_registration`
off nobody registers (403); on, `registration_token` set, the
`m.login.registration_token` stage is required (followed by `m.login.dummy`,
the flow Synapse offers and clients such as matrix-nio complete); on without
a token, the `m.login.dummy` stage is enough. Guest accounts exist only on
open servers (on and no token), since a guest account would otherwise get
around the token. The admin can always create accounts offline (`matrix-conduit
create-user`), whatever the policy.

Besides the configured token, the tokens a server admin manages through the
admin API (`registration_tokens.py`: multi-use, expiring) pass the token
stage; `registration_requires_token` asks for the stage without a configured
token, so that only those tokens open registration.

Application services (`service/appservices.py`) register with their
`as_token` whatever the policy, but only names in their user namespaces;
everybody else gets 400 `M_EXCLUSIVE` for a name in an exclusive namespace
(spec: application-service-api.md, "Server admin style permissions").
"""

from __future__ import annotations

import hmac
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..core.ids import is_valid_localpart, is_valid_user_id
from ..errors import MatrixError, forbidden
from ..storage import Database
from .appservices import AppService, AppServices
from .devices import DeviceLogin, Devices, Tokens
from .passwords import PasswordHashing
from .registration_tokens import RegistrationTokens
from .users import Users

REGISTRATION_DISABLED = (
    "Registration is disabled on this server; ask its admin to create an account for you."
)
_GENERATED_LOCALPART_ALPHABET = string.ascii_lowercase + string.digits
_GENERATED_LOCALPART_LENGTH = 12


@dataclass(frozen=True)
class Registered:
    user_id: str
    tokens: Tokens | None
    """None when the client asked for `inhibit_login`."""


class Registration:
    def __init__(
        self,
        db: Database,
        config: Config,
        users: Users,
        devices: Devices,
        passwords: PasswordHashing,
    ) -> None:
        self._db = db
        self._allow_registration = config.allow_registration
        self._registration_token = config.registration_token
        self._token_required = (
            config.registration_token is not None or config.registration_requires_token
        )
        self.registration_tokens: RegistrationTokens | None = None
        """Set by the wiring: the tokens an admin manages, valid beside the configured one."""
        self._users = users
        self._devices = devices
        self._passwords = passwords
        self.registered: list[Callable[[str], None]] = []
        """Called with the new user id once the account is written (e.g. default push rules)."""
        self.appservices: AppServices | None = None
        """Set by the wiring: whose exclusive namespaces names must stay out of."""

    @property
    def allow_registration(self) -> bool:
        """Whether anyone may register; the admin room's `allow-registration` changes it
        until the next start, when `allow_registration` of the config applies again."""
        return self._allow_registration

    @allow_registration.setter
    def allow_registration(self, allowed: bool) -> None:
        self._allow_registration = allowed

    def check_allowed(self, *, guest: bool) -> None:
        """403 unless this kind of account may register here."""
        if not self._allow_registration:
            raise forbidden(REGISTRATION_DISABLED)
        if guest and self._token_required:
            raise forbidden("Guest accounts are not available on this server.")

    def flows(self) -> list[list[str]]:
        """The user-interactive auth flows of `POST /register`."""
        if self._token_required:
            return [["m.login.registration_token", "m.login.dummy"]]
        return [["m.login.dummy"]]

    def token_is_valid(self, token: object) -> bool:
        """Whether `token` is this server's registration token (compared in constant time)
        or a valid one of those the admin manages."""
        if not self._allow_registration:
            raise forbidden(REGISTRATION_DISABLED)
        if not isinstance(token, str):
            return False
        managed = self.registration_tokens
        if managed is not None and managed.is_valid(token):
            return True
        expected = self._registration_token
        return expected is not None and hmac.compare_digest(token.encode(), expected.encode())

    def available_user_id(self, username: object, *, appservice: AppService | None = None) -> str:
        """The user id `username` would register, or `M_INVALID_USERNAME`/`M_USER_IN_USE`,
        or `M_EXCLUSIVE` (an appservice's namespace, or, for `appservice`, outside its own)."""
        if not isinstance(username, str):
            raise _invalid_username("The username must be a string.")
        localpart = username.lower()
        if not is_valid_localpart(localpart):
            raise _invalid_username(
                "A username may only contain the letters a-z, digits and the characters "
                "'.', '_', '=', '-', '/' and '+'."
            )
        user_id = f"@{localpart}:{self._users.server_name}"
        if not is_valid_user_id(user_id, historical=False):
            raise _invalid_username("The username is too long (user ids have at most 255 bytes).")
        self._check_namespace(user_id, appservice)
        self._check_free(user_id)
        return user_id

    def _check_namespace(self, user_id: str, appservice: AppService | None) -> None:
        if appservice is not None:
            if not appservice.owns_user(user_id):
                raise MatrixError(
                    400,
                    "M_EXCLUSIVE",
                    f"{user_id} is outside the user namespaces of appservice {appservice.id!r}.",
                )
            return
        owner = self.appservices.exclusive_owner_of_user(user_id) if self.appservices else None
        if owner is not None:
            raise MatrixError(
                400, "M_EXCLUSIVE", f"{user_id} is reserved by the appservice {owner.id!r}."
            )

    def create_appservice_user(self, user_id: str) -> None:
        """An appservice's sender account, made (password-less) if it does not exist."""
        if self._users.exists(user_id):
            return
        with self._db.batch() as batch:
            self._users.write_new_account(batch, user_id, "", appservice=True)
        for callback in self.registered:
            callback(user_id)

    async def register(
        self,
        *,
        username: str | None,
        password: str | None,
        guest: bool = False,
        login: DeviceLogin | None,
        admin: bool = False,
        appservice: AppService | None = None,
        uia_session: str | None = None,
    ) -> Registered:
        """Create the account and, unless `login` is None, its first device and tokens.

        With `appservice`, a name in its user namespaces (required), no password.
        `uia_session`: the user-interactive auth session that allowed it, whose
        registration token use (if any) is counted as completed in the same batch.
        """
        if username is None:
            if appservice is not None:
                raise MatrixError(400, "M_MISSING_PARAM", "An appservice must name the user.")
            user_id = self._generated_user_id()
        else:
            user_id = self.available_user_id(username, appservice=appservice)
        password_hash = await self._passwords.hash(password) if password else ""
        # From here on no `await`: the name check and the write are one step.
        self._check_free(user_id)
        with self._db.batch() as batch:
            self._users.write_new_account(
                batch,
                user_id,
                password_hash,
                guest=guest,
                admin=admin,
                appservice=appservice is not None,
            )
            if self.registration_tokens is not None:
                self.registration_tokens.complete(uia_session, batch)
            tokens = None if login is None else self._devices.log_in(user_id, login, batch=batch)
        for callback in self.registered:
            callback(user_id)
        return Registered(user_id, tokens)

    async def upgrade_guest(
        self,
        *,
        guest_access_token: str,
        username: str | None,
        password: str | None,
        login: DeviceLogin | None,
        uia_session: str | None = None,
    ) -> Registered:
        """Make the guest whose token this is a full account: same user id, same rooms.

        Spec: Guest Access — the client registers as usual with
        `guest_access_token` and `username` set to the guest's localpart (a
        missing `username` means the same: Synapse takes it so). Another
        name is 400 `M_INVALID_PARAM`; a token of a full account 400 too.
        """
        owner = self._devices.owner_of_access_token(guest_access_token)
        user_id = owner.user_id
        if not self._users.is_guest(user_id):
            raise MatrixError(
                400, "M_INVALID_PARAM", "guest_access_token must be the token of a guest account."
            )
        if username is not None and f"@{username.lower()}:{self._users.server_name}" != user_id:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"Upgrading guest {user_id}: username must be its localpart or left out.",
            )
        password_hash = await self._passwords.hash(password) if password else ""
        if not self._users.is_guest(user_id):  # upgraded by another request meanwhile
            raise MatrixError(400, "M_USER_IN_USE", "This guest account was already upgraded.")
        with self._db.batch() as batch:
            self._users.upgrade_guest(batch, user_id, password_hash)
            if self.registration_tokens is not None:  # `uia_session` as for `register`
                self.registration_tokens.complete(uia_session, batch)
            tokens = None if login is None else self._devices.log_in(user_id, login, batch=batch)
        # No `registered` callbacks: the account exists (its push rules, which the
        # guest may have edited, stay).
        return Registered(user_id, tokens)

    def _check_free(self, user_id: str) -> None:
        if self._users.exists(user_id):
            raise MatrixError(400, "M_USER_IN_USE", "This user id is already taken.")

    def _generated_user_id(self) -> str:
        while True:
            localpart = "".join(
                secrets.choice(_GENERATED_LOCALPART_ALPHABET)
                for _ in range(_GENERATED_LOCALPART_LENGTH)
            )
            user_id = f"@{localpart}:{self._users.server_name}"
            if not self._users.exists(user_id):
                return user_id


def _invalid_username(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", message)
