"""Logging to stderr, where journald (or the terminal) picks it up.

`FailureLog` keeps background tasks (senders, pushes, cleanup) from
flooding the log while a peer stays down.

The `log` setting is a level (`warn`, `info`, `debug`...) or a comma list
mixing one bare level with `module=level` parts, as in Conduit
(`"warn,matrix_conduit.api=debug"`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

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


SUMMARY_INTERVAL_SECONDS = 600.0
"""How often a failure that keeps happening is summarized (instead of logged each time)."""


class FailureLog:
    """Failures of background work logged once per key, then summarized while they last.

    A peer that stays down fails every retry: logging each one floods the log
    with the same line and hides everything else. The first failure of a key
    (a destination, a push gateway, a cleanup task) is logged at `level`
    (`warning`; `error` for our own code's failures) with its reason, repeats
    only as one summary line per `SUMMARY_INTERVAL_SECONDS` (how many, the
    last reason), and the recovery once at `info`.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        level: int = logging.WARNING,
        interval: float = SUMMARY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self._level = level
        self._interval = interval
        self._clock = clock
        self._failing: dict[str, _Failing] = {}

    def failed(self, key: str, reason: object, *, exc_info: bool = False) -> None:
        """Another failure of `key`: logged if it is the first, else counted."""
        now = self._clock()
        failing = self._failing.get(key)
        if failing is None:
            self._failing[key] = _Failing(since=now, last_summary=now)
            self._log.log(
                self._level,
                "%s %s failed: %s (repeats are summarized every %d s until it recovers)",
                self._what,
                key,
                reason,
                self._interval,
                exc_info=exc_info,
            )
            return
        failing.count += 1
        if now - failing.last_summary >= self._interval:
            self._log.log(
                self._level,
                "%s %s still failing: %d more failures in %d s, last: %s",
                self._what,
                key,
                failing.count,
                now - failing.last_summary,
                reason,
            )
            failing.count = 0
            failing.last_summary = now

    def recovered(self, key: str) -> None:
        """`key` worked again: said once, if it had failed."""
        failing = self._failing.pop(key, None)
        if failing is not None:
            self._log.info(
                "%s %s works again after %d s of failures",
                self._what,
                key,
                self._clock() - failing.since,
            )

    def failing(self) -> list[str]:
        """The keys failing now."""
        return list(self._failing)


@dataclass
class _Failing:
    since: float
    last_summary: float
    count: int = 0
