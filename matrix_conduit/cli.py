"""The `matrix-conduit` command: run the server, and the admin's offline tools.

    matrix-conduit                      serve, configured by $CONDUIT_CONFIG
    matrix-conduit check-config [PATH]  print every problem of a config file
    matrix-conduit create-user NAME [--admin] [--password PASSWORD]
    matrix-conduit reset-password NAME [--password PASSWORD]
                                        manage accounts while the service is stopped
    matrix-conduit rotate-signing-key   sign with a new server key (service stopped)
    matrix-conduit backup DEST          copy database and media while the server runs
    matrix-conduit verify-backup PATH   open a backup, count it, check its server_name
    matrix-conduit migrate-db --from CONFIG_OR_PATH --to CONFIG_OR_URL
                                        copy the database to another backend (stopped)
    matrix-conduit --version

Every failure an admin can cause (bad config, database in use, port taken)
ends with one clear message on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .config import Config, ConfigError, config_path_from_environment, load_config


def _fail(message: str) -> int:
    print(f"matrix-conduit: {message}", file=sys.stderr)
    return 1


def _config_failure(error: ConfigError, path: str | None) -> int:
    where = f" in {path}" if path else ""
    lines = [f"configuration problems{where}:"]
    lines += [f"  - {problem}" for problem in error.problems]
    return _fail("\n".join(lines))


def _load_from_environment() -> tuple[Config | None, int]:
    try:
        path = config_path_from_environment()
        return load_config(path), 0
    except ConfigError as error:
        return None, _config_failure(error, None)


def _serve(_: argparse.Namespace) -> int:
    from .logs import setup_logging
    from .server import StartupError, run

    config, status = _load_from_environment()
    if config is None:
        return status
    setup_logging(config.log)
    from .config_checks import warnings

    for warning in warnings(config):
        logging.getLogger("matrix_conduit.config").warning("%s", warning)
    try:
        run(config)
    except StartupError as error:
        return _fail(str(error))
    return 0


class _Collected(logging.Handler):
    """The warnings `load_config` logs (unknown and misplaced keys), for check-config."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().removeprefix("config: "))


def _check_config(arguments: argparse.Namespace) -> int:
    from . import config_checks

    path = arguments.path
    collected = _Collected()
    config_logger = logging.getLogger("matrix_conduit")
    config_logger.addHandler(collected)
    previous_propagate, config_logger.propagate = config_logger.propagate, False
    try:
        if path is None:
            path = config_path_from_environment()
        config = load_config(path)
    except ConfigError as error:
        return _config_failure(error, path)
    finally:
        config_logger.removeHandler(collected)
        config_logger.propagate = previous_propagate
    where = path or "environment"
    for warning in collected.messages + config_checks.warnings(config):
        print(f"{where}: WARNING: {warning}", file=sys.stderr)
    refusals = config_checks.database_refusals(config)
    if refusals:
        return _fail(
            "\n".join(
                [f"serve would refuse to start ({where}):"]
                + [f"  - {refusal}" for refusal in refusals]
            )
        )
    print(f"{where}: OK (server_name = {config.server_name})")
    return 0


def _account_command(arguments: argparse.Namespace) -> int:
    from . import offline_accounts

    config, status = _load_from_environment()
    if config is None:
        return status
    generated = arguments.password is None
    password = offline_accounts.generate_password() if generated else arguments.password
    try:
        if arguments.command == "create-user":
            user_id, admin = offline_accounts.create_user(
                config, arguments.name, password=password, admin=arguments.admin
            )
            done = f"created {user_id}" + (" (server admin)" if admin else "")
        else:
            user_id = offline_accounts.reset_password(config, arguments.name, password=password)
            done = f"new password set for {user_id}"
    except offline_accounts.OfflineCommandError as error:
        return _fail(str(error))
    print(done + (f"; password: {password}" if generated else ""))
    return 0


def _rotate_signing_key(_: argparse.Namespace) -> int:
    from . import offline_accounts, offline_keys

    config, status = _load_from_environment()
    if config is None:
        return status
    try:
        old_key_id, new_key_id = offline_keys.rotate_signing_key(config)
    except offline_accounts.OfflineCommandError as error:
        return _fail(str(error))
    print(f"now signing with {new_key_id}; {old_key_id} stays published as an old key")
    return 0


def _backup(arguments: argparse.Namespace) -> int:
    from .backup import BackupError, backup

    config, status = _load_from_environment()
    if config is None:
        return status
    try:
        report = backup(config.database_path, config.storage_engine, arguments.destination)
    except BackupError as error:
        return _fail(str(error))
    print(report.summary())
    return 0


def _verify_backup(arguments: argparse.Namespace) -> int:
    from .backup import BackupError, verify

    config, status = _load_from_environment()
    if config is None:
        return status
    try:
        found = verify(arguments.path, config.server_name)
    except BackupError as error:
        return _fail(str(error))
    print(
        f"{found.path}: {found.backend} database of server_name {found.server_name}, "
        f"{len(found.trees)} trees, {sum(found.trees.values())} entries, "
        f"{found.events} events, {found.media_files} media files"
    )
    if found.problems:
        return _fail(
            "\n".join(["the backup cannot be used:"] + [f"  - {p}" for p in found.problems])
        )
    return 0


def _migrate_db(arguments: argparse.Namespace) -> int:
    from .migrate_db import MigrationError, migrate

    try:
        report = migrate(
            arguments.source,
            arguments.destination,
            progress_callback=lambda line: print(line, file=sys.stderr),
        )
    except MigrationError as error:
        return _fail(str(error))
    print(report.summary())
    if not report.ok:
        return _fail("verification failed: the trees marked DIFFERS do not match; run again")
    return 0


def _add_account_command(
    commands: argparse._SubParsersAction, name: str, help_text: str
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help_text)
    command.add_argument("name", help="localpart (alice) or user id (@alice:example.com)")
    command.add_argument(
        "--password",
        help="the password (default: generate one and print it); note that command "
        "lines are visible to other local users",
    )
    command.set_defaults(handler=_account_command, command=name)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matrix-conduit",
        description="An efficient Matrix homeserver that is easy to set up and just works. "
        "Without a command it runs the server, configured by the TOML file that "
        "$CONDUIT_CONFIG names (e.g. /etc/matrix-conduit/conduit.toml) and CONDUIT_* "
        "environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"matrix-conduit {__version__}")
    parser.set_defaults(handler=_serve)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (the default)")
    serve.set_defaults(handler=_serve)

    check = commands.add_parser(
        "check-config", help="validate a configuration file and print every problem"
    )
    check.add_argument("path", nargs="?", help="the file to check (default: $CONDUIT_CONFIG)")
    check.set_defaults(handler=_check_config)

    create_user = _add_account_command(
        commands, "create-user", "create an account (stop the service first)"
    )
    create_user.add_argument("--admin", action="store_true", help="make it a server admin")
    _add_account_command(
        commands, "reset-password", "set a new password for an account (stop the service first)"
    )
    rotate = commands.add_parser(
        "rotate-signing-key",
        help="sign with a new server key; the old one stays published (stop the service first)",
    )
    rotate.set_defaults(handler=_rotate_signing_key)
    backup = commands.add_parser(
        "backup", help="copy the database and media to a new directory (server may run)"
    )
    backup.add_argument("destination", help="a directory that does not exist yet, or is empty")
    backup.set_defaults(handler=_backup)
    verify = commands.add_parser(
        "verify-backup", help="open a backup, count it and check it fits this configuration"
    )
    verify.add_argument("path", help="the backup's directory")
    verify.set_defaults(handler=_verify_backup)
    migrate_db = commands.add_parser(
        "migrate-db",
        help="copy the database to another backend, resumably, and verify it (server stopped)",
    )
    migrate_db.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="CONFIG_OR_PATH",
        help="the server's config file, or its database directory (LevelDB or SQLite)",
    )
    migrate_db.add_argument(
        "--to",
        dest="destination",
        required=True,
        metavar="CONFIG_OR_URL",
        help="the new config file (its backend, database_path, database_url), "
        "or a postgresql:// URL",
    )
    migrate_db.set_defaults(handler=_migrate_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except KeyboardInterrupt:
        return 130
