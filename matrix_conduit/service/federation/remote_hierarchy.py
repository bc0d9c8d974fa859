"""Other servers' space hierarchies (`GET /_matrix/federation/v1/hierarchy/{roomId}`).

Spec: `content/server-server-api.md` "Spaces" (`data/api/server-server/
space_hierarchy.yaml`: "Responses to this endpoint should be cached for a
period of time") and the client-server spaces module ("Server behaviour":
a room this server does not have is asked of the servers in the `via` of
its `m.space.child` event). The walk itself is `service/rooms/hierarchy.py`;
this asks at most `MAX_SERVERS_PER_ROOM` of the servers, in order, each
within what is left of the walk's deadline, keeps a good answer for
`CACHE_SECONDS` (the client pages by re-walking, and gets the same walk),
and checks every field before the walk sees it: the room must be the one
asked for, children must be `m.space.child` events with a `via`, summaries
keep only their spec fields with their spec types.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import trio

from ...core.ids import is_valid_server_name
from ...lru import LRUCache
from ..rooms.hierarchy import RemoteSpace, SpaceUnavailable
from .client import FederationClient
from .errors import FederationError, RemoteError
from .public_rooms import published_room

log = logging.getLogger(__name__)

MAX_SERVERS_PER_ROOM = 3
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 5 * 1024 * 1024
CACHE_SECONDS = 300.0
CACHE_CAPACITY = 1000
MAX_CHILDREN = 1000
REFUSING_STATUSES = (403, 404)
SUMMARY_STRINGS = ("room_version", "encryption")


class RemoteHierarchy:
    def __init__(self, client: FederationClient, server_name: str) -> None:
        self._client = client
        self._server_name = server_name
        self._cache: LRUCache[tuple[str, bool], tuple[float, RemoteSpace]] = LRUCache(
            CACHE_CAPACITY
        )

    async def space(
        self,
        room_id: str,
        servers: Sequence[str],
        suggested_only: bool,
        *,
        deadline: float,
        ignore_backoff: bool,
    ) -> RemoteSpace:
        """The room and its children as the first of `servers` to answer gives them.

        `deadline` (trio's clock) bounds the whole; `ignore_backoff` for a
        room the user asked for by name (the walk's root), not for each
        child. Raises `SpaceUnavailable` (`refused` when every server asked
        answered 403 or 404).
        """
        key = (room_id, suggested_only)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > trio.current_time():
            return cached[1]
        candidates = self._candidates(servers)
        if not candidates:
            raise SpaceUnavailable("no other server to ask", refused=True)
        reasons: list[str] = []
        refused = True
        for server in candidates:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                reasons.append(f"{server}: not asked, out of time")
                refused = False
                break
            space, reason, said_no = await self._ask(
                server, room_id, suggested_only, remaining, ignore_backoff
            )
            if space is not None:
                self._cache.put(key, (trio.current_time() + CACHE_SECONDS, space))
                return space
            reasons.append(reason)
            refused = refused and said_no
        log.info("No hierarchy of %s: %s", room_id, "; ".join(reasons))
        raise SpaceUnavailable("; ".join(reasons), refused=refused)

    def _candidates(self, servers: Sequence[str]) -> list[str]:
        unique: list[str] = []
        for server in servers:
            if server == self._server_name or server in unique:
                continue
            if is_valid_server_name(server):
                unique.append(server)
        return unique[:MAX_SERVERS_PER_ROOM]

    async def _ask(
        self,
        server: str,
        room_id: str,
        suggested_only: bool,
        seconds: float,
        ignore_backoff: bool,
    ) -> tuple[RemoteSpace | None, str, bool]:
        """(the space, or None with why not and whether the server said no)."""
        with trio.move_on_after(seconds):
            try:
                answer = await self._client.request(
                    server,
                    "GET",
                    f"/_matrix/federation/v1/hierarchy/{quote(room_id, safe='')}",
                    query={"suggested_only": "true" if suggested_only else "false"},
                    timeout=min(REQUEST_TIMEOUT_SECONDS, seconds),
                    max_bytes=MAX_ANSWER_BYTES,
                    ignore_backoff=ignore_backoff,
                )
            except RemoteError as error:
                return (
                    None,
                    f"{server} answered {error.status} {error.errcode}",
                    (error.status in REFUSING_STATUSES),
                )
            except FederationError as error:
                return None, str(error), False
            space = parse_space(room_id, answer)
            if space is None:
                return None, f"{server} answered something that is no hierarchy of it", False
            return space, "", False
        return None, f"{server}: no answer within {seconds:.1f} s", False


def parse_space(room_id: str, answer: Any) -> RemoteSpace | None:
    """A `/hierarchy` answer about `room_id`, checked; None if it is not one."""
    if not isinstance(answer, dict):
        return None
    room = summary(answer.get("room"))
    if room is None or room["room_id"] != room_id:
        return None
    raw_children_state = answer["room"].get("children_state")
    children_state = [
        child
        for child in map(_space_child, _list(raw_children_state)[:MAX_CHILDREN])
        if child is not None
    ]
    children = {
        child["room_id"]: child
        for child in map(summary, _list(answer.get("children"))[:MAX_CHILDREN])
        if child is not None
    }
    inaccessible = frozenset(
        entry for entry in _list(answer.get("inaccessible_children")) if isinstance(entry, str)
    )
    return RemoteSpace(room, children_state, children, inaccessible)


def summary(entry: Any) -> dict[str, Any] | None:
    """A RoomSummary of another server's answer, or None without a room id.

    Older servers (and Synapse still, beside `join_rule`) spell the join rule
    `join_rules`.
    """
    room = published_room(entry)
    if room is None:
        return None
    if "join_rule" not in room and isinstance(entry.get("join_rules"), str):
        room["join_rule"] = entry["join_rules"]
    for key in SUMMARY_STRINGS:
        if isinstance(entry.get(key), str):
            room[key] = entry[key]
    allowed = [r for r in _list(entry.get("allowed_room_ids")) if isinstance(r, str)]
    if allowed:
        room["allowed_room_ids"] = allowed
    return room


def _space_child(event: Any) -> dict[str, Any] | None:
    """A stripped `m.space.child` event with a non-empty `via`, or None."""
    if not isinstance(event, dict) or event.get("type") != "m.space.child":
        return None
    state_key, content = event.get("state_key"), event.get("content")
    if not isinstance(state_key, str) or not state_key.startswith("!"):
        return None
    if not isinstance(content, dict):
        return None
    via = [server for server in _list(content.get("via")) if isinstance(server, str)]
    if not via:
        return None
    kept: dict[str, Any] = {"via": via}
    if isinstance(content.get("order"), str):
        kept["order"] = content["order"]
    if isinstance(content.get("suggested"), bool):
        kept["suggested"] = content["suggested"]
    timestamp = event.get("origin_server_ts")
    sender = event.get("sender")
    return {
        "type": "m.space.child",
        "state_key": state_key,
        "content": kept,
        "sender": sender if isinstance(sender, str) else "",
        "origin_server_ts": timestamp
        if isinstance(timestamp, int) and not isinstance(timestamp, bool)
        else 0,
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
