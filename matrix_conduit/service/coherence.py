"""What one server process keeps in memory, kept true when other processes change it.

Several processes may serve one PostgreSQL database (issue #18, `cluster.py`).
A service that keeps in memory something another process may change (a
room's current state, who is joined, a user's push rules) declares it once
here, on a channel of its own: each change is told to the other processes
after it is committed, and their copy applies it (most often: forget the key,
so it is read again from the database). Messages arrive in commit order and
before the mark passes the positions taken before them, and a room's lock
catches up with them once held, so what is read under the lock, or below the
mark, is current.

Alone on its database (LevelDB, SQLite: `Cluster.shared` is False) a server
pays one attribute test per change here and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, MutableSet
from typing import Any, Protocol

from ..storage import WriteBatch
from .cluster import Cluster


class Forgettable(Protocol):
    """An `LRUCache`: what `Invalidations.forgetting` drops keys from."""

    def discard(self, key: Any) -> None: ...

    def clear(self) -> None: ...


Memory = Forgettable | MutableMapping[Any, Any] | MutableSet[Any]


class Invalidations:
    """One channel of changes to what processes keep in memory.

    `tell(item)` (after `batch` commits, or now) sends `item` (JSON) to the
    other processes, where `apply(item)` runs; when a message was too big to
    send, `everything()` runs instead (everything on the channel may have
    changed).
    """

    def __init__(
        self,
        cluster: Cluster | None,
        channel: str,
        apply: Callable[[Any], None],
        everything: Callable[[], None],
    ) -> None:
        self._cluster = cluster if cluster is not None and cluster.shared else None
        self.shared = self._cluster is not None
        """Whether other processes may change what is kept (PostgreSQL)."""
        self._channel = channel
        self._apply = apply
        self._everything = everything
        if self._cluster is not None:
            self._cluster.subscribe(channel, self._received)

    @classmethod
    def forgetting(
        cls,
        cluster: Cluster | None,
        channel: str,
        *memories: Memory,
        key: Callable[[Any], Any] = lambda item: item,
    ) -> Invalidations:
        """A channel whose items are keys to drop from every one of `memories`
        (`key` turns an item back into the key: JSON has lists, not tuples)."""

        def forget(item: Any) -> None:
            found = key(item)
            for memory in memories:
                _forget(memory, found)

        def forget_all() -> None:
            for memory in memories:
                memory.clear()

        return cls(cluster, channel, forget, forget_all)

    def tell(self, item: Any, batch: WriteBatch | None = None) -> None:
        """The others apply `item` once `batch` is committed (at once without a batch:
        the change is committed already)."""
        if self._cluster is None:
            return
        if batch is None:
            self._cluster.publish(self._channel, [item])
        else:
            batch.after_commit(lambda: self.tell(item))

    def tell_all(self, items: Iterable[Any], batch: WriteBatch | None = None) -> None:
        """`tell` for several items, in one message."""
        if self._cluster is None:
            return
        listed = list(items)
        if not listed:
            return
        if batch is None:
            self._cluster.publish(self._channel, listed)
        else:
            batch.after_commit(lambda: self.tell_all(listed))

    def _received(self, data: Any) -> None:
        if not isinstance(data, list):
            self._everything()
            return
        for item in data:
            self._apply(item)


def _forget(memory: Memory, key: Any) -> None:
    if isinstance(memory, MutableMapping):
        memory.pop(key, None)
    else:
        memory.discard(key)


def as_tuple(item: Any) -> Any:
    """A JSON list back into the tuple key it was sent as."""
    return tuple(item) if isinstance(item, list) else item
