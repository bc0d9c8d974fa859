"""Relations between events: threads, edits, references; and their bundled aggregations.

Spec: `content/client-server-api/_index.md` ("Forming relationships between
events", "Aggregations of child events"), modules `threading.md`,
`event_replacements.md`, `event_annotations.md`, and the OpenAPI of
`relations.yaml` and `threads_list.yaml`.

Every appended event with `content.m.relates_to` is indexed under its parent
(`relatesto_childpos`: parent | position → child id and rel_type), and thread
roots under their room with their latest activity. Serving an event to a
client adds `unsigned.m.relations`: the newest valid `m.replace` by the
original sender, the `m.thread` summary, and the `m.reference` ids.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

from ...errors import not_found
from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, from_u64, join_key
from .timeline import Event, Timeline
from .visibility import Visibility

TREES = ("relatesto_childpos", "roomthreadroot_latest")

THREAD = "m.thread"
REPLACE = "m.replace"
REFERENCE = "m.reference"
BUNDLED = frozenset((THREAD, REPLACE, REFERENCE))
"""The rel_types aggregated in `unsigned.m.relations`."""
MAX_CHILDREN_SCANNED = 10_000


def _edit_order(edit: Event) -> tuple[int, str]:
    """Edits are ordered by their time, then by id (the spec's tie-break)."""
    return edit.get("origin_server_ts", 0), edit["event_id"]


def relation_of(event: Event) -> tuple[str, str] | None:
    """(parent event id, rel_type) of an event that relates to another."""
    relates_to = (event.get("content") or {}).get("m.relates_to")
    if not isinstance(relates_to, dict):
        return None
    parent, rel_type = relates_to.get("event_id"), relates_to.get("rel_type")
    if isinstance(parent, str) and isinstance(rel_type, str):
        return parent, rel_type
    return None


class Relations:
    def __init__(self, db: Database, timeline: Timeline, visibility: Visibility) -> None:
        self._db = db
        self._timeline = timeline
        self._visibility = visibility
        self._children = db.tree("relatesto_childpos")
        self._threads = db.tree("roomthreadroot_latest")

    # ---- indexing (a timeline indexer: in the event's own batch)

    def index(self, event: Event, pdu_id: bytes, batch: WriteBatch) -> None:
        relation = relation_of(event)
        if relation is None:
            return
        parent_id, rel_type = relation
        position = pdu_id[8:]
        record = json.dumps({"event_id": event["event_id"], "rel_type": rel_type}).encode()
        batch.put(self._children, join_key(parent_id, position), record)
        if rel_type == THREAD:
            batch.put(self._threads, join_key(event["room_id"], parent_id), position)

    # ---- reading

    def _iter_children(
        self,
        parent_id: str,
        *,
        rel_type: str | None = None,
        event_type: str | None = None,
        newest_first: bool = False,
        rel_types: frozenset[str] | None = None,
    ) -> Iterator[tuple[int, Event]]:
        """(position, child event) relating to `parent_id`, oldest first unless
        `newest_first`; one at a time, so a page stops reading events once it is full.

        The index record names each child's rel_type, so children of other
        types are skipped without reading their events.
        """
        prefix = parent_id.encode() + SEPARATOR
        records = self._children.iter_prefix(prefix, reverse=newest_first)
        for scanned, (key, value) in enumerate(records):
            if scanned >= MAX_CHILDREN_SCANNED:
                break
            record = json.loads(value)
            if rel_type is not None and record["rel_type"] != rel_type:
                continue
            if rel_types is not None and record["rel_type"] not in rel_types:
                continue
            child = self._timeline.get_event(record["event_id"])
            if child is None or relation_of(child) is None:
                continue  # redacted since: the relation is gone with its content
            if event_type is not None and child.get("type") != event_type:
                continue
            yield from_u64(key[len(prefix) :]), child

    def thread_roots(self, room_id: str) -> list[tuple[int, str]]:
        """(latest activity position, root id) of the room's threads, newest first."""
        prefix = room_id.encode() + SEPARATOR
        roots = [
            (from_u64(value), key[len(prefix) :].decode())
            for key, value in self._threads.iter_prefix(prefix)
        ]
        return sorted(roots, reverse=True)

    def bundle(
        self,
        event: Event,
        user_id: str,
        visible: Callable[[Event], bool],
        serialize: Callable[[Event], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """The `m.relations` of `event` as `user_id` may see them (None: nothing to bundle).

        One pass over the children, one event at a time, keeping counts and the
        newest of each kind: a root with thousands of thread replies (each
        event served with it, in every page and sync) holds one reply in memory,
        not a list of all of them (issue 19). Children of other rel_types
        (annotations) are never read.
        """
        if (event.get("unsigned") or {}).get("redacted_because") is not None:
            return None
        own_relation = relation_of(event)
        takes_edits = own_relation is None or own_relation[1] != REPLACE
        newest_edit: Event | None = None
        thread_count, latest_reply = 0, None
        participated = event.get("sender") == user_id
        references: list[dict[str, str]] = []
        children = self._iter_children(event["event_id"], rel_types=BUNDLED)
        for _, child in children:
            relation = relation_of(child)
            if relation is None or not visible(child):
                continue
            rel_type = relation[1]
            if rel_type == THREAD:
                thread_count += 1
                latest_reply = child  # oldest first: the last one is the newest
                participated = participated or child.get("sender") == user_id
            elif rel_type == REFERENCE:
                references.append({"event_id": child["event_id"]})
            elif (
                takes_edits
                and child.get("sender") == event.get("sender")
                and child.get("type") == event.get("type")
                and (newest_edit is None or _edit_order(child) > _edit_order(newest_edit))
            ):
                newest_edit = child
        relations: dict[str, Any] = {}
        if newest_edit is not None:
            relations[REPLACE] = serialize(newest_edit)
        if latest_reply is not None:
            relations[THREAD] = {
                "latest_event": serialize(latest_reply),
                "count": thread_count,
                "current_user_participated": participated,
            }
        if references:
            relations[REFERENCE] = {"chunk": references}
        return relations or None

    # ---- pages for clients

    def _require_visible(self, user_id: str, room_id: str, event_id: str) -> Event:
        event = self._timeline.get_event(event_id)
        if (
            event is None
            or event.get("room_id") != room_id
            or not self._visibility.can_see_event(user_id, event)
        ):
            raise not_found("Event not found.")
        return event

    def page(
        self,
        user_id: str,
        room_id: str,
        parent_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        from_position: int | None,
        to_position: int | None,
        limit: int,
        direction: str,
    ) -> tuple[list[Event], int | None]:
        """The visible children of an event the user can see, and the next token."""
        self._require_visible(user_id, room_id, parent_id)
        children = self._iter_children(
            parent_id, rel_type=rel_type, event_type=event_type, newest_first=direction == "b"
        )
        if direction == "b":
            if from_position is not None:
                children = ((p, c) for p, c in children if p < from_position)
            if to_position is not None:
                children = ((p, c) for p, c in children if p > to_position)
        else:
            if from_position is not None:
                children = ((p, c) for p, c in children if p > from_position)
            if to_position is not None:
                children = ((p, c) for p, c in children if p <= to_position)
        # One more than the page tells whether there is a next one; with thousands of
        # children, a page reads its own events and not every child's.
        visible = list(
            itertools.islice(
                ((p, c) for p, c in children if self._visibility.can_see_event(user_id, c)),
                limit + 1,
            )
        )
        page = visible[:limit]
        next_token = page[-1][0] if len(visible) > limit else None
        return [c for _, c in page], next_token

    def threads(
        self, user_id: str, room_id: str, *, participated_only: bool, before: int | None, limit: int
    ) -> tuple[list[Event], int | None]:
        """Thread roots of the room the user can see, by latest activity, and the next token."""
        found: list[tuple[int, Event]] = []
        for latest, root_id in self.thread_roots(room_id):
            if before is not None and latest >= before:
                continue
            root = self._timeline.get_event(root_id)
            if root is None or not self._visibility.can_see_event(user_id, root):
                continue
            if (
                participated_only
                and root.get("sender") != user_id
                and not any(
                    c.get("sender") == user_id
                    for _, c in self._iter_children(root_id, rel_type=THREAD)
                )
            ):
                continue
            found.append((latest, root))
            if len(found) > limit:
                break
        page = found[:limit]
        next_token = page[-1][0] if len(found) > limit else None
        return [root for _, root in page], next_token
