"""Per-destination backoff: after a server fails us, leave it alone for a while.

Spec: `content/server-server-api.md` says nothing normative; this follows
what the mature servers do (`../shared/notes/federation-lessons.md`):
Synapse persists backoff per destination and clears it as soon as the remote
contacts us. Here the first failure waits `MIN_BACKOFF_MS`, each further one
doubles it up to `MAX_BACKOFF_MS`, and any answer from the server or any
authenticated request from it resets it. It is stored, so a restart does
not send a burst of doomed requests to every server that was down.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from ...storage import Database
from ..clock import Clock, now_ms

TREES = ("servername_backoff",)

MIN_BACKOFF_MS = 60_000
MAX_BACKOFF_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often a destination failed in a row, and when it may be tried again."""

    failures: int
    retry_at_ms: int


class Destinations:
    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._tree = db.tree("servername_backoff")
        self._clock = clock
        self._backoffs: dict[str, Backoff] = {
            key.decode(): Backoff(**json.loads(value)) for key, value in self._tree.iter_prefix()
        }
        """A mirror of the tree: `contacted_by` runs on every incoming request."""
        self.reset: list[Callable[[str], None]] = []
        """Called with a destination whose backoff was just cleared: it is up again, so
        whatever waits for it (the federation sender's queue) can go now."""

    def backoff(self, server_name: str) -> Backoff | None:
        """The backoff of `server_name`, or None if it is not backed off."""
        return self._backoffs.get(server_name)

    def retry_at_ms(self, server_name: str) -> int | None:
        """When `server_name` may be tried again, if that is still in the future."""
        backoff = self._backoffs.get(server_name)
        if backoff is None or backoff.retry_at_ms <= self._clock():
            return None
        return backoff.retry_at_ms

    def record_failure(self, server_name: str) -> Backoff:
        """`server_name` did not answer (or answered 5xx): back off further."""
        previous = self._backoffs.get(server_name)
        failures = previous.failures + 1 if previous else 1
        wait_ms = min(MIN_BACKOFF_MS << min(failures - 1, 32), MAX_BACKOFF_MS)
        backoff = Backoff(failures=failures, retry_at_ms=self._clock() + wait_ms)
        record = {"failures": backoff.failures, "retry_at_ms": backoff.retry_at_ms}
        self._tree.put(server_name.encode(), json.dumps(record).encode())
        self._backoffs[server_name] = backoff
        return backoff

    def record_success(self, server_name: str) -> None:
        """`server_name` answered us, or contacted us: it is up, forget its backoff."""
        if self._backoffs.pop(server_name, None) is not None:
            self._tree.delete(server_name.encode())
            for listener in self.reset:
                listener(server_name)
