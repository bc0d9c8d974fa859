"""Admin room commands about the server itself.

`show-config` (every setting, secrets masked), `memory-usage` (the
in-memory caches: every `LRUCache` the services hold, with its entries and
estimated bytes), `clear-caches` (empties them; they refill from the
database on use), `allow-registration` (open or close registration until the
next start), `database-memory-usage` (what the database reports of its own
memory, and its size on disk).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

from ...lru import LRUCache
from .parsing import Command, Reply
from .room import CommandContext, new_parser

SECRET_WORDS = ("password", "secret", "token", "jwt")
"""A key whose name holds one of these is shown masked."""
MASK = "***"
_WALK_DEPTH = 5


def _masked(key: str, value: Any) -> Any:
    if value in (None, "", [], {}):
        return value
    if any(word in key for word in SECRET_WORDS):
        return MASK
    if key == "database_url" and isinstance(value, str):
        from ...storage.postgresql import redact_url  # a password may be inline

        return redact_url(value)
    if isinstance(value, dict):
        return {inner: _masked(f"{key}.{inner}", v) for inner, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _masked(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_masked(key, item) for item in value]
    return value


async def show_config(context: CommandContext, args: argparse.Namespace) -> Reply:
    config = context.services.config
    shown = {
        field.name: _masked(field.name, getattr(config, field.name))
        for field in dataclasses.fields(config)
    }
    text = json.dumps(shown, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return Reply.with_code("The configuration in force (secrets masked):", text, "json")


def caches(root: object) -> Iterator[tuple[str, LRUCache[Any, Any]]]:
    """Every `LRUCache` reachable from `root` through attributes, with the path to it."""
    seen: set[int] = set()
    pending: deque[tuple[str, object, int]] = deque([("", root, 0)])
    while pending:  # breadth first: each cache is named by its shortest path
        path, value, depth = pending.popleft()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, LRUCache):
            yield path, value
            continue
        if depth >= _WALK_DEPTH or not type(value).__module__.startswith("matrix_conduit"):
            continue
        for name, inner in vars(value).items() if hasattr(value, "__dict__") else ():
            pending.append((f"{path}.{name}" if path else name, inner, depth + 1))


async def memory_usage(context: CommandContext, args: argparse.Namespace) -> Reply:
    found = sorted(caches(context.services), key=lambda item: item[0])
    lines = []
    total_entries = total_bytes = 0
    for path, cache in found:
        estimated = getattr(cache, "bytes", None)
        name = getattr(cache, "name", "")
        label = f"{path} ({name})" if name else path
        line = f"{label}: {len(cache)} of {cache.capacity} entries"
        if isinstance(estimated, int):
            line += f", ~{estimated // 1024} KiB"
            total_bytes += estimated
        total_entries += len(cache)
        lines.append(line)
    summary = f"{len(found)} caches, {total_entries} entries"
    if total_bytes:
        summary += f", ~{total_bytes // (1024 * 1024)} MiB estimated"
    return Reply.with_code(summary + ":", "\n".join(lines))


async def clear_caches(context: CommandContext, args: argparse.Namespace) -> Reply:
    found = list(caches(context.services))
    entries = sum(len(cache) for _, cache in found)
    for _, cache in found:
        cache.clear()
    return Reply.text(f"Cleared {len(found)} caches ({entries} entries); they refill on use.")


async def allow_registration(context: CommandContext, args: argparse.Namespace) -> Reply:
    registration = context.services.registration
    if args.state is not None:
        registration.allow_registration = args.state == "on"
    state = "open" if registration.allow_registration else "closed"
    note = "" if args.state is None else " until the next start (then allow_registration applies)"
    return Reply.text(f"Registration is {state}{note}.")


async def database_memory_usage(context: CommandContext, args: argparse.Namespace) -> Reply:
    db = context.services.db
    report = {"backend": type(db).__name__, "size_on_disk_bytes": db.size_on_disk()}
    memory = getattr(db, "memory_usage", None)
    if callable(memory):
        report.update(memory())
    config = context.services.config
    report["db_cache_capacity_mb (configured)"] = config.db_cache_capacity_mb
    return Reply.with_code("The database:", json.dumps(report, indent=2, default=str), "json")


def commands() -> list[Command]:
    config = new_parser("show-config", "Show the configuration in force (secrets masked).")
    memory = new_parser("memory-usage", "Show the in-memory caches: entries and estimated size.")
    clear = new_parser("clear-caches", "Empty the in-memory caches (they refill on use).")
    registration = new_parser(
        "allow-registration", "Show, or open/close until the next start, registration."
    )
    registration.add_argument(
        "state", nargs="?", choices=("on", "off"), help="on or off (none: show)"
    )
    database = new_parser(
        "database-memory-usage", "Show what the database uses: memory it reports, disk."
    )
    return [
        Command(config, show_config),
        Command(memory, memory_usage),
        Command(clear, clear_caches),
        Command(registration, allow_registration),
        Command(database, database_memory_usage),
    ]
