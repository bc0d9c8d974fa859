"""`matrix-conduit rotate-signing-key`: the admin's way to a new server key.

Spec: `content/server-server-api.md` § Publishing Keys (`old_verify_keys`
with `expired_ts`, keys the server used to use).
"""

from __future__ import annotations

import trio

from matrix_conduit.cli import main
from tests.support.federation import restart, start_federating


async def test_rotating_the_key_of_a_stopped_server_publishes_the_old_one_as_old(
    nursery, ca, tmp_path, monkeypatch, capsys
):
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    old_key_id = b.server.services.globals.signing_key_id
    config_path = tmp_path / "conduit.toml"
    config_path.write_text(
        "[global]\n"
        f'server_name = "{b.name}"\n'
        'database_backend = "leveldb"\n'
        f'database_path = "{b.config.database_path}"\n'
    )
    monkeypatch.setenv("CONDUIT_CONFIG", str(config_path))
    refused = await trio.to_thread.run_sync(main, ["rotate-signing-key"])
    await b.stop()

    status = await trio.to_thread.run_sync(main, ["rotate-signing-key"])
    b = await restart(nursery, b)
    document = (await b.client.get("/_matrix/key/v2/server")).json()

    assert refused == 1 and "stop the service first" in capsys.readouterr().err
    assert status == 0
    new_key_id = b.server.services.globals.signing_key_id
    assert new_key_id != old_key_id
    assert set(document["verify_keys"]) == {new_key_id}
    assert set(document["old_verify_keys"]) == {old_key_id}
