"""Serving other servers' keys as a notary (`/_matrix/key/v2/query`).

Spec: `content/server-server-api.md` § Querying Keys Through Another Server;
`data/api/server-server/keys_query.yaml`. The answer is each origin's own
signed key document with our signature added; it comes from the cache when
that has keys valid until `minimum_valid_until_ts` (default: now), and from
a fetch otherwise. A server that cannot be reached and has nothing cached
is left out of the answer (an empty list for a single server).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ...core.signing import sign_json
from ..clock import Clock, now_ms
from ..globals import Globals
from .key_ring import KeyRing

MAX_SERVERS_PER_QUERY = 100
"""More servers than this in one POST is refused: it would fan out that many fetches."""


class Notary:
    def __init__(self, globals_: Globals, key_ring: KeyRing, clock: Clock = now_ms) -> None:
        self._globals = globals_
        self._key_ring = key_ring
        self._clock = clock

    async def query(
        self, criteria: Mapping[str, tuple[Collection[str], int | None]]
    ) -> list[dict[str, Any]]:
        """Signed key documents for `{server_name: (key ids, minimum_valid_until_ts)}`.

        No key ids means "whichever keys it has"; no minimum means now.
        """
        now = self._clock()
        stale: dict[str, Collection[str]] = {}
        minimum_wanted = now
        for server_name, (key_ids, minimum_valid_until_ts) in criteria.items():
            minimum = minimum_valid_until_ts or now
            if server_name != self._globals.server_name and not self._satisfied(
                server_name, key_ids, minimum
            ):
                stale[server_name] = key_ids
                minimum_wanted = max(minimum_wanted, minimum)
        if stale:
            await self._key_ring.refresh(stale, minimum_wanted)
        documents = []
        for server_name in criteria:
            if server_name == self._globals.server_name:
                found = [self._key_ring.own_key_document()]
            else:
                found = self._key_ring.cached_documents(server_name)
            documents += [self._countersign(document) for document in found]
        return documents

    def _satisfied(self, server_name: str, key_ids: Collection[str], minimum: int) -> bool:
        documents = self._key_ring.cached_documents(server_name)
        if not documents:
            return False
        newest = documents[0]
        known = {*newest.get("verify_keys", {}), *newest.get("old_verify_keys", {})}
        return newest["valid_until_ts"] >= minimum and set(key_ids) <= known

    def _countersign(self, document: Mapping[str, Any]) -> dict[str, Any]:
        return sign_json(document, self._globals.server_name, self._globals.signing_key)
