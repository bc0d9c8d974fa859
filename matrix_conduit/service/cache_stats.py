"""What the in-memory caches hold: entries, estimated bytes, hit rates, and the process's RSS.

For admins (issue 19): Conduit's admin room has `memory-usage` and
`clear-caches`, Synapse exports cache sizes and hit ratios as metrics. Both
read this service, which reads the caches of a `MemoryBudget`
(`matrix_conduit/lru.py`: every room cache, split from `cache_memory_mb`).
Nothing here touches the database.

For the admin room (`service/admin_room/`) and metrics:

    figures = services.cache_stats.report()     # a dict, JSON-ready
    text = services.cache_stats.summary()       # lines for a notice
    services.cache_stats.clear()                # `clear-caches`: empty them (they refill)

`report()` is `{"rss_bytes", "budget_bytes", "estimated_bytes", "caches": [...]}`,
each cache `{"name", "entries", "capacity", "bytes", "max_bytes", "hits",
"misses", "evictions", "hit_rate"}` (bytes are estimates, see `lru.py`;
`hit_rate` is over the lookups since start, None before the first). Metrics
can export each as `conduit_cache_{entries,bytes,hits,misses,evictions}{cache=name}`.
"""

from __future__ import annotations

from typing import Any

from ..lru import CacheStats as OneCache
from ..lru import MemoryBudget


def rss_bytes() -> int | None:
    """This process's resident set size (Linux `/proc/self/status`), None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class CacheStats:
    """Figures of every cache of `budget`, read on demand."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget

    def caches(self) -> list[OneCache]:
        return [cache.stats() for cache in self._budget.caches()]

    def report(self) -> dict[str, Any]:
        caches = self.caches()
        return {
            "rss_bytes": rss_bytes(),
            "budget_bytes": self._budget.total_bytes,
            "estimated_bytes": sum(cache.bytes for cache in caches),
            "caches": [cache.as_dict() for cache in caches],
        }

    def summary(self) -> str:
        """One line per cache, then the totals: what `memory-usage` shows."""
        report = self.report()
        lines = []
        for cache in report["caches"]:
            rate = cache["hit_rate"]
            cap = cache["max_bytes"]
            lines.append(
                f"{cache['name']}: {cache['entries']}/{cache['capacity']} entries, "
                f"{_mib(cache['bytes'])}"
                + (f" of {_mib(cap)}" if cap is not None else "")
                + ", "
                + (f"hit rate {rate:.1%}" if rate is not None else "no lookups yet")
                + f", {cache['evictions']} evicted"
            )
        lines.append(
            f"caches: {_mib(report['estimated_bytes'])} of {_mib(report['budget_bytes'])}"
            " (estimated)"
        )
        if report["rss_bytes"] is not None:
            lines.append(f"process RSS: {_mib(report['rss_bytes'])}")
        return "\n".join(lines)

    def clear(self) -> None:
        """Empty every cache (Conduit's `clear-caches`); they refill from the database."""
        self._budget.clear()


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
