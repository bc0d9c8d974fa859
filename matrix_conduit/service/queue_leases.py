"""Which server process sends which background queue, when several share a database.

Issue #18: every process serves every endpoint, so any of them may queue work
for a federation destination, a pusher or an appservice (in the batch of the
change that caused it, as before). Each queue item must still be sent once,
by one process, even when a process dies mid-send. So each queue has a lease
(`Cluster.try_lease`, a PostgreSQL session advisory lock): only its holder
sends that queue. A process that queues work publishes a wake message once
the work is committed, so the holder sends promptly wherever it runs; every
process also tries, every `LEASE_CHECK_SECONDS`, to take the leases of queues
with pending work: a `kill -9`ed holder's advisory locks end with its
session, and another process takes its queues over. Whatever the dead
process had in flight was written down before it was sent (the senders
persist a transaction's id and contents first), so the new holder sends the
same transaction again and the receiver drops the repeat by its id.

A lone server (LevelDB, SQLite) holds every lease and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .cluster import Cluster

LEASE_CHECK_SECONDS = 5.0
"""How often a process that holds no lease for a queue with work tries to take it."""

Woken = Callable[["list[str] | None"], None]
"""Called with the queue names another process queued work for (None: maybe all)."""


class QueueLeases:
    """The leases of one kind of queue (`federation`, `push`, `appservice`)."""

    def __init__(self, cluster: Cluster | None, kind: str, woken: Woken) -> None:
        self._cluster = cluster if cluster is not None and cluster.shared else None
        self._kind = kind
        self._held: set[str] = set()
        """Leases this process holds (an advisory lock taken twice would need two unlocks)."""
        if self._cluster is not None:
            self._cluster.subscribe(self._channel, woken)

    @property
    def shared(self) -> bool:
        """Whether other processes may hold some of these leases."""
        return self._cluster is not None

    @property
    def _channel(self) -> str:
        return "wake:" + self._kind

    def take(self, name: str) -> bool:
        """Whether this process holds the lease of queue `name` now (taken if free)."""
        if self._cluster is None or name in self._held:
            return True
        if not self._cluster.try_lease(f"{self._kind}:{name}"):
            return False
        self._held.add(name)
        return True

    def release(self, name: str) -> None:
        """Let another process take queue `name` (its queue is empty here)."""
        if self._cluster is not None and name in self._held:
            self._held.discard(name)
            self._cluster.release_lease(f"{self._kind}:{name}")

    def announce(self, names: Iterable[str]) -> None:
        """Tell the other processes that the queues `names` have committed work."""
        if self._cluster is not None:
            self._cluster.publish(self._channel, sorted(set(names)))
