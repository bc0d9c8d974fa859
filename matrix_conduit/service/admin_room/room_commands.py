"""Admin room commands about rooms: `list-rooms`, `disable-room`, `enable-room`, `purge-room`.

`disable-room` puts a room on `DisabledRooms` (local users can neither
join nor send, other servers get nothing of it). `purge-room` deletes the
local media the room's events refer to (uploads of this server), then hands
the room to the admin API's room deletion (`service/room_purge.py`: every
local member leaves, its aliases and directory entry go, local users forget
it; `--block` keeps anybody from joining again), then deletes the room's
events from before the purge (`Timeline.purge_events`) but its current state
(its version, and the auth of the leaves still to be sent, need it) and
disables the room, so that neither a local user nor another server reaches
what is left of it; it reports how it all ended.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

import trio

from ...core.ids import is_on_server
from ...errors import MatrixError
from ..room_purge import COMPLETE, FAILED, DeletionRequest
from .parsing import Command, Reply
from .room import CommandContext, new_parser

PURGE_WAIT_SECONDS = 60.0
"""How long `purge-room` waits for the deletion before answering with its status."""


def resolve_room(context: CommandContext, room: str) -> str:
    """A room id known here from a room id or a local alias; MatrixError otherwise."""
    rooms = context.services.rooms
    room_id = room
    if room.startswith("#"):
        resolved = rooms.aliases.resolve(room)
        if resolved is None:
            raise MatrixError(404, "M_NOT_FOUND", f"The alias {room} names no room here.")
        room_id = resolved
    elif not room.startswith("!"):
        raise MatrixError(400, "M_INVALID_PARAM", f"{room!r} is neither a room id nor an alias.")
    if rooms.short.short_room_id(room_id) is None:
        raise MatrixError(404, "M_NOT_FOUND", f"This server knows no room {room_id}.")
    return room_id


async def list_rooms(context: CommandContext, args: argparse.Namespace) -> Reply:
    services = context.services
    rooms = services.rooms
    disabled = services.disabled_rooms
    lines = []
    for room_id in sorted(rooms.short.room_ids()):
        members = len(rooms.state_cache.joined_members(room_id))
        name = rooms.timeline.state_content(room_id, "m.room.name").get("name")
        flag = " (disabled)" if disabled.is_disabled(room_id) else ""
        lines.append(f"{room_id}  members: {members}  name: {name or '-'}{flag}")
    return Reply.with_code(f"{len(lines)} rooms:", "\n".join(lines))


async def disable_room(context: CommandContext, args: argparse.Namespace) -> Reply:
    room_id = resolve_room(context, args.room)
    if room_id == context.admin_room.room_id:
        return Reply.text("The admin room cannot be disabled.")
    context.services.disabled_rooms.set_disabled(room_id, True, by=context.sender)
    return Reply.text(
        f"{room_id} is disabled: local users cannot join or send to it, "
        "and other servers get nothing of it."
    )


async def enable_room(context: CommandContext, args: argparse.Namespace) -> Reply:
    room_id = resolve_room(context, args.room)
    disabled = context.services.disabled_rooms
    if not disabled.is_disabled(room_id):
        return Reply.text(f"{room_id} is not disabled.")
    disabled.set_disabled(room_id, False, by=context.sender)
    return Reply.text(f"{room_id} is enabled again.")


def _mxc_uris(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.startswith("mxc://"):
            yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _mxc_uris(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _mxc_uris(inner)


def _delete_room_media(context: CommandContext, room_id: str) -> int:
    """Delete the local uploads the room's events refer to; how many went."""
    services = context.services
    found = {
        uri
        for _, event in services.rooms.timeline.events_after(room_id, 0)
        for uri in _mxc_uris(event.get("content"))
    }
    deleted = 0
    for uri in sorted(found):
        server_name, _, media_id = uri.removeprefix("mxc://").partition("/")
        if not is_on_server(server_name, services.config.server_name) or not media_id:
            continue
        with contextlib.suppress(MatrixError):  # gone already, or never an upload here
            services.media.delete_local(server_name, media_id)
            deleted += 1
    return deleted


async def purge_room(context: CommandContext, args: argparse.Namespace) -> Reply:
    room_id = resolve_room(context, args.room)
    if room_id == context.admin_room.room_id:
        return Reply.text("The admin room cannot be purged.")
    media = _delete_room_media(context, room_id)
    timeline = context.services.rooms.timeline
    up_to = timeline.last_position(room_id)
    room_purge = context.services.room_purge
    delete_id = room_purge.start(
        DeletionRequest(room_id, requester=context.sender, block=args.block, purge=True)
    )
    status: dict[str, Any] = room_purge.status(delete_id)
    with trio.move_on_after(PURGE_WAIT_SECONDS):
        while status["status"] not in (COMPLETE, FAILED):
            await trio.sleep(0.1)
            status = room_purge.status(delete_id)
    shutdown = status.get("shutdown_room") or {}
    events = 0
    if status["status"] == COMPLETE:
        context.services.disabled_rooms.set_disabled(room_id, True, by=context.sender)
        keep = set(context.services.rooms.state.current_state_ids(room_id).values())
        events = timeline.purge_events(room_id, up_to=up_to, keep=keep)
    summary = (
        f"Purge of {room_id}: {status['status']}; {events} events and {media} media "
        f"deleted, {len(shutdown.get('kicked_users') or [])} local members made to leave"
        + (", blocked" if args.block else "")
        + ("; the room stays disabled" if status["status"] == COMPLETE else "")
    )
    if status.get("error"):
        summary += f"; error: {status['error']}"
    return Reply.text(summary + ".")


def commands() -> list[Command]:
    listing = new_parser("list-rooms", "List the rooms this server knows.")
    disable = new_parser(
        "disable-room",
        "Disable a room: no joins or messages from local users, no federation for it.",
    )
    disable.add_argument("room", help="room id or alias")
    enable = new_parser("enable-room", "Undo disable-room.")
    enable.add_argument("room", help="room id or alias")
    purge = new_parser(
        "purge-room",
        "Delete a room here: its events and local media, members out, aliases gone.",
    )
    purge.add_argument("room", help="room id or alias")
    purge.add_argument("--block", action="store_true", help="and refuse joins of it from now on")
    return [
        Command(listing, list_rooms),
        Command(disable, disable_room),
        Command(enable, enable_room),
        Command(purge, purge_room),
    ]
