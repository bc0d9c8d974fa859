"""A room disabled from the admin room refuses other servers too (Conduit's `disable-room`).

Two of our servers over TLS: while server A's admin has the room disabled,
a user of server B cannot join it through A (A's `make_join` answers 403
`M_FORBIDDEN`, as for a server its ACL denies: server-server API § Server
Access Control Lists, "Joining Rooms"); once `enable-room` undoes it, the
same join goes through. Their PDUs of it in `/send` get an error each and
are not stored, and they cannot read its state (403 `M_FORBIDDEN`).
"""

from __future__ import annotations

import functools

import pytest

from tests.support.federation import FederatingServer, start_federating
from tests.support.hostile_federation import (
    SEND,
    Peering,
    assert_peer_still_accepted,
    peering_fixture,
    transaction,
    txn_id,
    valid_message,
)
from tests.support.matrix import User, ok, path_part, register
from tests.support.remote_membership import eventually, join


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def admin_command(server: FederatingServer, admin: User, line: str) -> str:
    """Send `line` to the admin room of `server` as `admin`; the body of the answer."""
    admin_room = server.server.services.admin_room
    room_id = await eventually(lambda: _value(admin_room.room_id))
    await eventually(lambda: _joined(admin, room_id))
    event_id = await admin.send(room_id, line)
    await eventually(lambda: _value(event_id in admin_room.answered))
    for _, event in server.server.services.rooms.timeline.events_after(room_id, 0):
        relates = event["content"].get("m.relates_to") or {}
        if relates.get("m.in_reply_to", {}).get("event_id") == event_id:
            return event["content"]["body"]
    raise AssertionError(f"no answer to {line!r}")


async def _value(value: object) -> object:
    return value


async def _joined(user: User, room_id: str) -> bool:
    return (await join(user, room_id)).status_code == 200


async def test_a_disabled_room_refuses_joins_from_other_servers_until_enabled(pair):
    a, b = pair
    admin = await register(a.server)  # the first account of A: its admin
    carol = await register(a.server)
    bob = await register(b.server)
    room_id = await carol.create_room(preset="public_chat", name="club")

    answer = await admin_command(a, admin, f"!admin disable-room {room_id}")
    assert answer.startswith(f"{room_id} is disabled")
    refused = await join(bob, room_id, via=a.name)
    assert refused.status_code == 403, refused.text
    assert bob.user_id not in a.server.services.rooms.state_cache.joined_members(room_id)

    answer = await admin_command(a, admin, f"!admin enable-room {room_id}")
    assert answer == f"{room_id} is enabled again."
    assert ok(await join(bob, room_id, via=a.name))["room_id"] == room_id


peering = peering_fixture()
ADMIN = "@admin:127.0.0.41"


async def test_a_disabled_rooms_pdus_in_send_get_an_error_and_are_not_stored(peering: Peering):
    """Server-server API § Transactions: `/send` answers each PDU, with an `error` for one
    it does not take; the room's state and events stay out of other servers' reach too."""
    world = peering.world
    disabled = peering.a.disabled_rooms
    async with peering.client() as client:
        pdu, event_id = await valid_message(peering, "while disabled")
        await peering.call(functools.partial(disabled.set_disabled, by=ADMIN), world.room_id, True)
        try:
            response = await peering.signed_request(
                client, "PUT", SEND.format(txn_id()), transaction(world.peer, [pdu])
            )
            assert response.status_code == 200, response.text
            assert response.json() == {
                "pdus": {event_id: {"error": f"{world.room_id} is disabled on this server"}}
            }
            await peering.inbound_drained()
            assert await peering.status(event_id) is None
            state = await peering.signed_request(
                client,
                "GET",
                f"/_matrix/federation/v1/state_ids/{path_part(world.room_id)}"
                f"?event_id={path_part(world.message_id)}",
            )
            assert state.status_code == 403 and state.json()["errcode"] == "M_FORBIDDEN"
        finally:
            await peering.call(
                functools.partial(disabled.set_disabled, by=ADMIN), world.room_id, False
            )
        await assert_peer_still_accepted(peering, client, "after enable-room")
