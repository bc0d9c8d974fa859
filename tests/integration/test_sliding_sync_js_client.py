"""A real sliding sync client against the server: matrix-js-sdk's `SlidingSync` under node.

Spec: MSC4186 as matrix-js-sdk implements it (the package from the npm
registry, pinned in `tests/support/js/package.json` and its lock file;
`make js-client` installs it). The client logs in with an access token, sees
the room list sorted by recency (by `bump_stamp`), opens a room (a room
subscription) and receives a new message live.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import trio

from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import user_without_rooms

running_server, server = shared_server_fixtures()

CLIENT_DIRECTORY = Path(__file__).resolve().parent.parent / "support" / "js"
SCRIPT = CLIENT_DIRECTORY / "sliding_sync_client.mjs"
STAGE = b"STAGE "


async def _lines(stream: trio.abc.ReceiveStream):
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.startswith(STAGE):  # the SDK logs to stdout too
                yield json.loads(line[len(STAGE) :])


async def test_matrix_js_sdk_lists_rooms_by_recency_opens_one_and_gets_a_live_message(server):
    assert (CLIENT_DIRECTORY / "node_modules" / "matrix-js-sdk").is_dir(), (
        "matrix-js-sdk is not installed: run `make js-client`"
    )
    alice = await user_without_rooms(server)
    quiet = await alice.create_room(name="quiet")
    busy = await alice.create_room(name="busy")
    latest = await alice.create_room(name="latest")
    await alice.send(quiet, "old news")
    await alice.send(busy, "first")
    await alice.send(busy, "second")
    await alice.send(latest, "newest")

    command = [
        "node",
        str(SCRIPT),
        server.base_url,
        alice.user_id,
        alice.device_id,
        alice.access_token,
        "3",
        busy,
        "live message",
    ]
    stages = {}
    with trio.fail_after(90):
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, cwd=CLIENT_DIRECTORY
        )
        try:
            async for line in _lines(process.stdout):
                stages[line["stage"]] = line
                if line["stage"] == "opened":
                    await alice.send(busy, "live message")
                if line["stage"] == "live":
                    break
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0
    assert stages["list"]["rooms"] == [latest, busy, quiet]
    assert stages["list"]["names"] == ["latest", "busy", "quiet"]
    assert stages["opened"]["bodies"][-2:] == ["first", "second"]
    assert stages["live"] == {
        "stage": "live",
        "room_id": busy,
        "body": "live message",
        "sender": alice.user_id,
    }
