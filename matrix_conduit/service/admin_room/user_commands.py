"""Admin room commands about local accounts (Conduit's user commands).

`list-local-users`, `create-user`, `deactivate-user`, `deactivate-all`,
`reset-password`, `make-user-admin`. A deactivated account leaves every
room, declines its invites and withdraws its knocks (`Users.deactivate`
announces it to the rooms service): this server never keeps a deactivated
account in rooms, so `--leave-rooms` (Conduit's flag) only makes the reply
list the rooms left.
"""

from __future__ import annotations

import argparse
import secrets

from ...errors import MatrixError
from .parsing import Command, Reply
from .room import CommandContext, new_parser

GENERATED_PASSWORD_BYTES = 18


def _local_user(context: CommandContext, name: str) -> str:
    """`@name:server` for NAME or a full id; MatrixError for another server's or none."""
    users = context.services.users
    user_id = users.local_user_id(name)
    if user_id is None:
        raise MatrixError(400, "M_INVALID_PARAM", f"{name!r} is not a user id of this server.")
    if not users.exists(user_id):
        raise MatrixError(404, "M_NOT_FOUND", f"There is no account {user_id}.")
    return user_id


def _generated_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


async def list_local_users(context: CommandContext, args: argparse.Namespace) -> Reply:
    users = context.services.users
    lines = []
    for user_id in sorted(users.local_user_ids()):
        flags = [
            flag
            for flag, present in (
                ("admin", users.is_admin(user_id)),
                ("guest", users.is_guest(user_id)),
                ("deactivated", users.is_deactivated(user_id)),
                ("server user", user_id == users.server_user_id),
            )
            if present
        ]
        if users.is_deactivated(user_id) and not args.deactivated:
            continue
        lines.append(user_id + (f" ({', '.join(flags)})" if flags else ""))
    return Reply.with_code(f"{len(lines)} local users:", "\n".join(lines))


async def create_user(context: CommandContext, args: argparse.Namespace) -> Reply:
    services = context.services
    password = args.password or _generated_password()
    registered = await services.registration.register(
        username=args.username, password=password, login=None, admin=args.admin
    )
    user_id = registered.user_id
    admin = services.users.is_admin(user_id)
    if admin:
        await context.admin_room.add_admin(user_id)
    made = f"Created {user_id}" + (" (server admin, invited to this room)" if admin else "")
    if args.password:
        return Reply.text(made + ".")
    return Reply.with_code(made + " with the password:", password)


async def _deactivate(context: CommandContext, user_id: str) -> list[str]:
    """Deactivate; the rooms the account was in (joined, invited, knocking)."""
    services = context.services
    state_cache = services.rooms.state_cache
    rooms = sorted(
        {
            *state_cache.joined_rooms(user_id),
            *(room_id for room_id, _ in state_cache.invited_rooms(user_id)),
        }
    )
    await services.users.deactivate(user_id)
    return rooms


async def deactivate_user(context: CommandContext, args: argparse.Namespace) -> Reply:
    user_id = _local_user(context, args.user)
    if context.services.users.is_deactivated(user_id):
        return Reply.text(f"{user_id} is deactivated already.")
    if user_id == context.sender:
        return Reply.text("You cannot deactivate yourself from the admin room.")
    rooms = await _deactivate(context, user_id)
    done = f"Deactivated {user_id}; it left {len(rooms)} rooms"
    if args.leave_rooms and rooms:
        return Reply.with_code(done + ":", "\n".join(rooms))
    return Reply.text(done + ".")


async def deactivate_all(context: CommandContext, args: argparse.Namespace) -> Reply:
    assert context.code_block is not None
    users = context.services.users
    names = [line.strip() for line in context.code_block.splitlines() if line.strip()]
    if not names:
        return Reply.text("The code block lists no users (one user id a line).")
    done, skipped = [], []
    for name in names:
        user_id = users.local_user_id(name)
        if user_id is None or not users.exists(user_id):
            skipped.append(f"{name}: no such local account")
        elif users.is_deactivated(user_id):
            skipped.append(f"{user_id}: deactivated already")
        elif user_id in (users.server_user_id, context.sender):
            skipped.append(f"{user_id}: cannot be deactivated from here")
        elif users.is_admin(user_id) and not args.force:
            skipped.append(f"{user_id}: an admin (use --force)")
        else:
            rooms = await _deactivate(context, user_id)
            done.append(f"{user_id}" + (f" (left {len(rooms)} rooms)" if args.leave_rooms else ""))
    report = [f"deactivated: {line}" for line in done] + [f"skipped: {line}" for line in skipped]
    return Reply.with_code(f"Deactivated {len(done)} of {len(names)} accounts.", "\n".join(report))


async def reset_password(context: CommandContext, args: argparse.Namespace) -> Reply:
    user_id = _local_user(context, args.user)
    users = context.services.users
    if users.is_deactivated(user_id) or user_id == users.server_user_id:
        return Reply.text(
            f"{user_id} cannot get a password here"
            + (" (deactivated)." if users.is_deactivated(user_id) else " (emergency_password).")
        )
    password = args.password or _generated_password()
    await users.set_password(user_id, password, log_out_devices=True, keep_device_id=None)
    done = f"The password of {user_id} is reset; its devices are logged out"
    if args.password:
        return Reply.text(done + ".")
    return Reply.with_code(done + ". The new password:", password)


async def make_user_admin(context: CommandContext, args: argparse.Namespace) -> Reply:
    user_id = _local_user(context, args.user)
    users = context.services.users
    if users.is_deactivated(user_id) or users.is_guest(user_id):
        return Reply.text(f"{user_id} cannot be an admin (deactivated or a guest).")
    users.set_admin(user_id, True)
    await context.admin_room.add_admin(user_id)
    return Reply.text(f"{user_id} is a server admin now, invited to this room with power 100.")


def commands() -> list[Command]:
    listing = new_parser("list-local-users", "List the accounts of this server.")
    listing.add_argument("--deactivated", action="store_true", help="include deactivated accounts")

    create = new_parser("create-user", "Create an account (a password is generated if none).")
    create.add_argument("username", help="the localpart of the new user id")
    create.add_argument("--password", help="its password (default: a random one, shown)")
    create.add_argument("--admin", action="store_true", help="make it a server admin")

    deactivate = new_parser(
        "deactivate-user",
        "Deactivate an account for good (it leaves its rooms; its name stays taken).",
    )
    deactivate.add_argument("user", help="user id or localpart")
    deactivate.add_argument(
        "--leave-rooms", action="store_true", help="list the rooms it left in the reply"
    )

    deactivate_many = new_parser(
        "deactivate-all",
        "Deactivate the accounts listed in a code block (one a line; admins need --force).",
    )
    deactivate_many.add_argument("--leave-rooms", action="store_true", help="count rooms left")
    deactivate_many.add_argument("--force", action="store_true", help="deactivate admins too")

    reset = new_parser("reset-password", "Give an account a new password and log out its devices.")
    reset.add_argument("user", help="user id or localpart")
    reset.add_argument("--password", help="the new password (default: a random one, shown)")

    make_admin = new_parser(
        "make-user-admin", "Make an account a server admin and invite it to this room."
    )
    make_admin.add_argument("user", help="user id or localpart")

    return [
        Command(listing, list_local_users),
        Command(create, create_user),
        Command(deactivate, deactivate_user),
        Command(deactivate_many, deactivate_all, needs_code_block=True),
        Command(reset, reset_password),
        Command(make_admin, make_user_admin),
    ]
