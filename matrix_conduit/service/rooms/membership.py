"""Membership changes: join, leave, invite, kick, ban, unban, knock, forget.

Spec: `content/client-server-api/_index.md`, "Room membership" and the
OpenAPI of `joining.yaml`, `inviting.yaml`, `leaving.yaml`, `kicking.yaml`,
`banning.yaml`, `knocking.yaml`. Each change is an `m.room.member` event that
the authorization rules judge; this service adds what the rules do not decide:
profile fields in the event, the checks a resident server makes for restricted
joins (is the user in one of the allowed rooms?), and clear errors for the
common mistakes before an event is even built. What needs another server
goes through `remote` (federation, `service/federation/remote_join.py`):
joining a room no user of ours is in, declining an invite to one, and
inviting a user of another server (whose server signs the invite first).
Once a room is shared, leaves, kicks, bans and unbans of remote members are
ordinary events here, which the federation outbox sends on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ...core.ids import InvalidIdentifier, UserId, is_on_server
from ...errors import MatrixError, forbidden, invalid_param, not_found
from ...storage import Database
from .builder import EventBuilder
from .state_cache import StateCache
from .timeline import Timeline


class Profiles(Protocol):
    def displayname(self, user_id: str) -> str | None: ...
    def avatar_url(self, user_id: str) -> str | None: ...
    def exists(self, user_id: str) -> bool: ...


class RemoteRooms(Protocol):
    """What federation does for rooms this server is not in, and for remote invitees."""

    async def join(
        self, room_id: str, user_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> str: ...
    def candidates(self, room_id: str, user_id: str, servers: Sequence[str]) -> list[str]: ...
    async def reject_invite(
        self, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> None: ...
    async def knock(
        self, room_id: str, user_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> str: ...
    async def invite(self, event: Mapping[str, Any]) -> dict[str, Any]: ...


RESTRICTED_RULES = ("restricted", "knock_restricted")
KNOCK_RULES = ("knock", "knock_restricted")


class Membership:
    def __init__(
        self,
        db: Database,
        server_name: str,
        builder: EventBuilder,
        timeline: Timeline,
        state_cache: StateCache,
        profiles: Profiles,
    ) -> None:
        self._db = db
        self._server_name = server_name
        self._builder = builder
        self._timeline = timeline
        self._state_cache = state_cache
        self._profiles = profiles
        self.remote: RemoteRooms | None = None
        """Set when federation is built: joins of rooms we are not in, rejected remote
        invites and invites of other servers' users go through it."""
        self.is_blocked: Callable[[str], bool] = lambda room_id: False
        """Set by the wiring: rooms an admin blocked (`service/room_purge.py`), which
        nobody joins or is invited to."""

    # ---- helpers

    def _check_not_blocked(self, room_id: str) -> None:
        if self.is_blocked(room_id):
            raise forbidden(f"{room_id} was blocked by the server's admin.")

    def _require_room(self, room_id: str) -> None:
        try:
            self._timeline.room_version(room_id)
        except KeyError:
            raise not_found(
                f"Room {room_id} is not known to this server (joining rooms on other "
                "servers needs federation)."
            ) from None

    def _profile_content(self, user_id: str, membership: str, reason: str | None) -> dict:
        content: dict[str, Any] = {"membership": membership}
        displayname = self._profiles.displayname(user_id)
        avatar_url = self._profiles.avatar_url(user_id)
        if displayname is not None:
            content["displayname"] = displayname
        if avatar_url is not None:
            content["avatar_url"] = avatar_url
        if reason is not None:
            content["reason"] = reason
        return content

    def _check_target(self, target: str) -> None:
        try:
            UserId.parse(target)
        except InvalidIdentifier as error:
            raise invalid_param(f"{target!r} is not a valid user id: {error}") from None
        ours = is_on_server(target, self._server_name)
        if ours and not self._profiles.exists(target):
            raise not_found(f"User {target} does not exist.")
        if not ours and self.remote is None:
            raise forbidden(
                f"{target} is on another server; inviting remote users needs federation."
            )

    async def _send_member(
        self, room_id: str, sender: str, target: str, content: Mapping[str, Any]
    ) -> str:
        return await self._builder.send(room_id, sender, "m.room.member", content, target)

    # ---- the actions

    def _is_resident(self, room_id: str) -> bool:
        """Whether one of our users is joined: only then can we add events ourselves."""
        return any(
            is_on_server(member, self._server_name)
            for member in self._state_cache.joined_members(room_id)
        )

    async def join(
        self,
        room_id: str,
        user_id: str,
        *,
        reason: str | None = None,
        servers: Sequence[str] = (),
    ) -> str:
        """Join a room; returns the join event's id.

        A room no user of ours is in is joined through one of its servers
        (`servers`, from the client's `via`, first), unless no other server
        has ever been in it (a local room everyone left).
        """
        self._check_not_blocked(room_id)
        content = self._profile_content(user_id, "join", reason)
        if (
            self.remote is not None
            and not self._is_resident(room_id)
            and self.remote.candidates(room_id, user_id, servers)
        ):
            return await self.remote.join(room_id, user_id, servers, content)
        self._require_room(room_id)
        async with self._builder.locks.hold(room_id) as guard:
            membership = self._state_cache.membership(room_id, user_id)
            if membership == "join":  # joined already: no event unless the content changes
                current = self._timeline.state_event(room_id, "m.room.member", user_id)
                if current is not None and _same_join(current.get("content") or {}, content):
                    return current["event_id"]
            join_rule = self._timeline.state_content(room_id, "m.room.join_rules").get("join_rule")
            room_version = self._timeline.room_version(room_id)
            if (
                membership not in ("join", "invite")
                and join_rule in RESTRICTED_RULES
                and room_version.restricted_join_rule
            ):
                content["join_authorised_via_users_server"] = self.restricted_join_authoriser(
                    room_id, user_id
                )
            return self._builder.send_locked(
                guard, room_id, user_id, "m.room.member", content, user_id
            )

    def restricted_join_authoriser(self, room_id: str, user_id: str) -> str:
        """A local member who may invite, if the user is in one of the allowed rooms.

        Spec: "Restricted rooms" (client-server and server-server) — the
        resident server checks the `allow` conditions and names a user of its
        own with the power to invite. 400 `M_UNABLE_TO_AUTHORISE_JOIN` when no
        allowed room is one this server is in (it cannot tell), 403 when the
        user is in none of them, 400 `M_UNABLE_TO_GRANT_JOIN` when no user
        here may invite (another server might).
        """
        allow = self._timeline.state_content(room_id, "m.room.join_rules").get("allow") or []
        allowed_rooms = [
            entry["room_id"]
            for entry in allow
            if isinstance(entry, dict)
            and entry.get("type") == "m.room_membership"
            and isinstance(entry.get("room_id"), str)
        ]
        if not any(self._is_resident(allowed) for allowed in allowed_rooms):
            raise MatrixError(
                400,
                "M_UNABLE_TO_AUTHORISE_JOIN",
                "This server is in none of the rooms this restricted room allows.",
            )
        if not any(self._state_cache.is_joined(user_id, allowed) for allowed in allowed_rooms):
            raise forbidden(
                "This room is restricted: you must be invited, or be a member of one of "
                "the rooms its join rules allow."
            )
        power_levels = self._timeline.power_levels(room_id)
        for member in self._state_cache.joined_members(room_id):
            if is_on_server(member, self._server_name) and power_levels.can_invite(member):
                return member
        raise MatrixError(
            400,
            "M_UNABLE_TO_GRANT_JOIN",
            "No user on this server is able to authorise joining this restricted room.",
        )

    async def leave(self, room_id: str, user_id: str, *, reason: str | None = None) -> str | None:
        """Leave a room, or decline an invite, or withdraw a knock.

        Returns the leave's event id, or None for an invite to a room no user
        of ours is in, declined through the inviting server (or only here if
        it cannot be reached).
        """
        membership = self._state_cache.membership(room_id, user_id)
        if membership not in ("join", "invite", "knock"):
            raise forbidden(f"You are not a member of {room_id}.")
        content: dict[str, Any] = {"membership": "leave"}
        if reason is not None:
            content["reason"] = reason
        if (
            membership in ("invite", "knock")
            and self.remote is not None
            and not self._is_resident(room_id)
        ):
            await self.remote.reject_invite(room_id, user_id, content)
            return None
        self._require_room(room_id)
        return await self._send_member(room_id, user_id, user_id, content)

    async def invite(
        self,
        room_id: str,
        sender: str,
        target: str,
        *,
        reason: str | None = None,
        is_direct: bool = False,
    ) -> str:
        self._check_not_blocked(room_id)
        self._require_room(room_id)
        self._check_target(target)
        current = self._state_cache.membership(room_id, target)
        if current == "join":
            raise forbidden(f"{target} is already in the room.")
        if (
            self._timeline.state_content(room_id, "m.room.member", target).get("membership")
            == "ban"
        ):
            raise forbidden(f"{target} is banned from the room.")
        content = self._profile_content(target, "invite", reason)
        if is_direct:
            content["is_direct"] = True
        if is_on_server(target, self._server_name) or self.remote is None:
            return await self._send_member(room_id, sender, target, content)
        async with self._builder.locks.hold(room_id) as guard:
            template = self._builder.template(room_id, sender, "m.room.member", content, target)
            event = self._builder.authorise_and_sign(guard, template)
            signed = await self.remote.invite(event)
            self._builder.append_signed(guard, signed)
        return event["event_id"]

    async def kick(
        self, room_id: str, sender: str, target: str, *, reason: str | None = None
    ) -> str:
        self._require_room(room_id)
        if self._state_cache.membership(room_id, target) not in ("join", "invite", "knock"):
            raise forbidden(f"{target} is not in the room.")
        content: dict[str, Any] = {"membership": "leave"}
        if reason is not None:
            content["reason"] = reason
        return await self._send_member(room_id, sender, target, content)

    async def ban(
        self, room_id: str, sender: str, target: str, *, reason: str | None = None
    ) -> str:
        self._require_room(room_id)
        try:
            UserId.parse(target)
        except InvalidIdentifier as error:
            raise invalid_param(f"{target!r} is not a valid user id: {error}") from None
        content: dict[str, Any] = {"membership": "ban"}
        if reason is not None:
            content["reason"] = reason
        return await self._send_member(room_id, sender, target, content)

    async def unban(
        self, room_id: str, sender: str, target: str, *, reason: str | None = None
    ) -> str:
        self._require_room(room_id)
        if (
            self._timeline.state_content(room_id, "m.room.member", target).get("membership")
            != "ban"
        ):
            raise forbidden(f"{target} is not banned.")
        content: dict[str, Any] = {"membership": "leave"}
        if reason is not None:
            content["reason"] = reason
        return await self._send_member(room_id, sender, target, content)

    async def knock(
        self,
        room_id: str,
        user_id: str,
        *,
        reason: str | None = None,
        servers: Sequence[str] = (),
    ) -> str:
        """Knock on a room (rooms v7+, join rule `knock` or `knock_restricted`); returns
        the knock's event id. A room no user of ours is in is knocked on through one of
        its servers (`servers`, from the client's `via`, first)."""
        self._check_not_blocked(room_id)
        if self._state_cache.membership(room_id, user_id) == "join":
            raise forbidden(f"You are already in {room_id}.")
        content = self._profile_content(user_id, "knock", reason)
        if (
            self.remote is not None
            and not self._is_resident(room_id)
            and self.remote.candidates(room_id, user_id, servers)
        ):
            return await self.remote.knock(room_id, user_id, servers, content)
        self._require_room(room_id)
        if not self._timeline.room_version(room_id).knock_join_rule:
            raise forbidden("This room's version does not support knocking.")
        join_rule = self._timeline.state_content(room_id, "m.room.join_rules").get("join_rule")
        if join_rule not in KNOCK_RULES:
            raise forbidden("This room does not accept knocks.")
        return await self._send_member(room_id, user_id, user_id, content)

    def forget(self, room_id: str, user_id: str) -> None:
        """Stop listing a left room for the user (`/forget`)."""
        if self._state_cache.membership(room_id, user_id) in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "You must leave the room before you can forget it.")
        with self._db.batch() as batch:
            self._state_cache.forget(batch, room_id, user_id)

    async def leave_everything(self, user_id: str) -> None:
        """Leave every joined room, decline every invite, withdraw every knock
        (a deactivated account keeps no memberships)."""
        rooms = (
            list(self._state_cache.joined_rooms(user_id))
            + [room_id for room_id, _ in self._state_cache.invited_rooms(user_id)]
            + [room_id for room_id, _ in self._state_cache.knocked_rooms(user_id)]
        )
        for room_id in rooms:
            with contextlib.suppress(MatrixError):  # e.g. a room that forbids leaving
                await self.leave(room_id, user_id)

    async def update_profile(self, user_id: str) -> None:
        """Re-send the user's join event in every joined room with their new profile."""
        for room_id in list(self._state_cache.joined_rooms(user_id)):
            current = self._timeline.state_content(room_id, "m.room.member", user_id)
            content = self._profile_content(user_id, "join", None)
            if {k: current.get(k) for k in content} == content and len(current) == len(content):
                continue
            try:
                await self._send_member(room_id, user_id, user_id, content)
            except MatrixError:
                continue  # e.g. the room's power levels no longer let them: keep going


def _same_join(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Is a new join with `wanted` content the join already there (as Synapse judges,
    leaving out who authorised a restricted join)?"""
    authoriser = "join_authorised_via_users_server"
    return {k: v for k, v in current.items() if k != authoriser} == dict(wanted)
