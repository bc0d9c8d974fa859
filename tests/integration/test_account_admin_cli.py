"""`matrix-conduit create-user` and `reset-password`: accounts made while the server is stopped.

The commands work on the configured database ($CONDUIT_CONFIG), refuse with
"stop the service first" while a server has it open, and what they create
is what a client then logs in with over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from matrix_conduit.cli import main
from tests.support.accounts import log_in
from tests.support.server import free_port, make_config, serving

CONFIG = """\
[global]
server_name = "localhost"
database_backend = "leveldb"
database_path = "{database_path}"
port = {port}
allow_federation = false
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conduit.toml"
    path.write_text(CONFIG.format(database_path=tmp_path / "db", port=free_port()))
    monkeypatch.setenv("CONDUIT_CONFIG", str(path))
    return path


async def run_cli(*arguments: str) -> int:
    """`matrix-conduit ARGUMENTS` as the admin runs it: its own trio run, off this loop."""
    return await trio.to_thread.run_sync(main, list(arguments))


async def log_in_on_the_database(tmp_path: Path, user: str, password: str) -> int:
    """Start a server on the commands' database and try the login; the HTTP status."""
    async with (
        trio.open_nursery() as nursery,
        serving(nursery, make_config(tmp_path / "db")) as server,
    ):
        return (await log_in(server.client, user, password)).status_code


async def test_created_user_logs_in_with_the_given_password(config_file, tmp_path, capsys):
    status = await run_cli("create-user", "alice", "--password", "pw-from-the-admin")

    assert status == 0
    assert "created @alice:localhost" in capsys.readouterr().out
    assert await log_in_on_the_database(tmp_path, "alice", "pw-from-the-admin") == 200


async def test_without_password_one_is_generated_and_printed(config_file, tmp_path, capsys):
    await run_cli("create-user", "@alice:localhost")

    printed = capsys.readouterr().out
    password = printed.rsplit("password: ", 1)[1].strip()
    assert len(password) >= 12
    assert await log_in_on_the_database(tmp_path, "alice", password) == 200


async def test_first_created_user_is_admin_and_admin_flag_makes_more(config_file, tmp_path, capsys):
    await run_cli("create-user", "alice", "--password", "x")
    await run_cli("create-user", "bob", "--password", "x")
    await run_cli("create-user", "carol", "--password", "x", "--admin")

    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "created @alice:localhost (server admin)",
        "created @bob:localhost",
        "created @carol:localhost (server admin)",
    ]
    async with (
        trio.open_nursery() as nursery,
        serving(nursery, make_config(tmp_path / "db")) as server,
    ):
        admins = [
            u
            for u in ("alice", "bob", "carol")
            if server.services.users.is_admin(f"@{u}:localhost")
        ]
    assert admins == ["alice", "carol"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["create-user", "bad name"], "may only contain"),
        (["create-user", "conduit"], "already taken"),
        (["create-user", "@alice:elsewhere.org"], "not a user id of localhost"),
        (["reset-password", "nobody"], "there is no user @nobody:localhost"),
        (["reset-password", "conduit"], "emergency_password"),
    ],
)
def test_refusals_are_one_clear_line_and_exit_1(config_file, capsys, arguments, message):
    status = main(arguments)

    error = capsys.readouterr().err
    assert status == 1
    assert message in error
    assert "Traceback" not in error


async def test_reset_password_replaces_the_password(config_file, tmp_path, capsys):
    await run_cli("create-user", "alice", "--password", "old password")

    status = await run_cli("reset-password", "alice", "--password", "new password")

    assert status == 0
    assert "new password set for @alice:localhost" in capsys.readouterr().out
    assert await log_in_on_the_database(tmp_path, "alice", "old password") == 403
    assert await log_in_on_the_database(tmp_path, "alice", "new password") == 200


async def test_commands_refuse_while_the_server_runs(config_file, tmp_path, nursery, capsys):
    async with serving(nursery, make_config(tmp_path / "db")):
        create = await run_cli("create-user", "alice", "--password", "x")
        reset = await run_cli("reset-password", "alice")

    errors = capsys.readouterr().err
    assert create == reset == 1
    assert errors.count("stop the service first") == 2
