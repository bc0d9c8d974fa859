"""The rooms settings of the config: `allow_encryption` and `allow_room_creation`.

Conduit's configuration: with `allow_encryption = false` the server refuses
to make rooms encrypted — `m.room.encryption` state, in `/createRoom`'s
`initial_state` or set later, and `m.room.encrypted` messages are 403 with a
message that says why; with `allow_room_creation = false`, `POST
/createRoom` is 403 (`data/api/client-server/create_room.yaml`: "Creating
the room is not allowed") while existing rooms keep working. The default
(both true) allows both. Spec for the events:
`content/client-server-api/modules/end_to_end_encryption.md`
(`m.room.encryption`, `m.room.encrypted`).
"""

from __future__ import annotations

from matrix_conduit.service.rooms.create import RoomSettings
from tests.support.matrix import (
    assert_error,
    bodies,
    ok,
    register,
    register_many,
)
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_default_server, default_server = shared_server_fixtures("default_server")
running_no_encryption, no_encryption = shared_server_fixtures(
    "no_encryption", allow_encryption=False
)
running_no_room_creation, no_room_creation = shared_server_fixtures(
    "no_room_creation", allow_room_creation=False
)

ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}
ENCRYPTED_MESSAGE = {
    "algorithm": "m.megolm.v1.aes-sha2",
    "ciphertext": "AwgAEnAC...",
    "device_id": "DEVICE",
    "sender_key": "curve25519key",
    "session_id": "session",
}


def says_encryption_is_disabled(response) -> None:
    body = assert_error(response, 403, "M_FORBIDDEN")
    assert "encryption" in body["error"].lower()


# ---- allow_encryption = false


async def test_encryption_state_is_refused_when_encryption_is_disabled(
    no_encryption: SharedServer,
):
    alice = await register(no_encryption)
    room_id = await alice.create_room()
    says_encryption_is_disabled(await alice.put_state(room_id, "m.room.encryption", ENCRYPTION))
    assert_error(await alice.get_state(room_id, "m.room.encryption"), 404, "M_NOT_FOUND")


async def test_encrypted_messages_are_refused_when_encryption_is_disabled(
    no_encryption: SharedServer,
):
    alice = await register(no_encryption)
    room_id = await alice.create_room()
    says_encryption_is_disabled(
        await alice.send_event(room_id, "m.room.encrypted", ENCRYPTED_MESSAGE)
    )
    events = await alice.timeline(room_id)
    assert "m.room.encrypted" not in {event["type"] for event in events}


async def test_encrypted_room_cannot_be_created_when_encryption_is_disabled(
    no_encryption: SharedServer,
):
    alice = await register(no_encryption)
    response = await alice.post(
        "/createRoom",
        {"initial_state": [{"type": "m.room.encryption", "content": ENCRYPTION}]},
    )
    says_encryption_is_disabled(response)
    assert await alice.joined_rooms() == []


async def test_plain_messages_still_work_when_encryption_is_disabled(
    no_encryption: SharedServer,
):
    alice, bob = await register_many(no_encryption, 2)
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await bob.send(room_id, "in the clear")
    assert bodies(await alice.timeline(room_id)) == ["in the clear"]


# ---- allow_encryption = true (the default)


async def test_encryption_is_allowed_by_default(default_server: SharedServer):
    alice = await register(default_server)
    room_id = await alice.create_room(
        initial_state=[{"type": "m.room.encryption", "content": ENCRYPTION}]
    )
    assert ok(await alice.get_state(room_id, "m.room.encryption")) == ENCRYPTION
    ok(await alice.send_event(room_id, "m.room.encrypted", ENCRYPTED_MESSAGE))
    other = await alice.create_room()
    ok(await alice.put_state(other, "m.room.encryption", ENCRYPTION))


# ---- allow_room_creation


async def test_room_creation_is_refused_when_disabled(no_room_creation: SharedServer):
    alice = await register(no_room_creation)
    body = assert_error(await alice.post("/createRoom", {"name": "nope"}), 403, "M_FORBIDDEN")
    assert "creat" in body["error"].lower()
    assert await alice.joined_rooms() == []


async def test_existing_rooms_keep_working_when_room_creation_is_disabled(
    no_room_creation: SharedServer,
):
    alice, bob = await register_many(no_room_creation, 2)
    # A room that existed before the admin turned creation off.
    room_id = await no_room_creation.call(
        no_room_creation.services.rooms.creation.create,
        alice.user_id,
        RoomSettings(room_version="10", preset="public_chat"),
    )
    await bob.join(room_id)
    await bob.send(room_id, "still chatting")
    assert bodies(await alice.timeline(room_id)) == ["still chatting"]


async def test_room_creation_is_allowed_by_default(default_server: SharedServer):
    alice = await register(default_server)
    assert ok(await alice.post("/createRoom", {}))["room_id"].startswith("!")


async def test_refused_room_creation_leaves_the_connection_usable(no_room_creation: SharedServer):
    """The 403 comes before the body is read; the keep-alive connection must survive it.

    (Regression: hypercorn closed such connections without `Connection: close`,
    and the client's next request on it failed now and then.)
    """
    alice = await register(no_room_creation)
    for _ in range(100):
        assert_error(await alice.post("/createRoom", {"name": "nope"}), 403, "M_FORBIDDEN")
        assert await alice.joined_rooms() == []
