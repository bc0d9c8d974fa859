"""Admin room commands: how a message becomes a command, and how answers look.

Conduit's admin room: a message whose first line starts with `!admin` or
the server user's id (`@conduit:<server_name>`, a colon after it allowed, as
a client's mention writes it) is a command line; a fenced code block below
it is the command's input (YAML, JSON, a list of users). Each command has an
argparse parser that never exits the process: bad arguments and `--help`
become the reply (usage text), never an exception that ends the handler.

Answers are `m.notice` messages with `body` (plain text) and
`format: org.matrix.custom.html` / `formatted_body` (spec: client-server
API, "m.room.message msgtypes", `m.notice` and "m.text" formatted bodies).
"""

from __future__ import annotations

import argparse
import html
import re
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .room import CommandContext

COMMAND_PREFIX = "!admin"
_CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)\n?```", re.DOTALL)


@dataclass(frozen=True)
class Reply:
    """One answer: the plain `body` and the HTML `formatted_body` of the same text."""

    plain: str
    html: str

    @staticmethod
    def text(message: str) -> Reply:
        return Reply(message, _paragraph(message))

    @staticmethod
    def with_code(message: str, code: str, language: str = "") -> Reply:
        """A message followed by a code block (JSON, YAML, a list)."""
        attribute = f' class="language-{language}"' if language else ""
        return Reply(
            f"{message}\n```{language}\n{code}\n```",
            f"{_paragraph(message)}<pre><code{attribute}>{html.escape(code)}</code></pre>",
        )


def _paragraph(message: str) -> str:
    return "<p>" + html.escape(message).replace("\n", "<br>") + "</p>"


class UsageError(Exception):
    """The command line does not parse; the message says why, with the usage."""


class HelpRequested(Exception):
    """`--help`: the text is the whole help of the command."""


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting (the server keeps running)."""

    def __init__(self, name: str, description: str) -> None:
        super().__init__(
            prog=f"{COMMAND_PREFIX} {name}",
            description=description,
            exit_on_error=False,
            allow_abbrev=False,
        )

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or self.format_usage())

    def print_help(self, file: Any = None) -> None:
        raise HelpRequested(self.format_help())

    def print_usage(self, file: Any = None) -> None:
        raise UsageError(self.format_usage())


Handler = Callable[["CommandContext", argparse.Namespace], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    """One admin command: its parser (which carries its help) and what it does."""

    parser: CommandParser
    handler: Handler
    needs_code_block: bool = False

    @property
    def name(self) -> str:
        return self.parser.prog.removeprefix(f"{COMMAND_PREFIX} ")

    @property
    def summary(self) -> str:
        return (self.parser.description or "").split("\n")[0]


@dataclass(frozen=True)
class CommandLine:
    """A message that is a command: its words and the code block below it (if any)."""

    words: Sequence[str]
    code_block: str | None


def command_line(body: str, server_user_id: str) -> CommandLine | None:
    """The command a message body holds; None when it is not addressed to the admin bot.

    UsageError when it is addressed to it but cannot be split into words
    (an unclosed quote).
    """
    first, _, rest = body.partition("\n")
    first = first.strip()
    for prefix in (COMMAND_PREFIX, server_user_id + ":", server_user_id):
        if first == prefix or first.startswith(prefix + " "):
            words_text = first[len(prefix) :]
            break
    else:
        return None
    try:
        words = shlex.split(words_text)
    except ValueError as error:
        raise UsageError(f"The command line does not split into words: {error}.") from None
    found = _CODE_BLOCK.search(rest)
    return CommandLine(words, found.group(1) if found else None)


def parse_duration_ms(text: str) -> int:
    """`30s`, `10m`, `2h`, `7d`, `1w` → milliseconds (argparse `type`)."""
    found = re.fullmatch(r"(\d+)\s*([smhdw])", text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: a number and s, m, h, d or w (e.g. 30d)"
        )
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found.group(2)]
    return int(found.group(1)) * unit * 1000
