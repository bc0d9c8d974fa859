"""Space hierarchies: the rooms below a space, for our clients and for other servers.

Spec: `content/client-server-api/modules/spaces.md` ("Server behaviour"),
`data/api/client-server/space_hierarchy.yaml` (`GET /rooms/{roomId}/hierarchy`)
and `data/api/server-server/space_hierarchy.yaml` (`GET /hierarchy/{roomId}`).

`walk` is the client's: a breadth-first walk over `m.space.child` state
events (those with a non-empty `via`) from the space, showing each room the
user may peek at: joined or invited, world-readable, public, knockable, or
restricted to a room they are in. A room this server is in is read from its
own state. Any other room (the root included) is asked of other servers
(`remote`, the federation's `/hierarchy`): a child through the `via` of its
`m.space.child` event, the root through the request's `via` and its room id's
server. The remote's summaries of a space's children stand in for those
children unless they are spaces themselves (whose children are needed), and
its `inaccessible_children` are not asked for again. A child no server gives
is left out; a root none gives is 502 when they could not be reached and 403
when they said no. Answers from other servers are cached for a while, so
that `from` (an offset into the walk) pages through the same walk; the whole
walk has a time budget, so a page never waits long on servers that are down.

`for_server` is the federation's: one room and its direct children, as far as
the asking server could peek at or join them (a user of it is in or invited,
the join rules let it in, or a room its users are in satisfies a restricted
rule; and never a room whose server ACL denies it), without recursion (the
asking server walks on).

`room_summary` is one room's summary (spec v1.15 "Room Summaries", MSC3266)
under the same rules, read here when this server is in the room and asked of
other servers otherwise.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ...core.client_events import stripped_state_event
from ...core.ids import InvalidIdentifier, is_on_server, server_name_of
from ...core.server_acl import server_allowed
from ...errors import MatrixError, forbidden, not_found
from .directory import Directory
from .state import RoomState
from .state_cache import StateCache
from .timeline import Timeline
from .visibility import Visibility

MAX_ROOMS_WALKED = 1000
MAX_CHILDREN_PER_SPACE = 50
"""Children a `/hierarchy` answer of ours summarises (Synapse's limit too)."""
WALK_BUDGET_SECONDS = 20.0
"""Time one page's walk may spend waiting for other servers."""
SPACE_ROOM_TYPE = "m.space"
ORDER_CHARACTERS = frozenset(chr(code) for code in range(0x20, 0x7F))
MAX_ORDER_LENGTH = 50


@dataclass(frozen=True, slots=True)
class RemoteSpace:
    """What another server's `/hierarchy/{roomId}` said about a room, checked."""

    room: dict[str, Any]
    """Its summary (a RoomSummary, without `children_state`)."""
    children_state: list[dict[str, Any]]
    """Its `m.space.child` events, stripped, with `origin_server_ts`."""
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Summaries of children, by room id (without their own `children_state`)."""
    inaccessible: frozenset[str] = frozenset()
    """Children the remote says this server cannot peek at or join."""


class SpaceUnavailable(Exception):
    """No server gave a room's hierarchy; `refused`: every one answered that it will not."""

    def __init__(self, reason: str, *, refused: bool) -> None:
        super().__init__(reason)
        self.refused = refused


class RemoteSpaces(Protocol):
    """Other servers' `/hierarchy` (`service/federation/remote_hierarchy.py`)."""

    async def space(
        self,
        room_id: str,
        servers: Sequence[str],
        suggested_only: bool,
        *,
        deadline: float,
        ignore_backoff: bool,
    ) -> RemoteSpace:
        """The room as the first of `servers` that answers by `deadline` (trio time) has it;
        raises `SpaceUnavailable`."""
        ...


@dataclass(frozen=True, slots=True)
class _Pending:
    room_id: str
    depth: int
    via: tuple[str, ...]
    hint: dict[str, Any] | None = None
    """The parent's remote's summary of this room, if it gave one."""


@dataclass(frozen=True, slots=True)
class _Resolved:
    chunk: dict[str, Any]
    """The room as the client sees it: summary plus `children_state`."""
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    inaccessible: frozenset[str] = frozenset()


class Hierarchy:
    def __init__(
        self,
        state: RoomState,
        timeline: Timeline,
        state_cache: StateCache,
        visibility: Visibility,
        directory: Directory,
    ) -> None:
        self._state = state
        self._timeline = timeline
        self._state_cache = state_cache
        self._visibility = visibility
        self._directory = directory
        self._server_name: str | None = None
        self._remote: RemoteSpaces | None = None

    def attach(self, server_name: str, remote: RemoteSpaces | None) -> None:
        """This server's name (whose rooms it is in), and other servers' hierarchies
        (None: federation is off, rooms this server does not know are left out)."""
        self._server_name = server_name
        self._remote = remote

    # ---- what this server knows

    def _known(self, room_id: str) -> bool:
        try:
            self._timeline.room_version(room_id)
        except KeyError:
            return False
        return True

    def _in_room(self, room_id: str) -> bool:
        """Whether this server has a user joined to the room (its state is current here)."""
        if not self._known(room_id):
            return False
        if self._server_name is None:
            return True
        return any(
            is_on_server(member, self._server_name)
            for member in self._state_cache.joined_members(room_id)
        )

    def _join_rules(self, room_id: str) -> tuple[str | None, list[str]]:
        """The room's join rule (None if its version has no such rule) and the rooms
        that satisfy it when it is a restricted one."""
        content = self._timeline.state_content(room_id, "m.room.join_rules")
        rule = content.get("join_rule")
        version = self._timeline.room_version(room_id)
        supported = {
            "public": True,
            "invite": True,
            "private": True,
            "knock": version.knock_join_rule,
            "restricted": version.restricted_join_rule,
            "knock_restricted": version.knock_restricted_join_rule,
        }
        if not isinstance(rule, str) or not supported.get(rule, False):
            return None, []
        allowed = [
            entry["room_id"]
            for entry in content.get("allow") or []
            if rule in ("restricted", "knock_restricted")
            and isinstance(entry, dict)
            and entry.get("type") == "m.room_membership"
            and isinstance(entry.get("room_id"), str)
        ]
        return rule, allowed

    def _peekable_by_anyone(self, room_id: str) -> bool:
        """World-readable, public or knockable: anyone may see that it exists."""
        if self._visibility.is_world_readable(room_id):
            return True
        rule, _ = self._join_rules(room_id)
        return rule in ("public", "knock", "knock_restricted")

    def _may_peek(self, user_id: str, room_id: str) -> bool:
        if self._state_cache.membership(room_id, user_id) in ("join", "invite"):
            return True
        if self._peekable_by_anyone(room_id):
            return True
        _, allowed = self._join_rules(room_id)
        return any(self._state_cache.is_joined(user_id, allowed_id) for allowed_id in allowed)

    def _server_may_peek(self, server_name: str, room_id: str) -> bool:
        """May `server_name` peek at or join the room, for some user of it? Never when the
        room's server ACL denies it (it could take no part in the room)."""
        acl = self._timeline.state_content(room_id, "m.room.server_acl")
        if acl and not server_allowed(acl, server_name):
            return False
        if self._peekable_by_anyone(room_id):
            return True
        if self._server_has_member(server_name, room_id, invited_too=True):
            return True
        _, allowed = self._join_rules(room_id)
        return any(
            self._known(allowed_id) and self._server_has_member(server_name, allowed_id)
            for allowed_id in allowed
        )

    def _server_has_member(self, server_name: str, room_id: str, invited_too: bool = False) -> bool:
        members = set(self._state_cache.joined_members(room_id))
        if invited_too:
            members |= self._state_cache.invited_members(room_id)
        return any(is_on_server(member, server_name) for member in members)

    def _summary(self, room_id: str) -> dict[str, Any]:
        """The directory's summary plus what a RoomSummary adds (version, encryption,
        allowed rooms of a restricted join rule)."""
        chunk = self._directory.summary(room_id)
        chunk["room_version"] = self._timeline.room_version(room_id).identifier
        algorithm = self._timeline.state_content(room_id, "m.room.encryption").get("algorithm")
        if isinstance(algorithm, str):
            chunk["encryption"] = algorithm
        _, allowed = self._join_rules(room_id)
        if allowed:
            chunk["allowed_room_ids"] = allowed
        return chunk

    def _children(self, room_id: str, suggested_only: bool) -> list[dict[str, Any]]:
        """The room's `m.space.child` events with a `via`, stripped, in the spec's order."""
        children = []
        state = self._state.current_state_ids(room_id)
        for (event_type, _), event_id in state.items():
            if event_type != "m.space.child":
                continue
            event = self._timeline.get_event(event_id)
            if event is None:
                continue
            content = event.get("content") or {}
            via = content.get("via")
            if not isinstance(via, list) or not via:
                continue
            if suggested_only and content.get("suggested") is not True:
                continue
            child = stripped_state_event(event)
            child["origin_server_ts"] = event.get("origin_server_ts", 0)
            children.append(child)
        return sorted(children, key=child_order)

    def _is_space(self, room_id: str) -> bool:
        return self._timeline.state_content(room_id, "m.room.create").get("type") == SPACE_ROOM_TYPE

    # ---- for other servers

    def for_server(self, origin: str, room_id: str, suggested_only: bool) -> dict[str, Any]:
        """`/hierarchy/{roomId}` for `origin`: the room, its children, the ones it may not see.

        404 `M_NOT_FOUND` when this server is not in the room or `origin` may
        not see it (the spec's one answer for both).
        """
        if not self._in_room(room_id) or not self._server_may_peek(origin, room_id):
            raise not_found(f"{room_id} is not a room this server can show to {origin}.")
        room = self._summary(room_id)
        room["children_state"] = (
            self._children(room_id, suggested_only) if self._is_space(room_id) else []
        )
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for child in room["children_state"][:MAX_CHILDREN_PER_SPACE]:
            child_id = child["state_key"]
            if not self._in_room(child_id):
                continue
            if self._server_may_peek(origin, child_id):
                children.append(self._summary(child_id))
            else:
                inaccessible.append(child_id)
        return {"room": room, "children": children, "inaccessible_children": inaccessible}

    # ---- for our clients

    async def walk(
        self,
        user_id: str,
        room_id: str,
        *,
        suggested_only: bool,
        max_depth: int | None,
        offset: int,
        limit: int,
        via: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the hierarchy and the offset of the next page."""
        if max_depth is not None and max_depth < 0:
            raise MatrixError(400, "M_INVALID_PARAM", "`max_depth` must not be negative.")
        deadline = trio.current_time() + WALK_BUDGET_SECONDS
        root = await self._resolve_root(user_id, room_id, suggested_only, via, deadline)
        rooms: list[dict[str, Any]] = []
        queue: deque[_Pending] = deque()
        seen = {room_id}

        def take(resolved: _Resolved, depth: int) -> None:
            rooms.append(resolved.chunk)
            if max_depth is not None and depth >= max_depth:
                return
            for child in resolved.chunk["children_state"]:
                child_id = child["state_key"]
                if child_id in seen or child_id in resolved.inaccessible:
                    continue
                seen.add(child_id)
                child_via = tuple(v for v in child["content"]["via"] if isinstance(v, str))
                queue.append(
                    _Pending(child_id, depth + 1, child_via, resolved.children.get(child_id))
                )

        take(root, 0)
        while queue and len(rooms) < offset + limit + 1 and len(seen) <= MAX_ROOMS_WALKED:
            pending = queue.popleft()
            resolved = await self._resolve(user_id, pending, suggested_only, max_depth, deadline)
            if resolved is not None:
                take(resolved, pending.depth)
        page = rooms[offset : offset + limit]
        more = len(rooms) > offset + limit or bool(queue)
        return page, (offset + limit if more else None)

    async def _resolve_root(
        self,
        user_id: str,
        room_id: str,
        suggested_only: bool,
        via: Sequence[str],
        deadline: float,
    ) -> _Resolved:
        if self._in_room(room_id) or self._remote is None:
            if self._known(room_id) and self._may_peek(user_id, room_id):
                return self._local(room_id, suggested_only)
            raise forbidden("You cannot see this space.")
        servers = list(via)
        with contextlib.suppress(InvalidIdentifier):  # room v12 ids name no server
            servers.append(server_name_of(room_id))
        if not servers:
            raise forbidden(
                "You cannot see this space: this server is not in it, and neither its id "
                "nor the request (`via`) names a server to ask."
            )
        try:
            space = await self._remote.space(
                room_id, servers, suggested_only, deadline=deadline, ignore_backoff=True
            )
        except SpaceUnavailable as error:
            if self._known(room_id) and self._may_peek(user_id, room_id):
                return self._local(room_id, suggested_only)
            if error.refused:
                raise forbidden(f"You cannot see this space: {error}") from None
            raise MatrixError(
                502, "M_UNKNOWN", f"The servers of this space could not be reached: {error}"
            ) from None
        resolved = self._remote_resolved(space, suggested_only)
        if not self._may_see_remote(user_id, room_id, resolved.chunk):
            raise forbidden("You cannot see this space.")
        return resolved

    async def _resolve(
        self,
        user_id: str,
        pending: _Pending,
        suggested_only: bool,
        max_depth: int | None,
        deadline: float,
    ) -> _Resolved | None:
        """The room as the user sees it, or None if they may not or no server has it."""
        room_id = pending.room_id
        if self._in_room(room_id) or self._remote is None:
            if self._known(room_id) and self._may_peek(user_id, room_id):
                return self._local(room_id, suggested_only)
            return None
        hint = pending.hint
        at_max_depth = max_depth is not None and pending.depth >= max_depth
        if hint is not None and (hint.get("room_type") != SPACE_ROOM_TYPE or at_max_depth):
            resolved = _Resolved({**hint, "children_state": []})
        else:
            try:
                space = await self._remote.space(
                    room_id, pending.via, suggested_only, deadline=deadline, ignore_backoff=False
                )
            except SpaceUnavailable:
                if self._known(room_id) and self._may_peek(user_id, room_id):
                    return self._local(room_id, suggested_only)
                return None
            resolved = self._remote_resolved(space, suggested_only)
        if not self._may_see_remote(user_id, room_id, resolved.chunk):
            return None
        return resolved

    def _local(self, room_id: str, suggested_only: bool) -> _Resolved:
        chunk = self._summary(room_id)
        chunk["children_state"] = self._children(room_id, suggested_only)
        return _Resolved(chunk)

    @staticmethod
    def _remote_resolved(space: RemoteSpace, suggested_only: bool) -> _Resolved:
        children_state = [
            child
            for child in space.children_state
            if not suggested_only or child["content"].get("suggested") is True
        ]
        chunk = {**space.room, "children_state": sorted(children_state, key=child_order)}
        return _Resolved(chunk, space.children, space.inaccessible)

    def _may_see_remote(self, user_id: str, room_id: str, summary: dict[str, Any]) -> bool:
        """May the user see a room summarised by another server? (Its server already
        decided that this one may: the rest is about the user.)"""
        if summary.get("world_readable") is True:
            return True
        if summary.get("join_rule") in ("public", "knock", "knock_restricted"):
            return True
        if self._state_cache.membership(room_id, user_id) in ("join", "invite"):
            return True
        allowed = summary.get("allowed_room_ids") or []
        return any(self._state_cache.is_joined(user_id, allowed_id) for allowed_id in allowed)

    async def room_summary(
        self, user_id: str | None, room_id: str, via: Sequence[str]
    ) -> dict[str, Any]:
        """MSC3266 / spec v1.15 "Room Summaries": the room's summary (no children), for
        `user_id` (None: an unauthenticated request, which sees only rooms anyone may
        peek at). A room this server is not in is asked of `via` (and the server its id
        names) through the federation `/hierarchy`. 404 when the room is unknown or the
        user may not see it, so its existence is not revealed."""
        hidden = not_found("Room not found, or you may not see it.")
        servers = list(via)
        with contextlib.suppress(InvalidIdentifier):  # room v12 ids name no server
            servers.append(server_name_of(room_id))
        if self._in_room(room_id) or self._remote is None or not servers:
            if self._known(room_id) and self._may_summarise(user_id, room_id):
                return self._summary(room_id)
            raise hidden
        try:
            space = await self._remote.space(
                room_id,
                servers,
                False,
                deadline=trio.current_time() + WALK_BUDGET_SECONDS,
                ignore_backoff=False,
            )
        except SpaceUnavailable as error:
            if self._known(room_id) and self._may_summarise(user_id, room_id):
                return self._summary(room_id)
            if error.refused:
                raise hidden from None
            raise MatrixError(
                502, "M_UNKNOWN", f"The servers of this room could not be reached: {error}"
            ) from None
        summary = dict(space.room)
        summary.pop("children_state", None)
        anyone = summary.get("world_readable") is True or summary.get("join_rule") in (
            "public",
            "knock",
            "knock_restricted",
        )
        if not anyone and (user_id is None or not self._may_see_remote(user_id, room_id, summary)):
            raise hidden
        return summary

    def is_known(self, room_id: str) -> bool:
        """Whether this server has the room's events (it was, or is, in it)."""
        return self._known(room_id)

    def _may_summarise(self, user_id: str | None, room_id: str) -> bool:
        if user_id is None:
            return self._peekable_by_anyone(room_id)
        return self._may_peek(user_id, room_id)


def child_order(child: dict[str, Any]) -> tuple[int, str, int, str]:
    """Sort key of `m.space.child` events (spec: spaces.md "Ordering"): a valid `order`
    first, in byte order; then by `origin_server_ts`; then by room id."""
    order = child.get("content", {}).get("order")
    valid = (
        isinstance(order, str)
        and len(order) <= MAX_ORDER_LENGTH
        and all(character in ORDER_CHARACTERS for character in order)
    )
    timestamp = child.get("origin_server_ts")
    return (
        0 if valid else 1,
        order if valid else "",
        timestamp if isinstance(timestamp, int) else 0,
        child.get("state_key", ""),
    )
