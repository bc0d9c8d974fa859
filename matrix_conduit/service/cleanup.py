"""The periodic cleanup: expired data nobody will ask for again, every `cleanup_second_interval`.

Expired UIA sessions, `/create`d media ids whose upload never came, and
expired OpenID tokens are dropped when they are next read anyway; this task
makes sure that the ones nobody reads do not pile up in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from ..logs import FailureLog

log = logging.getLogger(__name__)


class Cleanup:
    def __init__(self, interval_seconds: float, tasks: Sequence[Callable[[], None]]) -> None:
        self._interval = interval_seconds
        self._tasks = list(tasks)
        self._failures = FailureLog(log, "cleanup task", level=logging.ERROR)

    def run_once(self) -> None:
        for task in self._tasks:
            name = str(getattr(task, "__qualname__", task))
            try:
                task()
            except Exception as error:  # one failing cleanup must not stop the others
                self._failures.failed(name, repr(error), exc_info=True)
            else:
                self._failures.recovered(name)

    async def run(self) -> None:
        while True:
            await trio.sleep(self._interval)
            self.run_once()
