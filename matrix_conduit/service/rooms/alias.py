"""Room aliases on this server: `#name:server` → room id.

Spec: `content/client-server-api/_index.md`, "Room aliases" and
`data/api/client-server/directory.yaml`. Aliases live outside room state;
`m.room.canonical_alias` in the state only advertises some of them.
Who may delete an alias: its creator, or a user who may send
`m.room.canonical_alias` in the room, or a server admin.

Appservices (application-service-api.md, "Server admin style permissions"):
an alias in an appservice's exclusive namespace is that appservice's alone
to make or delete (with its `as_token` or as one of its exclusive users), an
appservice makes aliases only in its own namespaces (else 400 `M_EXCLUSIVE`), and an
unknown alias in a namespace is asked of the appservice ("Querying").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ...errors import MatrixError
from ...storage import Database, WriteBatch
from ...storage.kv import SEPARATOR, join_key
from ..appservices import AppService, AppServices

TREES = ("alias_roomid", "alias_userid", "roomid_aliasid")


class Aliases:
    def __init__(self, db: Database) -> None:
        self._room = db.tree("alias_roomid")
        self._creator = db.tree("alias_userid")
        self._by_room = db.tree("roomid_aliasid")
        self.appservices: AppServices | None = None
        self.query_appservices: Callable[[str], Awaitable[str | None]] | None = None
        """Set by the wiring: `appservice_queries.resolve_alias`."""

    def resolve(self, alias: str) -> str | None:
        stored = self._room.get(alias.encode())
        return stored.decode() if stored is not None else None

    async def resolve_or_ask(self, alias: str) -> str | None:
        """The room of a local alias; one not known yet is asked of the appservices whose
        alias namespace it is in (they may create it while we wait)."""
        room_id = self.resolve(alias)
        if room_id is None and self.query_appservices is not None:
            room_id = await self.query_appservices(alias)
        return room_id

    def check_namespace(
        self, alias: str, user_id: str, appservice: AppService | None = None
    ) -> None:
        """400 `M_EXCLUSIVE` unless `user_id` (with `appservice`'s token, if any) may
        create or delete `alias` as far as appservice namespaces go."""
        if appservice is not None and not appservice.owns_alias(alias):
            raise MatrixError(
                400,
                "M_EXCLUSIVE",
                f"{alias} is outside the alias namespaces of appservice {appservice.id!r}.",
            )
        owner = self.appservices.exclusive_owner_of_alias(alias) if self.appservices else None
        if owner is not None and owner != appservice and not owner.exclusive_user(user_id):
            raise MatrixError(
                400, "M_EXCLUSIVE", f"{alias} is reserved by the appservice {owner.id!r}."
            )

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
