"""Full-text search over the messages of rooms a user can see (`POST /search`).

Spec: `content/client-server-api/modules/search.md` and
`data/api/client-server/search.yaml`. Each appended event's searchable text
(`content.body`, `content.name`, `content.topic`) is split into lower-case
words and indexed (`tokenid_pduid`: word | PDU id → nothing; Conduit's tree).
A search reads the posting list of the rarest-looking (longest) word, keeps
the hits in the user's rooms whose text has every word, checks visibility, and
ranks by how often the words occur, or by recency.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...core.filters import EventFilter
from ...errors import MatrixError
from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, from_u64, u64
from .short import ShortIds
from .state_cache import StateCache
from .timeline import Event, Timeline
from .visibility import Visibility

TREES = ("tokenid_pduid",)

SEARCH_KEYS = ("content.body", "content.name", "content.topic")
MAX_WORD_BYTES = 50
MAX_HITS_SCANNED = 20_000
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if len(w.encode()) <= MAX_WORD_BYTES]


def searchable_text(event: Event, keys: Iterable[str] = SEARCH_KEYS) -> str:
    content = event.get("content") or {}
    parts = []
    for key in keys:
        value = content.get(key.split(".", 1)[1])
        if isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)


@dataclass(frozen=True)
class SearchHit:
    position: int
    rank: float
    event: Event


class Search:
    def __init__(
        self,
        db: Database,
        short: ShortIds,
        timeline: Timeline,
        state_cache: StateCache,
        visibility: Visibility,
    ) -> None:
        self._db = db
        self._short = short
        self._timeline = timeline
        self._state_cache = state_cache
        self._visibility = visibility
        self._index = db.tree("tokenid_pduid")

    def index(self, event: Event, pdu_id: bytes, batch: WriteBatch) -> None:
        """Index an appended event's words (a timeline indexer: in the event's own batch)."""
        for word in set(words(searchable_text(event))):
            batch.put(self._index, word.encode() + SEPARATOR + pdu_id, b"")

    def search(
        self,
        user_id: str,
        term: str,
        *,
        keys: list[str],
        event_filter: EventFilter,
        order_by: str,
    ) -> list[SearchHit]:
        """Every visible hit, best first (rank) or newest first (recent)."""
        terms = words(term)
        if not terms:
            raise MatrixError(400, "M_INVALID_PARAM", "The search term has no words to search.")
        if any(key not in SEARCH_KEYS for key in keys):
            raise MatrixError(400, "M_INVALID_PARAM", f"`keys` may only contain {SEARCH_KEYS}.")
        rooms = {
            room_id
            for room_id in self._state_cache.joined_rooms(user_id)
            if event_filter.allows_room(room_id)
        }
        short_rooms = {
            short: room_id
            for room_id in rooms
            if (short := self._short.short_room_id(room_id)) is not None
        }
        anchor = max(terms, key=len).encode() + SEPARATOR
        hits: list[SearchHit] = []
        # The postings of the user's rooms only (a key is word, room, position), newest
        # first: never the word's hits in every room of the server, and a big room's
        # cap keeps its latest hits.
        per_room = max(200, MAX_HITS_SCANNED // max(1, len(short_rooms)))
        postings = (
            (room_id, key)
            for short, room_id in short_rooms.items()
            for key, _ in itertools.islice(
                self._index.iter_prefix(anchor + u64(short), reverse=True), per_room
            )
        )
        for scanned, (room_id, key) in enumerate(postings):
            if scanned >= MAX_HITS_SCANNED:
                break
            pdu_id = key[len(anchor) :]
            position = from_u64(pdu_id[8:])
            event = self._timeline.event_at(room_id, position)
            if event is None or not event_filter.matches(event):
                continue
            text_words = words(searchable_text(event, keys))
            if not all(word in text_words for word in terms):
                continue  # redacted since, or not in the asked keys
            if not self._visibility.can_see_event(user_id, event):
                continue
            rank = float(sum(text_words.count(word) for word in terms))
            hits.append(SearchHit(position, rank, event))
        if order_by == "recent":
            hits.sort(key=lambda hit: -hit.position)
        else:
            hits.sort(key=lambda hit: (-hit.rank, -hit.position))
        return hits

    @staticmethod
    def highlights(term: str) -> list[str]:
        return sorted(set(words(term)))

    def context(self, user_id: str, hit: SearchHit, before: int, after: int) -> dict[str, Any]:
        """Events around a hit that the user may see (spec: `event_context`)."""
        room_id = hit.event["room_id"]
        earlier = [
            event
            for _, event in itertools.islice(
                self._timeline.events_before(room_id, hit.position - 1), before
            )
        ]
        later = [
            event
            for _, event in itertools.islice(
                self._timeline.events_after(room_id, hit.position), after
            )
        ]
        return {
            "events_before": self._visibility.filter_events(user_id, room_id, earlier),
            "events_after": self._visibility.filter_events(user_id, room_id, later),
            "start": str(hit.position - 1 - len(earlier)),
            "end": str(hit.position + len(later)),
        }
