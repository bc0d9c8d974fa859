"""Logging to stderr, where journald (or the terminal) picks it up.

The `log` setting is a level (`warn`, `info`, `debug`...) or a comma list
mixing one bare level with `module=level` parts, as in Conduit
(`"warn,matrix_conduit.api=debug"`).
"""

from __future__ import annotations

import logging
import os
import re
import sys

from .config import parse_log_filter

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]


class OneLineFormatter(logging.Formatter):
    """Each record is one line: control characters in its message are escaped.

    Messages carry text from clients and other servers (a report's reason, a
    display name, a path). A newline in one would otherwise start a line of
    its own, and anyone could write a forged `ERROR ...` line into the log.
    Tracebacks, which are ours, keep their lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL_CHARACTERS.sub(_escape, super().formatMessage(record))


def setup_logging(spec: str) -> None:
    root_level, per_module = parse_log_filter(spec)
    # journald adds its own timestamps; a terminal wants them.
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(root_level)
    for module, level in per_module.items():
        logging.getLogger(module).setLevel(level)
