"""Room aliases on this server: `#name:server` → room id.

Spec: `content/client-server-api/_index.md`, "Room aliases" and
`data/api/client-server/directory.yaml`. Aliases live outside room state;
`m.room.canonical_alias` in the state only advertises some of them.
Who may delete an alias: its creator, or a user who may send
`m.room.canonical_alias` in the room, or a server admin.
"""

from __future__ import annotations

from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, join_key

TREES = ("alias_roomid", "alias_userid", "roomid_aliasid")


class Aliases:
    def __init__(self, db: Database) -> None:
        self._room = db.tree("alias_roomid")
        self._creator = db.tree("alias_userid")
        self._by_room = db.tree("roomid_aliasid")

    def resolve(self, alias: str) -> str | None:
        stored = self._room.get(alias.encode())
        return stored.decode() if stored is not None else None

    def creator(self, alias: str) -> str | None:
        stored = self._creator.get(alias.encode())
        return stored.decode() if stored is not None else None

    def set(self, alias: str, room_id: str, creator: str, batch: WriteBatch) -> None:
        batch.put(self._room, alias.encode(), room_id.encode())
        batch.put(self._creator, alias.encode(), creator.encode())
        batch.put(self._by_room, join_key(room_id, alias), b"")

    def remove(self, alias: str, batch: WriteBatch) -> None:
        room_id = self.resolve(alias)
        batch.delete(self._room, alias.encode())
        batch.delete(self._creator, alias.encode())
        if room_id is not None:
            batch.delete(self._by_room, join_key(room_id, alias))

    def local_aliases(self, room_id: str) -> list[str]:
        prefix = room_id.encode() + SEPARATOR
        return [key[len(prefix) :].decode() for key in self._by_room.keys_with_prefix(prefix)]
