"""Stored filters: a client uploads a filter once and passes its id to `/sync`.

Spec: `content/client-server-api/_index.md` ("Filtering"),
`data/api/client-server/filter.yaml`. A filter must parse as the spec's
`Filter` (`core/filters.py`); it is stored as the client gave it, so a client
reads back what it uploaded. Filter ids are random URL-safe strings, never
starting with `{` (that marks an inline filter).

Tree `userfilterid_filter`: user | filter id → the filter JSON.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from ..core.filters import Filter, InvalidFilter
from ..errors import bad_json
from ..storage import Database
from ..storage.kv import join_key

TREES = ("userfilterid_filter",)

FILTER_ID_BYTES = 9


class Filters:
    def __init__(self, db: Database) -> None:
        self._filters = db.tree("userfilterid_filter")

    def create(self, user_id: str, filter_json: dict[str, Any]) -> str:
        """Store the filter (400 `M_BAD_JSON` if it is not a valid filter); its new id."""
        try:
            Filter.from_json(filter_json)
        except InvalidFilter as error:
            raise bad_json(f"Invalid filter: {error}") from None
        filter_id = secrets.token_urlsafe(FILTER_ID_BYTES)
        self._filters.put(join_key(user_id, filter_id), json.dumps(filter_json).encode())
        return filter_id

    def get(self, user_id: str, filter_id: str) -> dict[str, Any] | None:
        stored = self._filters.get(join_key(user_id, filter_id))
        return json.loads(stored) if stored is not None else None
