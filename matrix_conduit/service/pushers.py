"""The user's pushers: where to send push notifications for them.

Spec: `content/client-server-api/modules/push.md` and
`data/api/client-server/pusher.yaml` (`GET /pushers`, `POST /pushers/set`).
A pusher is keyed by (app_id, pushkey); `append: false` removes the same
pushkey for other users (the device changed hands); `kind: null` deletes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from ..errors import MatrixError, bad_json
from ..storage import Database
from ..storage.kv import SEPARATOR, join_key
from .cluster import Cluster
from .coherence import Invalidations

TREES = ("senderkey_pusher", "pushkey_senderkey")

NOTIFY_PATH = "/_matrix/push/v1/notify"
REQUIRED = ("app_id", "pushkey", "app_display_name", "device_display_name", "lang", "data")


class Pushers:
    def __init__(self, db: Database, cluster: Cluster | None = None) -> None:
        self._db = db
        self._pushers = db.tree("senderkey_pusher")
        self._by_pushkey = db.tree("pushkey_senderkey")
        self._users_with_pushers: set[str] | None = None
        """Read once: each message asks, for every member, "any pushers?"."""
        self._changed = Invalidations(
            cluster, "pushers", lambda _item: self._forget_cache(), self._forget_cache
        )
        """Pushers another process set or removed: read the set again."""

    def has_pushers(self, user_id: str) -> bool:
        return user_id in self.users_with_pushers()

    def users_with_pushers(self) -> set[str]:
        """Every user with a pusher: a message's push fan-out starts from these (usually
        few), not from each of a big room's members."""
        if self._users_with_pushers is None:
            self._users_with_pushers = {
                key.split(SEPARATOR, 1)[0].decode() for key in self._pushers.keys_with_prefix()
            }
        return self._users_with_pushers

    def _forget_cache(self) -> None:
        self._users_with_pushers = None

    def of_user(self, user_id: str) -> list[dict[str, Any]]:
        return [
            json.loads(value)
            for _, value in self._pushers.iter_prefix(user_id.encode() + SEPARATOR)
        ]

    def set(self, user_id: str, body: dict[str, Any]) -> None:
        app_id, pushkey = body.get("app_id"), body.get("pushkey")
        if not isinstance(app_id, str) or not isinstance(pushkey, str):
            raise bad_json("`app_id` and `pushkey` are required strings.")
        if len(app_id) > 64 or len(pushkey.encode()) > 512:
            raise bad_json("`app_id` is at most 64 characters, `pushkey` 512 bytes.")
        key = join_key(user_id, app_id, pushkey)
        pushkey_key = join_key(app_id, pushkey, user_id)
        if body.get("kind") is None:
            with self._db.batch() as batch:
                batch.delete(self._pushers, key)
                batch.delete(self._by_pushkey, pushkey_key)
                batch.after_commit(self._forget_cache)
                self._changed.tell(None, batch)
            return
        self._validate(body)
        pusher = {name: body[name] for name in (*REQUIRED, "kind", "profile_tag") if name in body}
        with self._db.batch() as batch:
            if not body.get("append", False):
                for other_key, other_user in self._others_with(app_id, pushkey, user_id):
                    batch.delete(self._pushers, join_key(other_user, app_id, pushkey))
                    batch.delete(self._by_pushkey, other_key)
            batch.put(self._pushers, key, json.dumps(pusher).encode())
            batch.put(self._by_pushkey, pushkey_key, b"")
            batch.after_commit(self._forget_cache)
            self._changed.tell(None, batch)

    def _others_with(self, app_id: str, pushkey: str, user_id: str) -> list[tuple[bytes, str]]:
        prefix = join_key(app_id, pushkey, b"")
        return [
            (key, key[len(prefix) :].decode())
            for key in self._by_pushkey.keys_with_prefix(prefix)
            if key[len(prefix) :].decode() != user_id
        ]

    def remove(self, user_id: str, app_id: str, pushkey: str) -> None:
        """Drop a pusher the gateway rejected (spec: `rejected` pushkeys)."""
        with self._db.batch() as batch:
            batch.delete(self._pushers, join_key(user_id, app_id, pushkey))
            batch.delete(self._by_pushkey, join_key(app_id, pushkey, user_id))
            batch.after_commit(self._forget_cache)
            self._changed.tell(None, batch)

    @staticmethod
    def _validate(body: dict[str, Any]) -> None:
        for name in REQUIRED:
            if name not in body:
                raise MatrixError(400, "M_MISSING_PARAM", f"`{name}` is required.")
        kind = body["kind"]
        if kind not in ("http", "email"):
            raise bad_json('`kind` must be "http", "email" or null.')
        if kind == "email":
            raise MatrixError(
                400, "M_UNRECOGNIZED", "Email pushers are not supported by this server."
            )
        data = body["data"]
        if not isinstance(data, dict):
            raise bad_json("`data` must be an object.")
        if "url" not in data:
            raise MatrixError(400, "M_MISSING_PARAM", "HTTP pushers need `data.url`.")
        if not isinstance(data["url"], str):
            raise bad_json("`data.url` must be a string.")
        url = urlparse(data["url"])
        if url.scheme not in ("http", "https") or not url.netloc or url.path != NOTIFY_PATH:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"`data.url` must be an http(s) URL whose path is {NOTIFY_PATH}.",
            )
