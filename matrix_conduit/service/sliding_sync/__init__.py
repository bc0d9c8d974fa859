"""Simplified sliding sync (MSC4186): windows of the room list, by recency, on named connections.

Spec: MSC4186, with MSC3575's request shape (`ranges`, `required_state`
pairs) that clients send to
`/_matrix/client/unstable/org.matrix.simplified_msc3575/sync`, and the
extensions of MSC3884/3885/3959/3960/3961.

One module per concern: `requests` (the body, checked), `index` (each user's
rooms by bump stamp, kept in the events' batches), `lists` (a window of it),
`room_data` (one room's entry), `extensions`, `connections` (what each
`pos` told the client, on disk). This module puts a response together.

A response is built in one synchronous stretch up to the stream position
taken at its start (as `/sync` does), so every event is at or below exactly
one response's position for each room the connection follows: each room's
entry covers the events after the position the connection had it at, up to
the response's. Long-polling takes the notifier's listener before building
and waits only when nothing was new, then builds again.
"""

from __future__ import annotations

from typing import Any

import trio

from ..globals import Globals
from ..notifier import Notifier
from ..rooms import Rooms
from .connections import Connections, ConnectionState, SentRoom
from .extensions import ExtensionContext, Extensions
from .index import RoomIndex
from .lists import ListReader, Window
from .requests import RoomConfig, SlidingSyncBody, merged_sticky, parse_body
from .room_data import RoomData, RoomRequest

MAX_TIMEOUT_MS = 60_000


class SlidingSync:
    def __init__(
        self,
        globals_: Globals,
        notifier: Notifier,
        rooms: Rooms,
        index: RoomIndex,
        connections: Connections,
        services: Any,
    ) -> None:
        self._globals = globals_
        self._notifier = notifier
        self._rooms = rooms
        self.index = index
        self.connections = connections
        self._services = services
        self._room_data = RoomData(rooms, services, index.last_position)
        self._extensions = Extensions(services)
        self._lists = ListReader(
            index,
            self._dm_rooms,
            services.account_data.tags,
            self._invite_is_direct,
            self._space_children,
        )

    async def sync(
        self,
        user_id: str,
        device_id: str | None,
        pos: str | None,
        body: dict[str, Any],
        timeout_ms: int,
        set_presence: str = "online",
    ) -> dict[str, Any]:
        """One request of a connection: what is new since `pos`, waiting up to `timeout_ms`."""
        if set_presence != "offline":
            presence = self._services.presence
            if set_presence == "unavailable":
                presence.set_presence(user_id, "unavailable")
            else:
                presence.ping(user_id)
        conn_id = body.get("conn_id", "")
        if not isinstance(conn_id, str):
            conn_id = ""  # parse_body rejects it below, with its message
        device = device_id or ""
        state = self.connections.load(user_id, device, conn_id, pos)
        merged = merged_sticky(body, state.sticky)
        request = parse_body(merged)
        self.index.ensure_built(user_id)
        deadline = trio.current_time() + min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
        while True:
            listener = self._notifier.listener(user_id)
            response, news, new_state = self._build(user_id, device_id, request, state)
            new_state.sticky = {
                name: merged.get(name) for name in ("lists", "extensions", "room_subscriptions")
            }
            if news or pos is None or trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline):
                await listener.wait()
        if news or pos is None or new_state.sticky != state.sticky:
            # Saved also when only the sticky parameters changed: the next request builds on them.
            response["pos"] = self.connections.save(user_id, device, conn_id, pos, new_state)
        else:
            self.connections.touch(user_id, device, conn_id)
            response["pos"] = pos
        if isinstance(body.get("txn_id"), str):
            response["txn_id"] = body["txn_id"]
        return response

    # ---- building

    def _dm_rooms(self, user_id: str) -> set[str]:
        content = self._services.account_data.get(user_id, None, "m.direct") or {}
        rooms = set()
        for room_ids in content.values() if isinstance(content, dict) else ():
            if isinstance(room_ids, list):
                rooms.update(room for room in room_ids if isinstance(room, str))
        return rooms

    def _space_children(self, user_id: str, space_id: str) -> set[str]:
        """The rooms a joined space names in its `m.space.child` events (MSC4186 `spaces`)."""
        if not self._rooms.state_cache.is_joined(user_id, space_id):
            return set()
        children = set()
        timeline = self._rooms.timeline
        for (event_type, state_key), event_id in self._rooms.state.current_state_ids(
            space_id
        ).items():
            if event_type != "m.space.child":
                continue
            event = timeline.get_event(event_id)
            via = (event or {}).get("content", {}).get("via")
            if isinstance(via, list) and via:  # a child without `via` was removed
                children.add(state_key)
        return children

    def _invite_is_direct(self, user_id: str, room_id: str) -> bool:
        member = self._rooms.timeline.state_content(room_id, "m.room.member", user_id)
        if member:
            return member.get("is_direct") is True
        for room, stripped in self._rooms.state_cache.invited_rooms(user_id):
            if room == room_id:
                return any(
                    e.get("type") == "m.room.member"
                    and e.get("state_key") == user_id
                    and (e.get("content") or {}).get("is_direct") is True
                    for e in stripped
                )
        return False

    def _build(
        self,
        user_id: str,
        device_id: str | None,
        request: SlidingSyncBody,
        state: ConnectionState,
    ) -> tuple[dict[str, Any], bool, ConnectionState]:
        upto = self._globals.current_count()
        state_cache = self._rooms.state_cache
        windows: dict[str, Window] = {
            name: self._lists.window(user_id, list_request)
            for name, list_request in request.lists.items()
        }
        configs: dict[str, RoomConfig] = {}
        memberships: dict[str, str] = {}
        bumps: dict[str, int | None] = {}
        for name, window in windows.items():
            config = request.lists[name].config
            for room_id in window.room_ids:
                configs[room_id] = configs.get(room_id, config).combined(config)
                entry = window.entries[room_id]
                memberships[room_id] = entry.membership
                bumps[room_id] = entry.bump_stamp
        subscribed = []
        for room_id, config in request.subscriptions.items():
            membership = state_cache.membership(room_id, user_id)
            if membership not in ("join", "invite", "knock"):
                continue  # MSC4186: rooms the user may not see are ignored
            subscribed.append(room_id)
            configs[room_id] = configs.get(room_id, config).combined(config)
            memberships[room_id] = membership
            bumps.setdefault(room_id, self.index.bump_stamp(user_id, room_id))
        left: dict[str, int] = {}
        if state.stream is not None:
            for position, room_id in self.index.left_since(user_id, state.stream):
                if room_id in state.rooms and position <= upto and room_id not in configs:
                    left[room_id] = position
        ignored = frozenset(self._services.account_data.ignored_users(user_id))
        dm_rooms = self._dm_rooms(user_id)
        new_state = ConnectionState(upto, dict(state.rooms), {}, {})
        room_since: dict[str, int | None] = {}
        rooms: dict[str, Any] = {}
        for room_id, config in configs.items():
            sent = state.rooms.get(room_id)
            room_since[room_id] = sent.through if sent is not None else None
            membership = memberships[room_id]
            data = self._room_data.build(
                RoomRequest(
                    user_id=user_id,
                    device_id=device_id,
                    room_id=room_id,
                    membership=membership,
                    bump_stamp=bumps.get(room_id),
                    config=config,
                    sent_through=sent.through if sent is not None else None,
                    sent_config=sent.config if sent is not None else None,
                    sent_membership=sent.membership if sent is not None else None,
                    upto=upto,
                    live_after=state.stream,
                    is_dm=room_id in dm_rooms
                    or (membership == "invite" and self._invite_is_direct(user_id, room_id)),
                    ignored=ignored,
                )
            )
            if data is not None:
                rooms[room_id] = data
            new_state.rooms[room_id] = SentRoom(upto, config, membership)
        for room_id, position in left.items():
            sent = state.rooms[room_id]
            data = self._room_data.build(
                RoomRequest(
                    user_id=user_id,
                    device_id=device_id,
                    room_id=room_id,
                    membership="leave",
                    bump_stamp=position,
                    config=sent.config,
                    sent_through=sent.through,
                    sent_config=sent.config,
                    sent_membership=sent.membership,
                    upto=position,
                    live_after=state.stream,
                    is_dm=room_id in dm_rooms,
                    ignored=ignored,
                )
            )
            if data is not None:
                rooms[room_id] = data
            del new_state.rooms[room_id]
        lists_response = {}
        lists_changed = False
        for name, window in windows.items():
            summary = {"count": window.count, "ids": window.room_ids}
            new_state.lists[name] = summary
            lists_changed = lists_changed or state.lists.get(name) != summary
            lists_response[name] = {
                "count": window.count,
                "ops": window.ops(request.lists[name].ranges),
            }
        extensions = self._extensions.build(
            request.extensions,
            ExtensionContext(
                user_id=user_id,
                device_id=device_id,
                since=state.stream,
                upto=upto,
                room_since=room_since,
                list_rooms={name: window.room_ids for name, window in windows.items()},
                subscriptions=subscribed,
            ),
        )
        news = bool(rooms) or lists_changed or Extensions.has_news(extensions)
        response = {"lists": lists_response, "rooms": rooms, "extensions": extensions}
        return response, news, new_state
