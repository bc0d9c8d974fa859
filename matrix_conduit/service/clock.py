"""Wall-clock time in the unit the Matrix spec uses: milliseconds since the Unix epoch.

Token and session expiry compare against it; services take it as a parameter
so that a test can move time without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def now_ms() -> int:
    return time.time_ns() // 1_000_000
