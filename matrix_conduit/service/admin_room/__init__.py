"""Conduit's admin room: `#admins:<server_name>`, its bot `@conduit`, and its commands.

- `room`            the room (created at first start, admins invited with power 100),
                    the durable command queue fed by the Timeline, the dispatcher
- `parsing`         command lines, argparse that never exits, formatted replies
- `disabled_rooms`  `disable-room`: no joins or sends by local users, no federation
- `*_commands`      one module per group: users, appservices, rooms, media, server
                    (config, caches, registration, database), debug (PDUs, signatures)
"""

from __future__ import annotations

from .appservice_commands import commands as appservice_commands
from .debug_commands import commands as debug_commands
from .disabled_rooms import DisabledRooms
from .media_commands import commands as media_commands
from .parsing import Command
from .room import AdminRoom
from .room_commands import commands as room_commands
from .server_commands import commands as server_commands
from .user_commands import commands as user_commands


def all_commands() -> list[Command]:
    """Every admin room command."""
    return [
        *user_commands(),
        *appservice_commands(),
        *room_commands(),
        *media_commands(),
        *server_commands(),
        *debug_commands(),
    ]


__all__ = ["AdminRoom", "DisabledRooms", "all_commands"]
