"""The admin room `#admins:<server_name>` and its command dispatcher (Conduit's admin room).

On first start the server user `@conduit:<server_name>` creates the room;
every server admin (`Users.is_admin`: the first account, `create-user
--admin`, `make-user-admin`) is invited to it and given power level 100, at
start-up (so an account made offline by `matrix-conduit create-user --admin`
is invited at the next start) and as soon as an account becomes admin.

A message in the room whose first line starts with `!admin` or the server
user's id is a command (`parsing.py`). The Timeline `appending` hook writes
it to `adminroom_commandqueue` in the batch that stores the message, so the
sender's request never waits for the command and a restart loses none; the
background task `run` takes the queue in order, runs each command and
answers with an `m.notice` from the server user, written in the same batch
that deletes the queue entry (each command answered once). Whatever a
command raises becomes a reply: bad arguments get the usage, an unexpected
error is logged and reported, and the task goes on.

Only server admins (and the server user, reachable with `emergency_password`
to recover the room) may run commands; others in the room are told so.

Trees: `adminroom_info` (b"room_id" → the room's id), `adminroom_commandqueue`
(stream position, u64 → the command's event id), `adminroom_invited` (the admins
invited once: one who leaves the room is invited again only by `make-user-admin`).
"""

from __future__ import annotations

import argparse
import html
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ...errors import MatrixError
from ...storage import WriteBatch
from ...storage.kv import u64
from ..rooms.create import RoomSettings
from ..rooms.event_context import EventContext
from .parsing import (
    COMMAND_PREFIX,
    Command,
    CommandParser,
    HelpRequested,
    Reply,
    UsageError,
    command_line,
)

if TYPE_CHECKING:
    from .. import Services

log = logging.getLogger(__name__)

TREES = ("adminroom_info", "adminroom_commandqueue", "adminroom_invited")

ADMIN_POWER_LEVEL = 100
MAX_REPLY_CHARS = 24_000
"""Each of `body` and `formatted_body` is cut there: an event stays under 64 KiB."""
_ROOM_ID = b"room_id"
RETRY_SECONDS = 60.0
"""How long the task waits to try again when creating the room failed."""


@dataclass
class CommandContext:
    """What a command handler gets besides its arguments."""

    services: Services
    admin_room: AdminRoom
    sender: str
    code_block: str | None
    event_id: str


class AdminRoom:
    def __init__(self, services: Services, commands: Iterable[Command]) -> None:
        self._services = services
        db = services.db
        self._db = db
        self._info = db.tree("adminroom_info")
        self._queue = db.tree("adminroom_commandqueue")
        self._invited = db.tree("adminroom_invited")
        self.server_name = services.config.server_name
        self.server_user_id = services.users.server_user_id
        self.alias = f"#admins:{self.server_name}"
        self.commands: dict[str, Command] = {command.name: command for command in commands}
        self._room_id: str | None = None
        self._work = trio.Event()
        self.answered: list[str] = []
        """Event ids of the commands answered since start-up, in order (for tests)."""

    # ------------------------------------------------------------ the room

    @property
    def room_id(self) -> str | None:
        """The admin room's id; None until `run` has created it."""
        if self._room_id is None:
            stored = self._info.get(_ROOM_ID)
            self._room_id = None if stored is None else stored.decode()
        return self._room_id

    async def _ensure_room(self) -> str:
        room_id = self.room_id
        if room_id is not None:
            return room_id
        rooms = self._services.rooms
        room_id = rooms.aliases.resolve(self.alias)
        if room_id is None:
            settings = RoomSettings(
                room_version=self._services.config.default_room_version,
                preset="private_chat",
                name=f"{self.server_name} admin room",
                topic=f"Manage {self.server_name}: send `{COMMAND_PREFIX} help`.",
                room_alias_name="admins",
            )
            room_id = await rooms.creation.create(self.server_user_id, settings)
            log.info("created the admin room %s (%s)", self.alias, room_id)
        self._info.put(_ROOM_ID, room_id.encode())
        self._room_id = room_id
        return room_id

    async def add_admin(self, user_id: str) -> None:
        """Give `user_id` power level 100 in the room and invite them (if not in already)."""
        room_id = self.room_id
        if room_id is None:
            self._work.set()  # `run` invites every admin once the room exists
            return
        rooms = self._services.rooms
        power_levels = rooms.timeline.state_content(room_id, "m.room.power_levels")
        users = dict(power_levels.get("users") or {})
        if users.get(user_id) != ADMIN_POWER_LEVEL:
            users[user_id] = ADMIN_POWER_LEVEL
            await rooms.builder.send(
                room_id,
                self.server_user_id,
                "m.room.power_levels",
                {**power_levels, "users": users},
                "",
            )
        if rooms.state_cache.membership(room_id, user_id) not in ("join", "invite"):
            await rooms.membership.invite(room_id, self.server_user_id, user_id)
        self._invited.put(user_id.encode(), b"")

    async def _invite_admins(self) -> None:
        users = self._services.users
        for user_id in users.admin_user_ids():
            if user_id.encode() in self._invited or users.is_deactivated(user_id):
                continue  # an admin who left is not invited again unless made admin again
            try:
                await self.add_admin(user_id)
            except MatrixError as error:
                log.warning("could not invite admin %s to %s: %s", user_id, self.alias, error)

    def note_registered(self, user_id: str) -> None:
        """`Registration.registered`: a new account may be the first, hence an admin."""
        if self._services.users.is_admin(user_id):
            self._work.set()

    # ------------------------------------------------------------ the queue

    def queue_command(
        self, event: Mapping[str, Any], context: EventContext, count: int | None, batch: WriteBatch
    ) -> None:
        """Timeline `appending` hook: a command message of the admin room is queued."""
        if count is None or event.get("type") != "m.room.message":
            return
        if event.get("room_id") != self.room_id:
            return
        content = event.get("content")
        if not isinstance(content, dict) or content.get("msgtype") == "m.notice":
            return  # the bot's own answers are notices
        body = content.get("body")
        if not isinstance(body, str) or not (
            body.startswith(COMMAND_PREFIX) or body.startswith(self.server_user_id)
        ):
            return
        batch.put(self._queue, u64(count), event["event_id"].encode())
        batch.after_commit(self._work.set)

    async def run(self) -> None:
        """Create the room, invite the admins, then answer queued commands, forever."""
        while True:
            try:
                await self._ensure_room()
                break
            except MatrixError as error:
                log.error("cannot create the admin room %s: %s", self.alias, error)
                await trio.sleep(RETRY_SECONDS)
        while True:
            self._work = trio.Event()
            try:
                await self._invite_admins()
                for key, event_id in list(self._queue.iter_prefix(b"")):
                    await self._answer(key, event_id.decode())
            except Exception:  # a bug here must not stop the server: log, go on
                log.exception("the admin room task failed; it goes on at the next wake-up")
            await self._work.wait()

    async def _answer(self, queue_key: bytes, event_id: str) -> None:
        event = self._services.rooms.timeline.get_event(event_id)
        reply: Reply | None = None
        if event is not None:
            try:
                reply = await self._run_command(event)
            except Exception as error:  # a command's bug must not stop the admin room
                log.exception("admin command %s failed", event_id)
                reply = Reply.text(f"The command failed: {type(error).__name__}: {error}")
        room_id = self.room_id
        if reply is None or room_id is None:
            self._queue.delete(queue_key)
            return
        try:
            await self._services.rooms.builder.send(
                room_id,
                self.server_user_id,
                "m.room.message",
                _notice(reply, event_id),
                also_write=lambda _, batch: batch.delete(self._queue, queue_key),
            )
        except MatrixError as error:
            log.error("cannot answer admin command %s: %s", event_id, error)
            self._queue.delete(queue_key)
        self.answered.append(event_id)

    # ------------------------------------------------------------ dispatching

    async def _run_command(self, event: Mapping[str, Any]) -> Reply | None:
        sender = event["sender"]
        body = event["content"]["body"]
        try:
            line = command_line(body, self.server_user_id)
        except UsageError as error:
            return Reply.text(str(error))
        if line is None:
            return None
        users = self._services.users
        if sender != self.server_user_id and not users.is_admin(sender):
            return Reply.text(f"Only server admins can run commands; {sender} is not one.")
        if not line.words or line.words[0] in ("help", "--help", "-h"):
            return self.help_reply(line.words[1:])
        name, *arguments = line.words
        command = self.commands.get(name)
        if command is None:
            return Reply.text(
                f"Unknown command {name!r}. `{COMMAND_PREFIX} help` lists the commands."
            )
        try:
            parsed = command.parser.parse_args(arguments)
        except HelpRequested as help_text:
            return Reply.with_code(f"Help of {name}:", str(help_text).rstrip())
        except (UsageError, argparse.ArgumentError) as error:
            return Reply.with_code(
                f"Wrong arguments for {name}:", f"{error}\n{command.parser.format_usage()}".strip()
            )
        if command.needs_code_block and line.code_block is None:
            return Reply.with_code(
                f"{name} needs its input in a code block below the command line, like this:",
                f"{COMMAND_PREFIX} {name}\n```\n...\n```",
            )
        context = CommandContext(self._services, self, sender, line.code_block, event["event_id"])
        try:
            return await command.handler(context, parsed)
        except MatrixError as error:
            return Reply.text(f"{name}: {error.message} ({error.errcode})")

    def help_reply(self, words: list[str]) -> Reply:
        if words and words[0] in self.commands:
            return Reply.with_code(
                f"Help of {words[0]}:", self.commands[words[0]].parser.format_help().rstrip()
            )
        listing = "\n".join(
            f"{name:24} {command.summary}" for name, command in sorted(self.commands.items())
        )
        return Reply.with_code(
            f"Commands (`{COMMAND_PREFIX} COMMAND --help` tells more about one):", listing
        )


def new_parser(name: str, description: str) -> CommandParser:
    """A command's parser (`description`'s first line is its summary in `help`)."""
    return CommandParser(name, description)


def _notice(reply: Reply, in_reply_to: str) -> dict[str, Any]:
    plain, formatted = reply.plain, reply.html
    if len(plain) > MAX_REPLY_CHARS:
        plain = plain[:MAX_REPLY_CHARS] + "\n… (cut: too long for one message)"
    if len(formatted) > MAX_REPLY_CHARS:
        formatted = "<pre><code>" + html.escape(plain[: MAX_REPLY_CHARS // 6]) + "</code></pre>"
    return {
        "msgtype": "m.notice",
        "body": plain,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.relates_to": {"m.in_reply_to": {"event_id": in_reply_to}},
    }
