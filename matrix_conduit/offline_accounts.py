"""Account commands for the admin, run on the database while the server is stopped.

`matrix-conduit create-user NAME [--admin] [--password ...]` and
`matrix-conduit reset-password NAME [--password ...]`. Conduit makes an admin
turn registration on, restart, register, turn it off and restart again just
to get the first account; here the admin creates it directly. The database
allows one process at a time, so these refuse, saying so, while the service
runs. Without `--password` a random password is generated and printed.

Accounts created this way follow the same rules as registered ones
(`service/registration.py`): name grammar, lower-case, the first account
becomes admin, the display name.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from .config import Config
from .core.ids import UserId
from .errors import MatrixError
from .service import Services
from .storage import DatabaseError, DatabaseInUse, open_configured_database

GENERATED_PASSWORD_BYTES = 12


class OfflineCommandError(Exception):
    """The command cannot be done; the message tells the admin why."""


def generate_password() -> str:
    """A random password that never starts with `-`, so it can follow an option on a
    command line (`--login NAME PASSWORD`) without being taken for one."""
    while (password := secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)).startswith("-"):
        pass
    return password


@contextmanager
def offline_services(config: Config) -> Iterator[Services]:
    """The services over the configured database, which no server may have open."""
    try:
        db = open_configured_database(config)
    except DatabaseInUse:
        raise OfflineCommandError(
            f"the database at {config.database_path} is in use by the running server: "
            "stop the service first (systemctl stop matrix-conduit), then try again"
        ) from None
    except DatabaseError as error:
        raise OfflineCommandError(str(error)) from None
    with db:
        try:
            yield Services(config, db)
        except DatabaseError as error:
            raise OfflineCommandError(str(error)) from None


def _localpart(services: Services, name: str) -> str:
    """`alice` or `@alice:server_name` → `alice`; other servers' users are refused."""
    user_id = services.users.local_user_id(name)
    if user_id is None:
        raise OfflineCommandError(f"{name} is not a user id of {services.config.server_name}")
    return UserId.parse(user_id).localpart


def create_user(config: Config, name: str, *, password: str, admin: bool) -> tuple[str, bool]:
    """Create the account; its user id, and whether it is an admin (the first account is)."""
    with offline_services(config) as services:
        localpart = _localpart(services, name)
        try:
            registered = trio.run(
                functools.partial(
                    services.registration.register,
                    username=localpart,
                    password=password,
                    login=None,
                    admin=admin,
                )
            )
        except MatrixError as error:
            raise OfflineCommandError(f"{name}: {error.message}") from None
        return registered.user_id, services.users.is_admin(registered.user_id)


def reset_password(config: Config, name: str, *, password: str) -> str:
    """Give an existing, active account a new password; its user id.

    The account's devices stay logged in: resetting is for a user who forgot
    the password, not for one whose sessions must end.
    """
    with offline_services(config) as services:
        user_id = f"@{_localpart(services, name)}:{config.server_name}"
        users = services.users
        if not users.exists(user_id):
            raise OfflineCommandError(f"there is no user {user_id}")
        if users.is_deactivated(user_id):
            raise OfflineCommandError(f"{user_id} is deactivated and cannot log in again")
        if user_id == users.server_user_id:
            raise OfflineCommandError(
                f"{user_id} is the server's own user: its password is the "
                "emergency_password setting"
            )
        trio.run(
            functools.partial(
                users.set_password, user_id, password, log_out_devices=False, keep_device_id=None
            )
        )
        return user_id
