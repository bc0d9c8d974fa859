"""Account data: per-user settings, global or per room, synced to all the user's devices.

Spec: `content/client-server-api/modules/account_data.md` ("Client Config"),
`tags.md` (room tags are the `m.tag` room account data), `ignore_users.md`
(`m.ignored_user_list`), `read_markers.md` (`m.fully_read` is room account data
that only the server writes).

Each change takes a position on the global counter, so `/sync` can ask for the
types changed since a token. Storage (Conduit's trees; global account data
uses the empty room id):
- `roomuserdataid_accountdata`: room | user | position | type → `{"type", "content"}`;
  only the latest change of each type is kept, so a key range read from a
  position gives exactly the types changed after it.
- `roomusertype_roomuserdataid`: room | user | type → the key of its latest change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from ..core.ids import is_valid_user_id
from ..errors import MatrixError, bad_json
from ..storage import Database
from ..storage.kv import SEPARATOR, join_key, u64
from .coherence import Invalidations
from .globals import Globals
from .notifier import Notifier

TREES = ("roomuserdataid_accountdata", "roomusertype_roomuserdataid")

TAG_EVENT_TYPE = "m.tag"
IGNORED_USER_LIST_TYPE = "m.ignored_user_list"
FULLY_READ_TYPE = "m.fully_read"
SERVER_MANAGED_TYPES = frozenset({FULLY_READ_TYPE, "m.push_rules"})
"""Types clients may read but only the server writes (405 through the account data API)."""

MAX_TAG_BYTES = 255


class AccountData:
    def __init__(self, db: Database, globals_: Globals, notifier: Notifier) -> None:
        self._db = db
        self._globals = globals_
        self._notifier = notifier
        self._changes = db.tree("roomuserdataid_accountdata")
        self._latest = db.tree("roomusertype_roomuserdataid")
        self._started = globals_.current_count()
        self._last_change: dict[tuple[str, str], int] = {}
        """Each (user, room)'s newest change since start: `/sync` skips quiet rooms."""
        self.changed_elsewhere: list[Callable[[str, str | None, str], None]] = []
        """Called with (user, room or None, type) for a change another process made."""
        self._news = Invalidations(
            globals_.cluster, "account_data", self._news_from_elsewhere, self._forget_all
        )

    # ---- writing

    def set(self, user_id: str, room_id: str | None, event_type: str, content: dict) -> None:
        """Store `content` as the user's `event_type` (global when `room_id` is None)."""
        room = room_id or ""
        type_key = join_key(room, user_id, event_type)
        previous = self._latest.get(type_key)
        position = self._globals.next_count()
        change_key = join_key(room, user_id, u64(position), event_type)
        value = json.dumps({"type": event_type, "content": content}, ensure_ascii=False)
        with self._db.batch() as batch:
            if previous is not None:
                batch.delete(self._changes, previous)
            batch.put(self._changes, change_key, value.encode())
            batch.put(self._latest, type_key, change_key)
        self._last_change[(user_id, room)] = position
        self._news.tell([user_id, room, event_type, position])
        self._notifier.notify([user_id])

    def _news_from_elsewhere(self, item: list[Any]) -> None:
        user_id, room, event_type, position = item
        if position > self._last_change.get((user_id, room), 0):
            self._last_change[(user_id, room)] = position
        for callback in self.changed_elsewhere:
            callback(user_id, room or None, event_type)

    def _forget_all(self) -> None:
        """A message too big to say whose data changed: anyone's may have."""
        assert self._globals.cluster is not None
        self._started = self._globals.cluster.latest_position() + 1
        for callback in self.changed_elsewhere:
            callback("", None, "")

    def set_by_client(
        self, user_id: str, room_id: str | None, event_type: str, content: dict
    ) -> None:
        """`set` for the account data API: refuses server-managed types and bad shapes."""
        if event_type in SERVER_MANAGED_TYPES:
            raise MatrixError(
                405, "M_BAD_JSON", f"{event_type} is managed by the server and cannot be set."
            )
        if event_type == IGNORED_USER_LIST_TYPE and room_id is None:
            _check_ignored_user_list(content)
        self.set(user_id, room_id, event_type, content)

    # ---- reading

    def get(self, user_id: str, room_id: str | None, event_type: str) -> dict | None:
        change_key = self._latest.get(join_key(room_id or "", user_id, event_type))
        if change_key is None:
            return None
        stored = self._changes.get(change_key)
        return json.loads(stored)["content"] if stored is not None else None

    def changed_since(self, user_id: str, room_id: str, since: int) -> bool:
        """Whether the user's account data in the room may have changed after `since`
        (True when `since` is older than this process: only the database knows)."""
        return since < self._started or self._last_change.get((user_id, room_id), 0) > since

    def changes_since(self, user_id: str, room_id: str | None, since: int) -> list[dict]:
        """`{"type", "content"}` of each type whose latest change is after position `since`."""
        prefix = join_key(room_id or "", user_id) + SEPARATOR
        return [
            json.loads(value)
            for _, value in self._changes.iter_prefix(prefix, start=prefix + u64(since + 1))
        ]

    def ignored_users(self, user_id: str) -> set[str]:
        """Who `user_id` ignores (`m.ignored_user_list`): their events are not delivered."""
        content = self.get(user_id, None, IGNORED_USER_LIST_TYPE) or {}
        ignored = content.get("ignored_users")
        return set(ignored) if isinstance(ignored, dict) else set()

    # ---- account erasure

    def erase(self, user_id: str, room_ids: Iterable[str]) -> None:
        """Delete the user's global account data and that of `room_ids`: spec
        `account_deactivation.yaml`, `erase` ("erase any non-event data associated with
        the user, such as account data")."""
        with self._db.batch() as batch:
            for room in ("", *room_ids):
                prefix = join_key(room, user_id) + SEPARATOR
                for tree in (self._changes, self._latest):
                    for key in list(tree.keys_with_prefix(prefix)):
                        batch.delete(tree, key)

    # ---- room tags (`m.tag`)

    def tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        tags = (self.get(user_id, room_id, TAG_EVENT_TYPE) or {}).get("tags")
        return dict(tags) if isinstance(tags, dict) else {}

    def add_tag(self, user_id: str, room_id: str, tag: str, tag_info: dict[str, Any]) -> None:
        if len(tag.encode()) > MAX_TAG_BYTES:
            raise bad_json(f"A tag name has at most {MAX_TAG_BYTES} bytes.")
        order = tag_info.get("order")
        if order is not None and (not isinstance(order, int | float) or isinstance(order, bool)):
            raise bad_json("A tag's `order` must be a number.")
        self._set_tags(user_id, room_id, {**self.tags(user_id, room_id), tag: tag_info})

    def remove_tag(self, user_id: str, room_id: str, tag: str) -> None:
        tags = self.tags(user_id, room_id)
        if tags.pop(tag, None) is not None:
            self._set_tags(user_id, room_id, tags)

    def _set_tags(self, user_id: str, room_id: str, tags: dict[str, Any]) -> None:
        self.set(user_id, room_id, TAG_EVENT_TYPE, {"tags": tags})


def _check_ignored_user_list(content: dict) -> None:
    """The spec's shape: `{"ignored_users": {"@user:server": {}, ...}}`."""
    ignored = content.get("ignored_users")
    if not isinstance(ignored, dict):
        raise bad_json("`ignored_users` must be an object mapping user ids to objects.")
    for user_id, value in ignored.items():
        if not is_valid_user_id(user_id):
            raise bad_json(f"{user_id!r} in `ignored_users` is not a user id.")
        if not isinstance(value, dict):
            raise bad_json(f"The value for {user_id!r} in `ignored_users` must be an object.")
