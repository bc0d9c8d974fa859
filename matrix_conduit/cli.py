"""The `matrix-conduit` command: run the server, and the admin's offline tools.

    matrix-conduit                      serve, configured by $CONDUIT_CONFIG
    matrix-conduit check-config [PATH]  print every problem of a config file
    matrix-conduit --version

Every failure an admin can cause (bad config, database in use, port taken)
ends with one clear message on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
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
    try:
        run(config)
    except StartupError as error:
        return _fail(str(error))
    return 0


def _check_config(arguments: argparse.Namespace) -> int:
    path = arguments.path
    try:
        if path is None:
            path = config_path_from_environment()
        config = load_config(path)
    except ConfigError as error:
        return _config_failure(error, path)
    print(f"{path or 'environment'}: OK (server_name = {config.server_name})")
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except KeyboardInterrupt:
        return 130
