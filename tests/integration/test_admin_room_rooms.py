"""Admin room room commands through matrix-nio: `list-rooms`, `disable-room`,
`enable-room`, `purge-room`.

A disabled room refuses local users' joins and events with 403 `M_FORBIDDEN`
(client-server API, "Room membership" and "Sending events to a room" errors),
their leaves excepted; `purge-room` deletes the room's local media (content
repository: the download then answers 404 `M_NOT_FOUND`) and its events
(but its current state), and makes the local members leave.
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


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> TestServer:
    config = make_config(tmp_path / "db", allow_registration=True)
    async with serving(nursery, config) as running:
        yield running


async def say(client: nio.AsyncClient, room_id: str, text: str) -> object:
    return await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})


async def test_disable_room_refuses_joins_and_messages_until_enable_room(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id = room.admin, room.room_id
        bob, carol = room.others["bob"], room.others["carol"]
        created = expect(
            await bob.room_create(
                name="bob's club", alias="club", preset=nio.RoomPreset.public_chat
            ),
            nio.RoomCreateResponse,
        )
        club = created.room_id
        listed = await command(admin, room_id, "!admin list-rooms")
        assert f"{club}  members: 1  name: bob's club" in listed
        answer = await command(admin, room_id, "!admin disable-room #club:localhost")
        assert answer.startswith(f"{club} is disabled")
        assert "(disabled)" in await command(admin, room_id, "!admin list-rooms")

        refused_send = await say(bob, club, "anyone?")
        assert isinstance(refused_send, nio.RoomSendError)
        assert refused_send.status_code == "M_FORBIDDEN"
        refused_join = await carol.join(club)
        assert isinstance(refused_join, nio.JoinError)
        assert refused_join.status_code == "M_FORBIDDEN"

        enabled = await command(admin, room_id, f"!admin enable-room {club}")
        assert enabled == f"{club} is enabled again."
        expect(await say(bob, club, "back"), nio.RoomSendResponse)
        expect(await carol.join(club), nio.JoinResponse)
        not_disabled = await command(admin, room_id, f"!admin enable-room {club}")
        assert not_disabled == f"{club} is not disabled."

        own = await command(admin, room_id, f"!admin disable-room {room_id}")
        assert own == "The admin room cannot be disabled."
        unknown = await command(admin, room_id, "!admin disable-room !nope:localhost")
        assert "knows no room !nope:localhost" in unknown
        no_alias = await command(admin, room_id, "!admin disable-room #nope:localhost")
        assert "names no room here" in no_alias
        not_a_room = await command(admin, room_id, "!admin disable-room club")
        assert "neither a room id nor an alias" in not_a_room

    await in_admin_room(server.base_url, scenario, others=("bob", "carol"))


async def test_purge_room_deletes_its_media_and_makes_local_members_leave(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id, bob = room.admin, room.room_id, room.others["bob"]
        club = expect(await bob.room_create(name="doomed"), nio.RoomCreateResponse).room_id
        image = png(8, 8)
        uploaded, _ = await bob.upload(
            io.BytesIO(image), content_type="image/png", filesize=len(image)
        )
        uri = expect(uploaded, nio.UploadResponse).content_uri
        content = {"msgtype": "m.image", "body": "cat.png", "url": uri}
        sent = expect(await bob.room_send(club, "m.room.message", content), nio.RoomSendResponse)

        answer = await command(admin, room_id, f"!admin purge-room {club} --block")
        assert answer.startswith(f"Purge of {club}: complete; ")
        assert "events and 1 media deleted" in answer
        assert "1 local members made to leave, blocked; the room stays disabled" in answer
        gone_event = await command(admin, room_id, f"!admin get-pdu {sent.event_id}")
        assert gone_event == f"There is no event {sent.event_id} here."
        assert f"{club}  members: 0" in await command(admin, room_id, "!admin list-rooms")
        server_name, media_id = uri.removeprefix("mxc://").split("/")
        gone = await bob.download(server_name, media_id)
        assert isinstance(gone, nio.DownloadError)
        assert gone.status_code == "M_NOT_FOUND"
        rooms = expect(await bob.joined_rooms(), nio.JoinedRoomsResponse)
        assert club not in rooms.rooms
        rejoin = await bob.join(club)
        assert isinstance(rejoin, nio.JoinError)

        own = await command(admin, room_id, f"!admin purge-room {room_id}")
        assert own == "The admin room cannot be purged."

    await in_admin_room(server.base_url, scenario, others=("bob",))
