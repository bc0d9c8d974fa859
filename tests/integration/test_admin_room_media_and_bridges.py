"""Admin room commands about media and appservices, through matrix-nio.

`list-media`/`delete-media` choose this server's uploads by `mxc://` URI or
by uploader and upload time; a deleted upload's download answers 404
`M_NOT_FOUND` (client-server API, content repository). `register-appservice`
takes a registration YAML (application service API, "Registration") in a
code block: refused with the problems named when a key is missing or an id
or token is taken; `unregister-appservice` removes a run-time one, never one
of `app_service_config_files`.
"""

from __future__ import annotations

import io
from pathlib import Path

import nio
import pytest
import trio

from tests.support.admin_room import AdminRoom, command, expect, in_admin_room
from tests.support.images import png
from tests.support.server import TestServer, make_config, serving

FILE_REGISTRATION = """\
id: from-file
url: null
as_token: file-as-token
hs_token: file-hs-token
sender_localpart: filebot
namespaces:
  users: [{regex: "@_file_.*", exclusive: true}]
"""
REGISTRATION = """\
id: irc
url: http://127.0.0.1:9/
as_token: irc-as-token
hs_token: irc-hs-token
sender_localpart: ircbot
namespaces:
  users:
    - regex: "@_irc_.*"
      exclusive: true
"""


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> TestServer:
    registration = tmp_path / "from-file.yaml"
    registration.write_text(FILE_REGISTRATION)
    config = make_config(
        tmp_path / "db", allow_registration=True, app_service_config_files=[str(registration)]
    )
    async with serving(nursery, config) as running:
        yield running


async def upload(client: nio.AsyncClient) -> str:
    image = png(4, 4)
    uploaded, _ = await client.upload(
        io.BytesIO(image), content_type="image/png", filesize=len(image)
    )
    return expect(uploaded, nio.UploadResponse).content_uri


async def download_fails(client: nio.AsyncClient, uri: str) -> bool:
    server_name, media_id = uri.removeprefix("mxc://").split("/")
    answer = await client.download(server_name, media_id)
    return isinstance(answer, nio.DownloadError) and answer.status_code == "M_NOT_FOUND"


async def test_list_media_and_delete_media_by_uri_and_by_user(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id, bob = room.admin, room.room_id, room.others["bob"]
        first, second = await upload(bob), await upload(bob)
        mine = await upload(admin)
        listed = await command(admin, room_id, "!admin list-media --user bob")
        assert listed.startswith("2 uploads:")
        assert first in listed and second in listed and mine not in listed
        old = await command(admin, room_id, "!admin list-media --older-than 1d")
        assert old.startswith("0 uploads:")
        recent = await command(admin, room_id, "!admin list-media --newer-than 1h")
        assert recent.startswith("3 uploads:")

        by_uri = await command(admin, room_id, f"!admin delete-media {first}")
        assert by_uri.startswith("Deleted 1 of 1 media.")
        assert await download_fails(bob, first)
        again = await command(admin, room_id, f"!admin delete-media {first}")
        assert "not deleted" in again and "no media with this id" in again
        by_user = await command(admin, room_id, "!admin delete-media --user bob --newer-than 1h")
        assert by_user.startswith("Deleted 1 of 1 media.")
        assert await download_fails(bob, second)
        assert not await download_fails(admin, mine)

        nothing = await command(admin, room_id, "!admin delete-media")
        assert nothing.startswith("Say which media")
        both = await command(admin, room_id, f"!admin delete-media {mine} --user bob")
        assert "not both" in both
        not_uri = await command(admin, room_id, "!admin delete-media https://x/y")
        assert "is not an mxc://server/media_id URI" in not_uri
        duration = await command(admin, room_id, "!admin list-media --older-than soon")
        assert "'soon' is not a duration" in duration

    await in_admin_room(server.base_url, scenario, others=("bob",))


async def test_register_list_and_unregister_appservices(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id = room.admin, room.room_id
        registered = await command(admin, room_id, "!admin register-appservice", REGISTRATION)
        assert registered == "Registered the appservice 'irc' (sender @ircbot:localhost)."
        listed = await command(admin, room_id, "!admin list-appservices")
        assert listed.startswith("2 appservices:")
        assert "irc  sender @ircbot:localhost  url http://127.0.0.1:9  from database" in listed
        assert "from-file  sender @filebot:localhost" in listed
        taken = await command(admin, room_id, "!admin register-appservice", REGISTRATION)
        assert taken.startswith("The registration was refused:")
        assert "id: the same as that of 'irc'" in taken
        incomplete = await command(
            admin, room_id, "!admin register-appservice", "id: half\nurl: null"
        )
        assert "as_token: is required but missing" in incomplete
        not_yaml = await command(admin, room_id, "!admin register-appservice", "a: [b")
        assert "not valid YAML" in not_yaml
        user = await admin.register("_irc_someone", "pw", "x")
        assert isinstance(user, nio.ErrorResponse) and user.status_code == "M_EXCLUSIVE"

        from_file = await command(admin, room_id, "!admin unregister-appservice from-file")
        assert "remove it from app_service_config_files instead" in from_file
        gone = await command(admin, room_id, "!admin unregister-appservice irc")
        assert gone == "Unregistered the appservice 'irc'."
        unknown = await command(admin, room_id, "!admin unregister-appservice irc")
        assert "no appservice 'irc' is registered" in unknown
        assert (await command(admin, room_id, "!admin list-appservices")).startswith(
            "1 appservices:"
        )

    await in_admin_room(server.base_url, scenario)
