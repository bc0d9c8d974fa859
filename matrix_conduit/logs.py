"""Logging to stderr, where journald (or the terminal) picks it up.

The `log` setting is a level (`warn`, `info`, `debug`...) or a comma list
mixing one bare level with `module=level` parts, as in Conduit
(`"warn,matrix_conduit.api=debug"`).
"""

from __future__ import annotations

import logging
import os
import sys

from .config import parse_log_filter


def setup_logging(spec: str) -> None:
    root_level, per_module = parse_log_filter(spec)
    # journald adds its own timestamps; a terminal wants them.
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(root_level)
    for module, level in per_module.items():
        logging.getLogger(module).setLevel(level)
