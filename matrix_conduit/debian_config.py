"""What the Debian package's maintainer scripts run to read and write conduit.toml.

debconf asks three questions (server name, bind address, port); the file
/etc/matrix-conduit/conduit.toml stays the source of truth. The `config`
script seeds debconf from the file (`get`), checks the answers (`check`), and
`postinst` writes them (`write`): on a first install from the example config,
so every key is there with its comment; afterwards by changing only those
three keys with tomlkit, keeping everything else the admin wrote, and not
touching the file at all when nothing changed.

Answers are checked by the server's own configuration loader on the file as
it would be written, so the package never carries a second copy of the
grammar of server names or ports.

    python -m matrix_conduit.debian_config get CONFIG KEY
    python -m matrix_conduit.debian_config check --template EXAMPLE CONFIG NAME ADDRESS PORT
    python -m matrix_conduit.debian_config write --template EXAMPLE [--owner root:conduit]
                                                 CONFIG NAME ADDRESS PORT
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import tomlkit
import tomlkit.exceptions

from .config import ConfigError, load_config

NEW_FILE_MODE = 0o640


@dataclass(frozen=True)
class Answers:
    """The debconf answers, as typed (debconf knows only strings)."""

    server_name: str
    address: str
    port: str

    def toml_values(self) -> dict[str, object]:
        """The answers as TOML values; a port that is not a number stays text
        so that the loader reports it as a wrong type."""
        port = self.port.strip()
        return {
            "server_name": self.server_name.strip(),
            "address": self.address.strip(),
            "port": int(port) if port.isascii() and port.isdigit() else port,
        }


@dataclass(frozen=True)
class Candidate:
    """The file as it would be written, and as it is now (None: no file yet)."""

    text: str
    current: str | None


class UnreadableConfig(Exception):
    """The existing config file is not TOML tomlkit can edit."""


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except FileNotFoundError:
        return None


def _parse(text: str, path: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as error:
        raise UnreadableConfig(f"{path} is not valid TOML ({error})") from None


def current_value(config_path: str, key: str) -> str:
    """`[global].key` of the existing file as debconf text; "" when there is none."""
    text = _read(config_path)
    if text is None:
        return ""
    global_table = _parse(text, config_path).get("global", {})
    value = global_table.get(key) if isinstance(global_table, dict) else None
    return "" if value is None else str(value)


def candidate(config_path: str, template_path: str, answers: Answers) -> Candidate:
    """The existing file (or the example config) with the answers put in."""
    current = _read(config_path)
    if current is None:
        base = _read(template_path)
        if base is None:
            raise FileNotFoundError(f"example config {template_path} is missing")
        document = _parse(base, template_path)
    else:
        document = _parse(current, config_path)
    if "global" not in document:
        document["global"] = tomlkit.table()
    global_table = document["global"]
    for key, value in answers.toml_values().items():
        # Assigning an equal value would still re-render it (6_167 -> 6167).
        if global_table.get(key) != value:
            global_table[key] = value
    return Candidate(tomlkit.dumps(document), current)


def _problems_of(text: str) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "conduit.toml")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        try:
            load_config(path, environ={})
        except ConfigError as error:
            return error.problems
    return []


def new_problems(change: Candidate) -> list[str]:
    """The problems the answers bring. Mistakes already in the admin's file are
    not theirs: the server reports those itself, and an upgrade must not fail
    over them."""
    before = set() if change.current is None else set(_problems_of(change.current))
    return [problem for problem in _problems_of(change.text) if problem not in before]


def _replace(path: str, text: str, uid: int, gid: int, mode: int) -> None:
    """Write `text` to `path` atomically: a reader sees the old or the new file."""
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or "."
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchown(file.fileno(), uid, gid)
            os.fchmod(file.fileno(), mode)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _owner_ids(owner: str) -> tuple[int, int]:
    user, _, group = owner.partition(":")
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group or user).gr_gid


def write(change: Candidate, config_path: str, owner: str) -> bool:
    """Put the candidate in place; False when the file already says the same.

    A new file gets `owner` ("user:group") and mode 0640; an existing one
    keeps its owner and mode, whatever the admin set.
    """
    if change.text == change.current:
        return False
    if change.current is None:
        uid, gid = _owner_ids(owner)
        mode = NEW_FILE_MODE
    else:
        status = os.stat(config_path)
        uid, gid, mode = status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)
    _replace(config_path, change.text, uid, gid, mode)
    return True


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m matrix_conduit.debian_config",
        description="Read and write conduit.toml for the Debian package's debconf questions.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get", help="print [global].KEY of an existing config file")
    get.add_argument("config")
    get.add_argument("key")
    for name, text in (
        ("check", "print the problems the answers would cause, on one line; exit 1 if any"),
        ("write", "put the answers into the config file, creating it from the example"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--template", required=True, help="the example config")
        if name == "write":
            command.add_argument("--owner", default="root:conduit", help="USER:GROUP of a new file")
        command.add_argument("config")
        command.add_argument("server_name")
        command.add_argument("address")
        command.add_argument("port")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _build_parser().parse_args(argv)
    try:
        if arguments.command == "get":
            print(current_value(arguments.config, arguments.key))
            return 0
        answers = Answers(arguments.server_name, arguments.address, arguments.port)
        change = candidate(arguments.config, arguments.template, answers)
        problems = new_problems(change)
        if arguments.command == "check":
            if problems:
                print("; ".join(problems))
            return 1 if problems else 0
        if problems:
            print(
                f"matrix-conduit: not writing {arguments.config}: " + "; ".join(problems),
                file=sys.stderr,
            )
            return 1
        write(change, arguments.config, arguments.owner)
        return 0
    except UnreadableConfig as error:
        # The admin's file, broken by hand: leave it as it is (the server
        # reports it at start) rather than fail an upgrade over it.
        print(f"matrix-conduit: warning: {error}; its settings are left unchanged", file=sys.stderr)
        return 0
    except FileNotFoundError as error:
        print(f"matrix-conduit: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
