"""The admin room `#admins:<server_name>` through matrix-nio: the room, its admins, help.

Conduit's admin room (the server's own administration, outside the spec): the
server user `@conduit` creates the room at first start, the first account is
invited with power level 100, and messages starting with `!admin` or the
server user's id are commands answered with formatted `m.notice` messages
(client-server API, "m.room.message msgtypes": `m.notice`, and formatted
bodies `org.matrix.custom.html`). Wrong input gets a helpful reply.
"""

from __future__ import annotations

from pathlib import Path

import nio
import pytest
import trio

from matrix_conduit.config import Config
from matrix_conduit.offline_accounts import offline_services
from matrix_conduit.service.admin_room import all_commands
from tests.support.admin_room import (
    PASSWORD,
    SERVER_USER,
    AdminRoom,
    answer_to,
    command,
    expect,
    first_admin_joins,
    in_admin_room,
    join_admin_room,
    nio_clients,
    send_text,
)
from tests.support.nio import in_asyncio
from tests.support.server import TestServer, make_config, serving


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> TestServer:
    config = make_config(tmp_path / "db", allow_registration=True)
    async with serving(nursery, config) as running:
        yield running


async def test_the_first_account_is_invited_to_the_admin_room_with_power_100(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id = room.admin, room.room_id
        power_levels = expect(
            await admin.room_get_state_event(room_id, "m.room.power_levels"),
            nio.RoomGetStateEventResponse,
        )
        assert power_levels.content["users"]["@alice:localhost"] == 100
        create = expect(
            await admin.room_get_state_event(room_id, "m.room.create"),
            nio.RoomGetStateEventResponse,
        )
        assert create.content.get("creator", SERVER_USER) == SERVER_USER
        answer = await command(admin, room_id, "!admin help")
        for name in ("create-user", "purge-room", "verify-json"):
            assert name in answer
        by_mention = await command(admin, room_id, f"{SERVER_USER}: list-local-users")
        assert "@alice:localhost (admin)" in by_mention

    await in_admin_room(server.base_url, scenario)


async def test_every_command_answers_help_and_wrong_arguments_with_usage(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id = room.admin, room.room_id
        for listed in all_commands():
            answer = await command(admin, room_id, f"!admin {listed.name} --help")
            assert f"usage: !admin {listed.name}" in answer, answer
            wrong = await command(admin, room_id, f"!admin {listed.name} --no-such-flag")
            assert "Wrong arguments" in wrong and "usage:" in wrong, wrong
        unknown = await command(admin, room_id, "!admin fly-to-the-moon")
        assert "Unknown command 'fly-to-the-moon'" in unknown
        unclosed = await command(admin, room_id, '!admin create-user "bob')
        assert "does not split into words" in unclosed
        missing = await command(admin, room_id, "!admin create-user")
        assert "the following arguments are required: username" in missing
        no_block = await command(admin, room_id, "!admin register-appservice")
        assert "needs its input in a code block" in no_block

    await in_admin_room(server.base_url, scenario)


async def test_only_admins_may_run_commands_and_plain_chat_is_left_alone(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id, bob = room.admin, room.room_id, room.others["bob"]
        expect(await admin.room_invite(room_id, "@bob:localhost"), nio.RoomInviteResponse)
        expect(await bob.join(room_id), nio.JoinResponse)
        await bob.sync(timeout=0)
        refused = await command(bob, room_id, "!admin list-local-users")
        assert "Only server admins can run commands" in refused
        chat = await send_text(admin, room_id, "good morning, no command here")
        marker = await command(admin, room_id, "!admin allow-registration")
        assert "Registration is open" in marker
        answered = server.services.admin_room.answered
        assert chat not in answered

    await in_admin_room(server.base_url, scenario, others=("bob",))


async def test_the_admin_room_is_made_once_and_answers_after_a_restart(tmp_path: Path):
    config = make_config(tmp_path / "db", allow_registration=True)
    async with trio.open_nursery() as nursery, serving(nursery, config) as running:
        room_id = await first_admin_joins(running.base_url)

    async def second_start(base_url: str) -> None:
        async with nio_clients(base_url) as clients:
            admin = await clients.log_in("@alice:localhost", PASSWORD)
            assert await join_admin_room(admin) == room_id
            answer = await command(admin, room_id, "!admin list-rooms")
            assert answer.startswith("1 rooms:")

    async with trio.open_nursery() as nursery, serving(nursery, config) as running:
        await in_asyncio(lambda: second_start(running.base_url))


def _queue_command_offline(config: Config, room_id: str, body: str) -> str:
    """Alice's command message, stored while no server runs (nothing can answer it yet)."""
    with offline_services(config) as services:

        async def send() -> str:
            content = {"msgtype": "m.text", "body": body}
            return await services.rooms.builder.send(
                room_id, "@alice:localhost", "m.room.message", content
            )

        return trio.run(send)


async def test_a_command_stored_while_nothing_answers_is_answered_at_the_next_start(
    tmp_path: Path,
):
    config = make_config(tmp_path / "db", allow_registration=True)
    async with trio.open_nursery() as nursery, serving(nursery, config) as running:
        room_id = await first_admin_joins(running.base_url)
    event_id = await trio.to_thread.run_sync(
        _queue_command_offline, config, room_id, "!admin list-local-users"
    )

    async def second_start(base_url: str) -> None:
        async with nio_clients(base_url) as clients:
            admin = await clients.log_in("@alice:localhost", PASSWORD)
            content = await answer_to(admin, room_id, event_id)
            assert "@alice:localhost (admin)" in content["body"]

    async with trio.open_nursery() as nursery, serving(nursery, config) as running:
        await in_asyncio(lambda: second_start(running.base_url))
        assert running.services.admin_room.answered == [event_id]
