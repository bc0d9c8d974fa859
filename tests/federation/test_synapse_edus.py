"""EDUs between one of our servers and a real Synapse, both directions, over TLS.

Every test runs twice (`DIRECTIONS`): the room on Synapse with our user
visiting, and the other way round; in each, a user of each server acts and
the other server's client sees it through long-poll `/sync`. Spec:
`content/server-server-api.md` "Typing Notifications", "Receipts",
"Presence", "Device Management", "Send-to-device messaging".
"""

from __future__ import annotations

import pytest

from tests.support.synapse_rooms import DIRECTIONS, Peers, peers, shared_room, sides, start_ours

pytestmark = pytest.mark.parametrize("direction", DIRECTIONS)


@pytest.fixture
async def both(nursery, synapse, tmp_path) -> Peers:
    ours = await start_ours(nursery, synapse, tmp_path / "us")
    async with peers(ours, synapse) as pair:
        yield pair


async def _accounts(both: Peers, direction: str):
    home_side, visitor_side = sides(direction)
    return await both.account_on(home_side), await both.account_on(visitor_side)


def typing_in(room_id: str, user_id: str):
    return lambda sync: any(
        user_id in e["content"]["user_ids"] for e in sync.ephemeral_of(room_id, "m.typing")
    )


async def test_typing_is_seen_on_the_other_server(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)

    await home.typing(room_id, True)
    await visitor_sync.until(typing_in(room_id, home.user_id))
    await visitor.typing(room_id, True)
    await home_sync.until(typing_in(room_id, visitor.user_id))


async def test_read_receipts_are_seen_on_the_other_server(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)
    event_id = await home.send(room_id, "read me")
    await visitor_sync.until(lambda s: s.event(room_id, event_id))

    await visitor.read_receipt(room_id, event_id)

    def visitor_read(sync) -> bool:
        return any(
            visitor.user_id in e["content"].get(event_id, {}).get("m.read", {})
            for e in sync.ephemeral_of(room_id, "m.receipt")
        )

    await home_sync.until(visitor_read)


async def test_presence_is_seen_on_the_other_server(both, direction):
    home, visitor = await _accounts(both, direction)
    _room_id, home_sync, _visitor_sync = await shared_room(home, visitor)

    await visitor.set_presence("unavailable", "in a meeting")

    await home_sync.until(
        lambda s: any(
            e["sender"] == visitor.user_id and e["content"].get("status_msg") == "in a meeting"
            for e in s.presence
        )
    )


async def test_a_to_device_message_reaches_the_other_servers_device(both, direction):
    home, visitor = await _accounts(both, direction)
    _room_id, home_sync, _visitor_sync = await shared_room(home, visitor)

    await visitor.send_to_device("m.interop", home.user_id, home.device_id, {"hello": "there"})

    message = await home_sync.until(
        lambda s: next((e for e in s.to_device if e["type"] == "m.interop"), None)
    )
    assert message["sender"] == visitor.user_id
    assert message["content"] == {"hello": "there"}


async def test_a_new_device_shows_in_the_other_servers_device_lists(both, direction):
    home, visitor = await _accounts(both, direction)
    _room_id, home_sync, _visitor_sync = await shared_room(home, visitor)
    home_sync.devices_changed.clear()

    await both.new_device(visitor)

    await home_sync.until(lambda s: visitor.user_id in s.devices_changed)
