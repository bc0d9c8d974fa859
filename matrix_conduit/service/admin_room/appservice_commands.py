"""Admin room commands about application services (bridges).

`register-appservice` (the Synapse-style registration YAML in a code
block), `unregister-appservice ID`, `list-appservices`; the registry is
`service/appservices.py` (run-time registrations are kept in the database;
those of `app_service_config_files` can only be removed from the config).
"""

from __future__ import annotations

import argparse

from ..appservices import RegistrationError
from .parsing import Command, Reply
from .room import CommandContext, new_parser


async def register_appservice(context: CommandContext, args: argparse.Namespace) -> Reply:
    assert context.code_block is not None
    try:
        appservice = context.services.appservices.register(context.code_block)
    except RegistrationError as error:
        return Reply.with_code("The registration was refused:", "\n".join(error.problems))
    return Reply.text(f"Registered the appservice {appservice.id!r} (sender {appservice.sender}).")


async def unregister_appservice(context: CommandContext, args: argparse.Namespace) -> Reply:
    try:
        context.services.appservices.unregister(args.id)
    except RegistrationError as error:
        return Reply.text("Cannot unregister: " + "; ".join(error.problems))
    return Reply.text(f"Unregistered the appservice {args.id!r}.")


async def list_appservices(context: CommandContext, args: argparse.Namespace) -> Reply:
    registered = context.services.appservices.list()
    lines = [f"{a.id}  sender {a.sender}  url {a.url}  from {a.source}" for a in registered]
    return Reply.with_code(f"{len(registered)} appservices:", "\n".join(lines))


def commands() -> list[Command]:
    register = new_parser(
        "register-appservice",
        "Register an appservice from its registration YAML, in a code block below.",
    )
    unregister = new_parser("unregister-appservice", "Remove an appservice registered here.")
    unregister.add_argument("id", help="the `id` of its registration")
    listing = new_parser("list-appservices", "List the registered appservices.")
    return [
        Command(register, register_appservice, needs_code_block=True),
        Command(unregister, unregister_appservice),
        Command(listing, list_appservices),
    ]
