"""Logging in with a JSON Web Token signed by a service the admin trusts.

Spec: `content/client-server-api/_index.md`, "Login" (`m.login.token`: the
token encodes the user; an invalid token is 403 `M_FORBIDDEN`). The token
format is Conduit's: an HS256 JWT signed with `jwt_secret`, whose `sub` is the
user's localpart, accepted under the login types `org.matrix.login.jwt` and
`m.login.token`. As in Conduit, an `exp` claim is required and checked, so a
leaked token stops working.

Unlike Conduit, which hands out a device for a user that may not exist, a
valid token for an unknown localpart creates that account (without a
password): the token's issuer is trusted to vouch for its users, as in
Synapse's JWT login.
"""

from __future__ import annotations

from ..config import Config
from ..core.ids import is_valid_localpart
from ..errors import MatrixError, forbidden
from .registration import Registration
from .users import Users

LOGIN_TYPES = ("org.matrix.login.jwt", "m.login.token")


class JwtLogin:
    def __init__(self, config: Config, users: Users, registration: Registration) -> None:
        self._secret = config.jwt_secret
        self._users = users
        self._registration = registration

    @property
    def enabled(self) -> bool:
        return self._secret is not None

    async def user_id_for(self, token: object) -> str:
        """The local user the token is for (created if new), or the spec's error."""
        if self._secret is None:
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "Token login is not enabled on this server (no jwt_secret is configured).",
            )
        if not isinstance(token, str):
            raise forbidden("The login token must be a string.")
        import jwt  # at the first JWT login: PyJWT pulls in cryptography's backends (~9 MiB)

        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
        except jwt.InvalidTokenError as error:
            raise forbidden(f"Invalid login token: {error}.") from None
        localpart = claims["sub"].lower() if isinstance(claims["sub"], str) else None
        if not is_valid_localpart(localpart):
            raise forbidden("The login token's `sub` is not a valid localpart.")
        user_id = f"@{localpart}:{self._users.server_name}"
        if not self._users.exists(user_id):
            await self._registration.register(username=localpart, password=None, login=None)
        return user_id
