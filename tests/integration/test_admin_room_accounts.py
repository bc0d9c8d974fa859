"""Admin room account commands through matrix-nio, and the ways to become an admin.

Conduit's admin room: `create-user`, `reset-password`, `deactivate-user`,
`deactivate-all`, `make-user-admin`, `list-local-users`; an account made
offline with `matrix-conduit create-user --admin` is invited at the next
start; `emergency_password` lets an admin log in as `@conduit` and hand the
room to someone again. Accounts follow the client-server API ("Login",
"Account deactivation": a deactivated account cannot log in).
"""

from __future__ import annotations

import functools
from pathlib import Path

import nio
import pytest
import trio

from matrix_conduit.offline_accounts import create_user
from tests.support.admin_room import (
    PASSWORD,
    SERVER_USER,
    AdminRoom,
    NioClients,
    command,
    expect,
    in_admin_room,
    join_admin_room,
    nio_client,
    nio_clients,
)
from tests.support.nio import in_asyncio
from tests.support.server import TestServer, make_config, serving

EMERGENCY_PASSWORD = "break glass in case of emergency"


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> TestServer:
    config = make_config(
        tmp_path / "db", allow_registration=True, emergency_password=EMERGENCY_PASSWORD
    )
    async with serving(nursery, config) as running:
        yield running


def generated_password(answer: str) -> str:
    """The password an answer shows in its code block."""
    return answer.split("```\n")[1].split("\n```")[0]


async def login_fails(clients: NioClients, user_id: str, password: str) -> bool:
    client = nio_client(clients.base_url, clients.store, user_id)
    try:
        return isinstance(await client.login(password, "x"), nio.LoginError)
    finally:
        await client.close()


async def test_create_user_reset_password_and_make_user_admin(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        clients, admin, room_id = room.clients, room.admin, room.room_id
        created = await command(admin, room_id, "!admin create-user bob")
        assert created.startswith("Created @bob:localhost with the password:")
        bob = await clients.log_in("@bob:localhost", generated_password(created))
        taken = await command(admin, room_id, "!admin create-user bob")
        assert "M_USER_IN_USE" in taken
        bad_name = await command(admin, room_id, "!admin create-user 'no spaces'")
        assert "M_INVALID_USERNAME" in bad_name

        reset = await command(admin, room_id, "!admin reset-password bob")
        new_password = generated_password(reset)
        assert await login_fails(clients, "@bob:localhost", PASSWORD)
        await bob.close()  # its device was logged out with the reset
        bob = await clients.log_in("@bob:localhost", new_password)
        nobody = await command(admin, room_id, "!admin reset-password @ghost:localhost")
        assert "There is no account @ghost:localhost" in nobody
        foreign = await command(admin, room_id, "!admin reset-password @x:other.org")
        assert "is not a user id of this server" in foreign

        made = await command(admin, room_id, "!admin make-user-admin bob")
        assert "@bob:localhost is a server admin now" in made
        assert await join_admin_room(bob) == room_id
        listed = await command(bob, room_id, "!admin list-local-users")
        assert "@bob:localhost (admin)" in listed
        assert f"{SERVER_USER} (server user)" in listed

        second = await command(admin, room_id, "!admin create-user carol --admin --password pw1")
        assert second == "Created @carol:localhost (server admin, invited to this room)."
        carol = await clients.log_in("@carol:localhost", "pw1")
        assert await join_admin_room(carol) == room_id

    await in_admin_room(server.base_url, scenario)


async def test_deactivate_user_and_deactivate_all(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id, dave = room.admin, room.room_id, room.others["dave"]
        chat = expect(await dave.room_create(name="dave's"), nio.RoomCreateResponse)
        answer = await command(admin, room_id, "!admin deactivate-user dave --leave-rooms")
        assert answer.startswith("Deactivated @dave:localhost; it left 1 rooms:")
        assert chat.room_id in answer
        assert await login_fails(room.clients, "@dave:localhost", PASSWORD)
        again = await command(admin, room_id, "!admin deactivate-user dave")
        assert again == "@dave:localhost is deactivated already."
        itself = await command(admin, room_id, "!admin deactivate-user alice")
        assert "cannot deactivate yourself" in itself
        server_user = await command(admin, room_id, f"!admin deactivate-user {SERVER_USER}")
        assert "cannot be deactivated" in server_user

        for name in ("erin", "frank"):
            await command(admin, room_id, f"!admin create-user {name} --password pw")
        await command(admin, room_id, "!admin create-user gina --admin --password pw")
        listing = "@erin:localhost\nfrank\ngina\n@nobody:localhost\ndave"
        answer = await command(admin, room_id, "!admin deactivate-all", listing)
        assert answer.startswith("Deactivated 2 of 5 accounts.")
        assert "skipped: @gina:localhost: an admin (use --force)" in answer
        assert "skipped: @nobody:localhost: no such local account" in answer
        assert "skipped: @dave:localhost: deactivated already" in answer
        forced = await command(admin, room_id, "!admin deactivate-all --force", "gina")
        assert forced.startswith("Deactivated 1 of 1 accounts.")
        empty = await command(admin, room_id, "!admin deactivate-all", "   ")
        assert "lists no users" in empty
        remaining = await command(admin, room_id, "!admin list-local-users")
        assert "erin" not in remaining and "@alice:localhost (admin)" in remaining
        everyone = await command(admin, room_id, "!admin list-local-users --deactivated")
        assert "@erin:localhost (deactivated)" in everyone

    await in_admin_room(server.base_url, scenario, others=("dave",))


async def test_emergency_password_lets_the_server_user_hand_the_room_to_a_new_admin(
    server: TestServer,
):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id, bob = room.admin, room.room_id, room.others["bob"]
        expect(await admin.room_leave(room_id), nio.RoomLeaveResponse)
        conduit = await room.clients.log_in(SERVER_USER, EMERGENCY_PASSWORD)
        assert await join_admin_room(conduit) == room_id
        answer = await command(conduit, room_id, "!admin make-user-admin bob")
        assert "@bob:localhost is a server admin now" in answer
        assert await join_admin_room(bob) == room_id
        rooms = await command(bob, room_id, "!admin list-rooms")
        assert room_id in rooms
        state_cache = server.services.rooms.state_cache
        assert state_cache.membership(room_id, "@alice:localhost") == "leave"

    await in_admin_room(server.base_url, scenario, others=("bob",))


async def test_an_admin_created_offline_is_invited_at_the_next_start(
    nursery: trio.Nursery, tmp_path: Path
):
    config = make_config(tmp_path / "db")
    await trio.to_thread.run_sync(
        functools.partial(create_user, config, "root", password=PASSWORD, admin=True)
    )
    async with serving(nursery, config) as running:

        async def scenario() -> None:
            async with nio_clients(running.base_url) as clients:
                root = await clients.log_in("@root:localhost", PASSWORD)
                room_id = await join_admin_room(root)
                answer = await command(root, room_id, "!admin list-local-users")
                assert "@root:localhost (admin)" in answer

        await in_asyncio(scenario)
