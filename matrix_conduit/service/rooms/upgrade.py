"""Room upgrades: `POST /rooms/{roomId}/upgrade`.

Spec: `content/client-server-api/modules/room_upgrades.md`, "Server
behaviour": check the tombstone power, create the replacement room with a
`predecessor`, copy the transferable state, move local aliases, tombstone the
old room and restrict its power levels. Members are not moved (no server can
impersonate users of others); so that members of an invite-only room can
follow the tombstone, the upgrading user invites the old room's members.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from ...core.ids import is_on_server
from ...core.power_levels import PowerLevels, integer_levels
from ...core.room_versions import KNOWN_ROOM_VERSIONS
from ...errors import MatrixError, forbidden
from ...storage import Database
from .alias import Aliases
from .builder import EventBuilder
from .create import RoomCreation, RoomSettings
from .membership import Membership
from .state_cache import StateCache
from .timeline import Timeline

TRANSFERRED_STATE = (
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
)


class RoomUpgrades:
    def __init__(
        self,
        timeline: Timeline,
        state_cache: StateCache,
        builder: EventBuilder,
        creation: RoomCreation,
        membership: Membership,
        aliases: Aliases,
        db: Database,
        server_name: str,
    ) -> None:
        self._timeline = timeline
        self._state_cache = state_cache
        self._builder = builder
        self._creation = creation
        self._membership = membership
        self._server_name = server_name
        self._aliases = aliases
        self._db = db

    async def upgrade(
        self,
        room_id: str,
        user_id: str,
        new_version: str,
        additional_creators: list[str] | None = None,
    ) -> str:
        """Upgrade the room; returns the replacement room's id."""
        if new_version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"Room version {new_version!r} is not supported by this server.",
            )
        try:
            self._timeline.room_version(room_id)
        except KeyError:
            raise forbidden(f"You are not a member of {room_id}.") from None
        if not self._state_cache.is_joined(user_id, room_id):
            raise forbidden(f"You are not a member of {room_id}.")
        old_levels = self._timeline.power_levels(room_id)
        if not old_levels.can_send(user_id, "m.room.tombstone", True):
            raise forbidden("You do not have the power to upgrade this room.")

        old_create = self._timeline.state_content(room_id, "m.room.create")
        creation_content: dict[str, Any] = {"predecessor": {"room_id": room_id}}
        if "type" in old_create:
            creation_content["type"] = old_create["type"]
        if additional_creators:
            creation_content["additional_creators"] = additional_creators
        initial_state = [
            {"type": event_type, "state_key": "", "content": content}
            for event_type in TRANSFERRED_STATE
            if (content := self._timeline.state_content(room_id, event_type))
        ]
        settings = RoomSettings(
            room_version=new_version,
            creation_content=creation_content,
            initial_state=initial_state,
            power_level_content_override=self._new_power_levels(room_id, user_id, new_version),
        )
        if KNOWN_ROOM_VERSIONS[new_version].room_id_is_create_event_id:
            # The new room's id comes from its create event: it exists before the
            # tombstone can name it, and its predecessor names no event.
            new_room_id = await self._creation.create(user_id, settings)
            tombstone_first = False
        else:
            new_room_id = await self._create_after_tombstone(room_id, user_id, settings)
            tombstone_first = True

        join_rule = self._timeline.state_content(room_id, "m.room.join_rules").get("join_rule")
        if join_rule != "public":
            for member in list(self._state_cache.joined_members(room_id)):
                if member != user_id and is_on_server(member, self._server_name):
                    try:
                        await self._membership.invite(new_room_id, user_id, member)
                    except MatrixError:
                        continue

        self._move_aliases(room_id, new_room_id)
        if not tombstone_first:
            await self._builder.send(
                room_id, user_id, "m.room.tombstone", _tombstone_content(new_room_id), ""
            )
        await self._restrict_old_room(room_id, user_id, old_levels)
        return new_room_id

    async def _create_after_tombstone(
        self, room_id: str, user_id: str, settings: RoomSettings
    ) -> str:
        """Create the replacement room whose `predecessor.event_id` is the old room's
        tombstone, as Synapse and Conduit do (clients and bridges follow it back).

        The tombstone is signed first, naming the new room's id chosen ahead, and
        appended once the new room exists; the old room's lock is held meanwhile,
        so the tombstone's place in the old room does not move, and a failed
        creation leaves the old room as it was.
        """
        new_room_id = self._creation.new_room_id()
        async with self._builder.locks.hold(room_id) as guard:
            template = self._builder.template(
                room_id, user_id, "m.room.tombstone", _tombstone_content(new_room_id), ""
            )
            tombstone = self._builder.authorise_and_sign(guard, template)
            creation_content = dict(settings.creation_content)
            creation_content["predecessor"] = {
                "room_id": room_id,
                "event_id": tombstone["event_id"],
            }
            await self._creation.create(
                user_id,
                dataclasses.replace(
                    settings, creation_content=creation_content, room_id=new_room_id
                ),
            )
            self._builder.append_signed(guard, tombstone)
        return new_room_id

    def _new_power_levels(self, room_id: str, user_id: str, new_version: str) -> dict[str, Any]:
        old_content = self._timeline.state_content(room_id, "m.room.power_levels")
        if not old_content:
            return {}
        content = integer_levels(old_content, self._timeline.room_version(room_id))
        users = dict(content.get("users") or {})
        new_room_version = KNOWN_ROOM_VERSIONS[new_version]
        if new_room_version.privileged_creators:
            users.pop(user_id, None)  # creators are implicit, infinite, and may not be listed
        else:
            users[user_id] = max(users.get(user_id, 0), 100)
        content["users"] = users
        return content

    def _move_aliases(self, old_room_id: str, new_room_id: str) -> None:
        with self._db.batch() as batch:
            for alias in self._aliases.local_aliases(old_room_id):
                creator = self._aliases.creator(alias) or ""
                self._aliases.remove(alias, batch)
                self._aliases.set(alias, new_room_id, creator, batch)

    async def _restrict_old_room(self, room_id: str, user_id: str, levels: PowerLevels) -> None:
        content = dict(self._timeline.state_content(room_id, "m.room.power_levels"))
        restricted = max(50, levels.property_level("users_default") + 1)
        content["events_default"] = restricted
        content["invite"] = restricted
        # The tombstone is what matters; the user may lack the right to change power levels.
        with contextlib.suppress(MatrixError):
            await self._builder.send(room_id, user_id, "m.room.power_levels", content, "")


def _tombstone_content(replacement_room: str) -> dict[str, str]:
    return {"body": "This room has been replaced", "replacement_room": replacement_room}
