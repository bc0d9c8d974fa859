"""A small room builder for state resolution tests: named events on a DAG of forks.

Each event is built the way a homeserver builds one (server-server API, "Auth events
selection"): its `prev_events` are the events named in `after`, the state before it is
the resolution of the states after those (through the code under test, as every server
does it), its `auth_events` are selected from that state, `depth` is one more than its
deepest prev event, and `origin_server_ts` counts up in the order events are added, so
"earlier" in a scenario means smaller timestamp. The builder refuses an event that the
authorisation rules reject against its own auth events: a scenario only holds events a
real room could contain. No signatures: state resolution does not look at them.

Event ids are readable (`$PA`, or `$PA:example.com` in rooms v1–v2, whose ids carry a
server name), and `names()` turns a state map back into names for assertion messages.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from matrix_conduit.core.auth import auth_types_for_event, check_auth
from matrix_conduit.core.room_versions import EventFormat, RoomVersion, get_room_version
from matrix_conduit.core.state_res import resolve_state

ALICE = "@alice:example.com"
BOB = "@bob:example.com"
CHARLIE = "@charlie:example.com"
ELLA = "@ella:example.com"
ZARA = "@zara:example.com"

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
TOPIC = "m.room.topic"
MESSAGE = "m.room.message"


class NotAllowed(Exception):
    """The auth rules reject the event against its own auth events."""


class Room:
    """A room under construction; events are referred to by name."""

    def __init__(self, version: str = "10") -> None:
        self.room_version: RoomVersion = get_room_version(version)
        self.events: dict[str, dict[str, Any]] = {}
        self._state_after: dict[str, StateMap] = {}
        self._clock = itertools.count(1)

    # --- building ---------------------------------------------------------------------

    def add(
        self,
        name: str,
        event_type: str,
        sender: str,
        content: Mapping[str, Any] | None = None,
        *,
        state_key: str | None = None,
        after: Sequence[str] = (),
        origin_server_ts: int | None = None,
    ) -> str:
        """Add the event `name` after the events named in `after`; return its id."""
        event_id = self.id_of(name)
        assert event_id not in self.events, f"{name} is already in the room"
        prev_ids = [self.id_of(prev) for prev in after]
        state_before = self.state_after(*after)
        content = dict(content or {})
        auth_keys = auth_types_for_event(event_type, sender, state_key, content, self.room_version)
        auth_ids = [state_before[key] for key in auth_keys if key in state_before]
        event: dict[str, Any] = {
            "event_id": event_id,
            "type": event_type,
            "sender": sender,
            "content": content,
            "prev_events": self._references(prev_ids),
            "auth_events": self._references(auth_ids),
            "depth": max((self.events[prev]["depth"] for prev in prev_ids), default=0) + 1,
            "origin_server_ts": (
                next(self._clock) if origin_server_ts is None else origin_server_ts
            ),
        }
        if not (event_type == CREATE and self.room_version.room_id_is_create_event_id):
            event["room_id"] = self.room_id
        if state_key is not None:
            event["state_key"] = state_key
        rejection = check_auth(event, self._auth_map(event, auth_ids), self.room_version)
        if rejection is not None:
            raise NotAllowed(f"{name}: {rejection}")
        self.events[event_id] = event
        self._state_after[event_id] = (
            state_before
            if state_key is None
            else {**state_before, (event_type, state_key): event_id}
        )
        return event_id

    def member(
        self,
        name: str,
        sender: str,
        membership: str,
        *,
        target: str | None = None,
        after: Sequence[str],
    ) -> str:
        """An `m.room.member` event of `target` (the sender by default)."""
        return self.add(
            name,
            MEMBER,
            sender,
            {"membership": membership},
            state_key=target or sender,
            after=after,
        )

    def power_levels(
        self,
        name: str,
        sender: str,
        users: Mapping[str, int],
        *,
        after: Sequence[str],
        **others: Any,
    ) -> str:
        return self.add(
            name, POWER_LEVELS, sender, {"users": dict(users), **others}, state_key="", after=after
        )

    def topic(self, name: str, sender: str, *, after: Sequence[str], **kwargs: Any) -> str:
        return self.add(name, TOPIC, sender, {"topic": name}, state_key="", after=after, **kwargs)

    def join_rules(self, name: str, sender: str, join_rule: str, *, after: Sequence[str]) -> str:
        return self.add(
            name, JOIN_RULES, sender, {"join_rule": join_rule}, state_key="", after=after
        )

    # --- looking ----------------------------------------------------------------------

    def id_of(self, name: str) -> str:
        if self.room_version.event_format is EventFormat.V1:
            return f"${name}:example.com"
        return f"${name}"

    @property
    def room_id(self) -> str:
        if self.room_version.room_id_is_create_event_id:
            return "!" + self.id_of("CREATE")[1:]
        return "!room:example.com"

    def fetch(self, event_id: str) -> dict[str, Any] | None:
        return self.events.get(event_id)

    def state_after(self, *names: str) -> StateMap:
        """The state after the named events: resolved if there are several."""
        return self.resolve([self._state_after[self.id_of(name)] for name in names])

    def resolve(self, state_sets: Sequence[Mapping[StateKey, str]], **options: Any) -> StateMap:
        return resolve_state(self.room_version, state_sets, self.fetch, **options)

    def with_events(self, state: Mapping[StateKey, str], *names: str) -> StateMap:
        """`state` with each named event put in its place."""
        updated = dict(state)
        for name in names:
            event = self.events[self.id_of(name)]
            updated[(event["type"], event["state_key"])] = event["event_id"]
        return updated

    def names(self, state: Mapping[StateKey, str]) -> dict[str, str]:
        """A state map as `"type|state_key" -> event name`, for readable assertions."""
        return {
            f"{event_type}|{state_key}": self.name_of(event_id)
            for (event_type, state_key), event_id in sorted(state.items())
        }

    def name_of(self, event_id: str) -> str:
        return event_id[1:].removesuffix(":example.com")

    def auth_chain_of(self, event_id: str) -> set[str]:
        """An event's auth chain, walked here as a caller's cache would have it."""
        chain: set[str] = set()
        pending = self._auth_ids(self.events[event_id])
        while pending:
            auth_id = pending.pop()
            if auth_id not in chain:
                chain.add(auth_id)
                pending.extend(self._auth_ids(self.events[auth_id]))
        return chain

    # --- details ----------------------------------------------------------------------

    def _references(self, event_ids: Iterable[str]) -> list[Any]:
        """Room v1/v2 reference events as `[id, hashes]` pairs; later versions by id."""
        if self.room_version.event_format is EventFormat.V1:
            return [[event_id, {"sha256": "unchecked"}] for event_id in event_ids]
        return list(event_ids)

    def _auth_ids(self, event: Mapping[str, Any]) -> list[str]:
        return [ref[0] if isinstance(ref, list) else ref for ref in event["auth_events"]]

    def _auth_map(
        self, event: Mapping[str, Any], auth_ids: Iterable[str]
    ) -> dict[StateKey, Mapping[str, Any]]:
        auth_map = {
            (self.events[auth_id]["type"], self.events[auth_id]["state_key"]): self.events[auth_id]
            for auth_id in auth_ids
        }
        create_id = self.id_of("CREATE")
        if create_id in self.events and event["type"] != CREATE:
            auth_map[(CREATE, "")] = self.events[create_id]
        return auth_map


def start_room(version: str = "10") -> Room:
    """The room most scenarios start from, as a straight line of events.

    CREATE (alice) → IMA alice joins → IPOWER alice 100 → IJR public → IMB bob joins →
    IMC charlie joins → IMZ zara joins → START (a message by zara). Timestamps 1–8 in
    that order; bob, charlie and zara have power 0 (users_default).
    """
    room = Room(version)
    create_content: dict[str, Any] = {"room_version": version}
    if not room.room_version.implicit_room_creator:
        create_content["creator"] = ALICE
    room.add("CREATE", CREATE, ALICE, create_content, state_key="")
    room.member("IMA", ALICE, "join", after=["CREATE"])
    alice_level = {} if room.room_version.privileged_creators else {ALICE: 100}
    room.power_levels("IPOWER", ALICE, alice_level, after=["IMA"])
    room.join_rules("IJR", ALICE, "public", after=["IPOWER"])
    room.member("IMB", BOB, "join", after=["IJR"])
    room.member("IMC", CHARLIE, "join", after=["IMB"])
    room.member("IMZ", ZARA, "join", after=["IMC"])
    room.add("START", MESSAGE, ZARA, {"body": "start"}, after=["IMZ"])
    return room


def admin_levels(room: Room, **users: int) -> dict[str, int]:
    """A `users` map: alice at 100 (left out where creators may not be listed, v12+)."""
    levels = {} if room.room_version.privileged_creators else {ALICE: 100}
    levels.update({f"@{localpart}:example.com": level for localpart, level in users.items()})
    return levels
