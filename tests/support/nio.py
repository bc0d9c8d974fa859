"""Running matrix-nio (asyncio, aiohttp) against the server (trio) in one test.

The server serves on the test's trio loop; each nio scenario runs in a worker
thread with its own asyncio loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

T = TypeVar("T")


async def in_asyncio(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run the async `scenario` on asyncio in a worker thread; returns its result."""
    return await trio.to_thread.run_sync(lambda: asyncio.run(scenario()))
