"""The auth event graph as state resolution sees it: events fetched once, their auth links.

Spec: `content/rooms/fragments/v2-state-res.md`, definitions *auth chain* ("the events
reachable by walking the graph induced by an event's `auth_events` links") and *auth
difference*. State resolution only ever walks `auth_events` links, never `prev_events`.

Every event is fetched at most once per resolution, so the outcome cannot depend on the
order in which the algorithm happens to ask for events. An event that cannot be fetched
is a dead end: its id may appear in an auth chain, but it has no auth links of its own and
never takes part in ordering or auth checks.

The auth graph is a DAG for honest events (v3+ event ids are hashes of content that
includes `auth_events`). Room v1/v2 ids are chosen by the sender, so a cycle is possible
in principle; every walk here keeps a visited set and terminates regardless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any

Event = Mapping[str, Any]
EventFetcher = Callable[[str], Event | None]
AuthChainLookup = Callable[[str], set[str]]

CREATE_KEY = ("m.room.create", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")


def auth_event_ids(event: Event) -> list[str]:
    """The ids in an event's `auth_events`, in either PDU format.

    Rooms v1 and v2 list `[event_id, {hashes}]` pairs (`pdu_v1.yaml`); v3 and later list
    bare event ids (`pdu_v3.yaml`).
    """
    return [
        reference[0] if isinstance(reference, list | tuple) else reference
        for reference in event.get("auth_events", ())
    ]


class AuthDag:
    """Fetches events once each and answers auth-chain questions about them.

    `auth_chain`, when given, is the caller's cached auth chain of an event; without it,
    chains are computed by walking `auth_events`.
    """

    def __init__(
        self,
        fetch_event: EventFetcher,
        auth_chain: AuthChainLookup | None = None,
    ) -> None:
        self._fetch_event = fetch_event
        self._cached_auth_chain = auth_chain
        self._events: dict[str, Event | None] = {}

    def event(self, event_id: str) -> Event | None:
        """The event with this id, or None if the caller cannot supply it."""
        if event_id not in self._events:
            self._events[event_id] = self._fetch_event(event_id)
        return self._events[event_id]

    def has(self, event_id: str) -> bool:
        return self.event(event_id) is not None

    def auth_event_ids(self, event_id: str) -> list[str]:
        """The auth events an event cites; none for an event that cannot be fetched."""
        event = self.event(event_id)
        return [] if event is None else auth_event_ids(event)

    def auth_event_of_type(self, event_id: str, key: tuple[str, str]) -> str | None:
        """The id of the auth event of `event_id` with state key `key`, if it cites one."""
        for auth_id in self.auth_event_ids(event_id):
            auth_event = self.event(auth_id)
            if auth_event is not None and state_key_of(auth_event) == key:
                return auth_id
        return None

    def create_event_named_by_room_id(self, event: Event) -> Event | None:
        """The create event of a v12+ room, whose id is the room id with `$` for `!`.

        In those rooms events do not cite the create event (`content/rooms/v12.md`,
        auth rules, note on rule 3.2); the room id stands for it.
        """
        room_id = event.get("room_id")
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            return None
        return self.event("$" + room_id[1:])

    def auth_chain_union(
        self, event_ids: Iterable[str], *, known: Set[str] = frozenset()
    ) -> set[str]:
        """The union of the auth chains of `event_ids`, leaving out `known`.

        `known` must itself be closed under auth links (a union of auth chains): a walk
        that reaches it stops there, since everything beyond is in `known` too. This lets
        the auth difference walk the shared part of the room's auth graph only once.
        """
        if self._cached_auth_chain is not None:
            chain: set[str] = set()
            for event_id in event_ids:
                chain |= self._cached_auth_chain(event_id)
            return chain - known
        chain = set()
        pending = [auth_id for event_id in event_ids for auth_id in self.auth_event_ids(event_id)]
        while pending:
            auth_id = pending.pop()
            if auth_id in chain or auth_id in known:
                continue
            chain.add(auth_id)
            pending.extend(self.auth_event_ids(auth_id))
        return chain


class NearestMembers:
    """For any event, the members of a set first reached by walking its auth links.

    "First reached" means the walk stops at a member and does not look past it. The
    members reachable this way from every member form the auth-chain order restricted to
    the set, with paths through non-members kept: `x` is in the auth chain of `y` exactly
    when a chain of nearest-member steps leads from `y` to `x`. Results are memoised, so
    asking about many events walks each part of the graph once.
    """

    def __init__(self, dag: AuthDag, members: frozenset[str]) -> None:
        self._dag = dag
        self._members = members
        self._nearest: dict[str, frozenset[str]] = {}

    def of(self, event_id: str) -> frozenset[str]:
        """Members reached from `event_id`'s auth events without passing another member."""
        in_progress: set[str] = set()
        stack = [event_id]
        while stack:
            current = stack[-1]
            if current in self._nearest:
                stack.pop()
                continue
            parents = self._dag.auth_event_ids(current)
            unexplored = [
                parent
                for parent in parents
                if parent not in self._members
                and parent not in self._nearest
                and parent not in in_progress
            ]
            if current not in in_progress and unexplored:
                in_progress.add(current)
                stack.extend(unexplored)
                continue
            stack.pop()
            in_progress.discard(current)
            reached: set[str] = set()
            for parent in parents:
                if parent in self._members:
                    reached.add(parent)
                else:
                    reached |= self._nearest.get(parent, frozenset())
            self._nearest[current] = frozenset(reached)
        return self._nearest[event_id]

    def closure(self, event_ids: Iterable[str]) -> set[str]:
        """`event_ids` plus every member in the auth chain of any of them."""
        closed = set(event_ids)
        pending = list(closed)
        while pending:
            for member in self.of(pending.pop()):
                if member not in closed:
                    closed.add(member)
                    pending.append(member)
        return closed


def state_key_of(event: Event) -> tuple[str, str] | None:
    """The `(type, state_key)` an event fills in room state, or None for a non-state event."""
    state_key = event.get("state_key")
    return None if state_key is None else (event["type"], state_key)
