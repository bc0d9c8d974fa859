"""Creating rooms: `POST /createRoom` and the new room of an upgrade.

Spec: `data/api/client-server/create_room.yaml` — the events of a new room in
the order the spec gives (create, the creator's join, power levels, canonical
alias, the preset's join rules / history visibility / guest access,
`initial_state`, name, topic, invites), each authorised like any other event.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...core.ids import InvalidIdentifier, RoomAlias
from ...core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version
from ...errors import MatrixError, forbidden
from ...storage import Database
from .alias import Aliases
from .builder import EventBuilder
from .directory import Directory
from .locks import RoomGuard
from .membership import Membership, Profiles

PRESETS: Mapping[str, tuple[str, str, str]] = {
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", "forbidden"),
}
"""preset → (join_rule, history_visibility, guest_access), spec table."""


@dataclass
class RoomSettings:
    """What `/createRoom` (or an upgrade) asks for; the API layer fills it from JSON."""

    room_version: str
    preset: str = "private_chat"
    visibility: str = "private"
    creation_content: Mapping[str, Any] = field(default_factory=dict)
    initial_state: Sequence[Mapping[str, Any]] = ()
    name: str | None = None
    topic: str | None = None
    invite: Sequence[str] = ()
    is_direct: bool = False
    power_level_content_override: Mapping[str, Any] | None = None
    room_alias_name: str | None = None
    room_id: str | None = None
    """The id to give a room before v12 (an upgrade names it in the tombstone first)."""


def default_power_levels(
    creator: str, room_version: RoomVersion, trusted: Sequence[str]
) -> dict[str, Any]:
    """The spec's default `m.room.power_levels` for a new room."""
    tombstone_level = 150 if room_version.privileged_creators else 100
    users: dict[str, int] = {}
    if not room_version.privileged_creators:
        users[creator] = 100
        for user_id in trusted:
            users[user_id] = 100
    return {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": tombstone_level,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": {"room": 50},
    }


class RoomCreation:
    def __init__(
        self,
        db: Database,
        server_name: str,
        builder: EventBuilder,
        membership: Membership,
        aliases: Aliases,
        directory: Directory,
        profiles: Profiles,
        *,
        allow_encryption: bool,
    ) -> None:
        self._db = db
        self._server_name = server_name
        self._builder = builder
        self._membership = membership
        self._aliases = aliases
        self._directory = directory
        self._profiles = profiles
        self._allow_encryption = allow_encryption

    def _alias_for(self, name: str) -> str:
        alias = f"#{name}:{self._server_name}"
        try:
            RoomAlias.parse(alias)
        except InvalidIdentifier as error:
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room_alias_name: {error}") from None
        if ":" in name or "#" in name:
            raise MatrixError(400, "M_INVALID_PARAM", "room_alias_name is only the local part.")
        if self._aliases.resolve(alias) is not None:
            raise MatrixError(400, "M_ROOM_IN_USE", f"The alias {alias} is already in use.")
        return alias

    def new_room_id(self) -> str:
        """A fresh room id of this server (rooms before v12)."""
        return f"!{secrets.token_urlsafe(18)}:{self._server_name}"

    async def create(self, creator: str, settings: RoomSettings) -> str:
        """Create the room; returns its id. Errors leave no half-made alias behind."""
        if settings.room_version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"Room version {settings.room_version!r} is not supported by this server.",
            )
        room_version = get_room_version(settings.room_version)
        if settings.preset not in PRESETS:
            raise MatrixError(400, "M_BAD_JSON", f"Unknown preset {settings.preset!r}.")
        alias = self._alias_for(settings.room_alias_name) if settings.room_alias_name else None
        if alias is not None:
            self._aliases.check_namespace(alias, creator)  # appservice namespaces
        if not self._allow_encryption and any(
            event.get("type") == "m.room.encryption" for event in settings.initial_state
        ):
            raise forbidden("Encryption is disabled on this server.")

        trusted = list(settings.invite) if settings.preset == "trusted_private_chat" else []
        creation_content = dict(settings.creation_content)
        creation_content["room_version"] = room_version.identifier
        if not room_version.implicit_room_creator:
            creation_content["creator"] = creator
        if room_version.privileged_creators and trusted:
            existing = creation_content.get("additional_creators") or []
            creation_content["additional_creators"] = list(dict.fromkeys([*existing, *trusted]))

        room_id = None
        if not room_version.room_id_is_create_event_id:
            room_id = settings.room_id or self.new_room_id()
        room_id, _ = await self._builder.create_room_event(
            room_id, creator, creation_content, room_version
        )
        if alias is not None:
            with self._db.batch() as batch:
                self._aliases.set(alias, room_id, creator, batch)
        async with self._builder.locks.hold(room_id) as guard:
            try:
                self._initial_events(
                    guard, room_id, creator, settings, room_version, trusted, alias
                )
            except MatrixError as error:
                if error.errcode == "M_FORBIDDEN":
                    raise MatrixError(
                        400, "M_INVALID_ROOM_STATE", f"The room's initial state: {error.message}"
                    ) from None
                raise
        for user_id in settings.invite:
            await self._membership.invite(room_id, creator, user_id, is_direct=settings.is_direct)
        if settings.visibility == "public":
            with self._db.batch() as batch:
                self._directory.set_public(room_id, True, batch)
        return room_id

    def _initial_events(
        self,
        guard: RoomGuard,
        room_id: str,
        creator: str,
        settings: RoomSettings,
        room_version: RoomVersion,
        trusted: Sequence[str],
        alias: str | None,
    ) -> None:
        send = functools.partial(self._builder.send_locked, guard)
        join_content: dict[str, Any] = {"membership": "join"}
        for key, value in (
            ("displayname", self._profiles.displayname(creator)),
            ("avatar_url", self._profiles.avatar_url(creator)),
        ):
            if value is not None:
                join_content[key] = value
        send(room_id, creator, "m.room.member", join_content, creator)

        power_levels = default_power_levels(creator, room_version, trusted)
        power_levels.update(settings.power_level_content_override or {})
        send(room_id, creator, "m.room.power_levels", power_levels, "")

        if alias is not None:
            send(room_id, creator, "m.room.canonical_alias", {"alias": alias}, "")

        join_rule, history_visibility, guest_access = PRESETS[settings.preset]
        send(room_id, creator, "m.room.join_rules", {"join_rule": join_rule}, "")
        send(
            room_id,
            creator,
            "m.room.history_visibility",
            {"history_visibility": history_visibility},
            "",
        )
        send(room_id, creator, "m.room.guest_access", {"guest_access": guest_access}, "")

        for event in settings.initial_state:
            send(
                room_id,
                creator,
                event["type"],
                event.get("content") or {},
                event.get("state_key", ""),
            )
        if settings.name is not None:
            send(room_id, creator, "m.room.name", {"name": settings.name}, "")
        if settings.topic is not None:
            topic_content = {
                "topic": settings.topic,
                # m.room.topic's schema: an object whose `m.text` lists the renderings.
                "m.topic": {"m.text": [{"body": settings.topic, "mimetype": "text/plain"}]},
            }
            send(room_id, creator, "m.room.topic", topic_content, "")
