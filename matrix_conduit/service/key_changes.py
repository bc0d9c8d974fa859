"""Who changed their end-to-end keys, and when: the index behind `device_lists` and `/keys/changes`.

Spec: `content/client-server-api/modules/end_to_end_encryption.md`, "Tracking
the device list for a user" and "Extensions to /sync" (`device_lists.changed`:
users who updated their device identity or cross-signing keys);
`data/api/client-server/keys.yaml`, `GET /keys/changes`.

A change to a user's device keys, cross-signing keys or the signatures on them
takes a position on the global counter, written in the same batch as the
change (Conduit's trees):
- `userid_lastkeychange`: user → the position of their latest change;
- `keychangeid_userid`: position | user → empty. Only each user's latest
  change is kept, so reading from a position yields every user changed after
  it exactly once.

Changes to the device list itself (a device added, renamed or deleted) are
indexed the same way by the devices service; `changed_users` reads both.
Once a change commits, the user and everyone sharing a room with them are
woken, since their `/sync` now has news.
"""

from __future__ import annotations

from ..storage import Database, WriteBatch
from ..storage.kv import from_u64, join_key, u64
from .devices import Devices
from .globals import Globals
from .notifier import Notifier
from .rooms.state_cache import StateCache

TREES = ("userid_lastkeychange", "keychangeid_userid")

_POSITION_BYTES = len(u64(0))


class KeyChanges:
    def __init__(
        self,
        db: Database,
        globals_: Globals,
        devices: Devices,
        state_cache: StateCache,
        notifier: Notifier,
    ) -> None:
        self._globals = globals_
        self._devices = devices
        self._state_cache = state_cache
        self._notifier = notifier
        self._last_change = db.tree("userid_lastkeychange")
        self._changes = db.tree("keychangeid_userid")

    def record(self, batch: WriteBatch, user_id: str) -> None:
        """Note, in `batch`, that `user_id`'s keys change now; wake the interested once written."""
        position = self._globals.next_count()
        previous = self._last_change.get(user_id.encode())
        if previous is not None:
            batch.delete(self._changes, join_key(previous, user_id))
        batch.put(self._last_change, user_id.encode(), u64(position))
        batch.put(self._changes, join_key(u64(position), user_id), b"")
        batch.after_commit(lambda: self.notify_interested(user_id))

    def device_deleted(self, batch: WriteBatch, user_id: str, device_id: str) -> None:
        """`Devices.device_deleted` hook: a deleted device's keys are gone, so others must know."""
        batch.after_commit(lambda: self.notify_interested(user_id))

    def notify_interested(self, user_id: str) -> None:
        """Wake the `/sync` of `user_id` and of everyone who shares a room with them."""
        self._notifier.notify(self.users_sharing_a_room(user_id) | {user_id})

    def users_sharing_a_room(self, user_id: str) -> set[str]:
        """Everyone joined to a room `user_id` is joined to (themselves included, if in any)."""
        users = set()
        for room_id in list(self._state_cache.joined_rooms(user_id)):
            users.update(self._state_cache.joined_members(room_id))
        return users

    def changed_users(self, since: int, until: int) -> set[str]:
        """Users whose keys or device list last changed in (`since`, `until`].

        A user whose latest change is after `until` is left out: that change is
        reported by the next range, which covers the earlier one as well.
        """
        changed = set()
        for key, _ in self._changes.iter_prefix(start=u64(since + 1)):
            if from_u64(key[:_POSITION_BYTES]) > until:
                break
            changed.add(key[_POSITION_BYTES + 1 :].decode())
        for user_id in self._devices.users_with_device_list_changes(since):
            version = self._devices.device_list_version(user_id)
            if version is not None and version <= until:
                changed.add(user_id)
        return changed
