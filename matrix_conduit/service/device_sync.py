"""The end-to-end encryption sections of `/sync`, and the device list changes of `/keys/changes`.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`,
"Extensions to /sync" (`device_lists` on incremental syncs,
`device_one_time_keys_count`, `device_unused_fallback_key_types`) and
"Tracking the device list for a user" (its note: someone who starts sharing
a room again is `changed`, someone who no longer shares any room is `left`);
`send_to_device.md`, "Extensions to /sync"; `data/api/client-server/keys.yaml`,
`GET /keys/changes`.

Between two tokens, `changed` holds the user and everyone sharing a room with
them whose keys or device list changed, plus everyone who joined one of the
user's rooms and every member of a room the user joined. The spec allows
listing someone who joins a second shared room; that keeps this a scan of the
new membership events instead of a history of who shared what. `left` holds
those who left one of the user's rooms, or stayed in a room the user left,
and now share no room with the user.
"""

from __future__ import annotations

from typing import Any

from .key_changes import KeyChanges
from .keys import Keys
from .rooms import Rooms
from .to_device import ToDevice

LEAVING_MEMBERSHIPS = ("leave", "ban")


class DeviceSync:
    def __init__(
        self, keys: Keys, key_changes: KeyChanges, to_device: ToDevice, rooms: Rooms
    ) -> None:
        self._keys = keys
        self._key_changes = key_changes
        self._to_device = to_device
        self._state_cache = rooms.state_cache
        self._timeline = rooms.timeline

    def sync_sections(
        self, user_id: str, device_id: str | None, since: int | None, next_batch: int
    ) -> dict[str, Any]:
        """The E2EE parts of a `/sync` response from `since` to `next_batch`.

        Acknowledges (deletes) the to-device messages the sync from `since`
        confirms were received.
        """
        sections: dict[str, Any] = {}
        if since is not None:
            sections["device_lists"] = self.device_lists(user_id, since, next_batch)
        if device_id is not None:
            events = self._to_device.deliver(user_id, device_id, since, next_batch)
            sections["to_device"] = {"events": events}
            sections["device_one_time_keys_count"] = self._keys.one_time_key_counts(
                user_id, device_id
            )
            sections["device_unused_fallback_key_types"] = self._keys.unused_fallback_key_types(
                user_id, device_id
            )
        return sections

    def device_lists(self, user_id: str, since: int, until: int) -> dict[str, list[str]]:
        """`{"changed": [...], "left": [...]}` for `user_id` between the two positions."""
        changed = self._key_changes.changed_users(since, until)
        left: set[str] = set()
        for room_id in list(self._state_cache.joined_rooms(user_id)):
            for member, membership in self._membership_changes(room_id, since, until):
                if membership == "join":
                    if member == user_id:
                        changed.update(self._state_cache.joined_members(room_id))
                    changed.add(member)
                elif membership in LEAVING_MEMBERSHIPS:
                    left.add(member)
        for room_id in list(self._state_cache.left_rooms(user_id)):
            position = self._state_cache.membership_count(room_id, user_id) or 0
            if since < position <= until:
                left.update(self._state_cache.joined_members(room_id))
        sharing = self._key_changes.users_sharing_a_room(user_id) if changed or left else set()
        return {
            "changed": sorted(u for u in changed if u == user_id or u in sharing),
            "left": sorted(u for u in left if u != user_id and u not in sharing),
        }

    def _membership_changes(
        self, room_id: str, since: int, until: int
    ) -> list[tuple[str, str | None]]:
        """(user, membership) of the room's membership events in (`since`, `until`]."""
        changes: list[tuple[str, str | None]] = []
        if not self._timeline.changed_since(room_id, since):
            return changes  # a quiet room: no read of its timeline
        for position, event in self._timeline.events_before(room_id, until):
            if position <= since:
                break
            if event.get("type") == "m.room.member" and isinstance(event.get("state_key"), str):
                changes.append((event["state_key"], event.get("content", {}).get("membership")))
        return changes
