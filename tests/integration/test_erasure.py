"""Account erasure: `POST /account/deactivate` with `erase: true`.

Spec: `content/client-server-api/_index.md`, "Account deactivation" and
`data/api/client-server/account_deactivation.yaml` (`erase`: the server
should hide the user's messages from users who join later, as far as it
can): "any users which join the room after the erasure request are served
redacted copies of the events sent by this account. Users which had
visibility on those events prior to the erasure are still able to see
unredacted copies"; the profile is cleared. Without `erase`, nothing is
hidden.
"""

from __future__ import annotations

import pytest
from nio import AsyncClient, RoomMessageText

from matrix_conduit.service.devices import DeviceLogin
from tests.support.matrix import User, bodies, ok, path_part, register
from tests.support.nio import in_asyncio
from tests.support.rooms import open_services
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

PASSWORD = "erase me please"


async def deactivate(user: User, *, erase: bool) -> None:
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": PASSWORD,
    }
    ok(await user.post("/account/deactivate", {"auth": auth, "erase": erase}))


async def room_with_history(server, visibility: str = "shared") -> tuple[str, User, User, str]:
    """A room where `alice` (who will go) said something while `bob` was there."""
    alice = await register(server, password=PASSWORD)
    bob = await register(server)
    room_id = await alice.create_room(
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": visibility}}
        ],
    )
    await bob.join(room_id)
    event_id = await alice.send(room_id, "my secret")
    return room_id, alice, bob, event_id


def message_of(events: list[dict], event_id: str) -> dict:
    return next(event for event in events if event["event_id"] == event_id)


@pytest.mark.parametrize("visibility", ["shared", "world_readable"])
async def test_later_joiners_see_an_erased_users_messages_redacted(server, visibility):
    room_id, alice, bob, event_id = await room_with_history(server, visibility)
    await deactivate(alice, erase=True)
    carol = await register(server)
    await carol.join(room_id)

    carol_view = message_of(await carol.timeline(room_id), event_id)
    carol_event = ok(await carol.get(f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}"))
    carol_sync = ok(await carol.get("/sync"))["rooms"]["join"][room_id]["timeline"]["events"]

    assert carol_view["content"] == {}
    assert carol_view["sender"] == alice.user_id
    assert carol_event["content"] == {}
    assert "my secret" not in bodies(carol_sync)
    assert bodies([message_of(await bob.timeline(room_id), event_id)]) == ["my secret"]


async def test_who_joined_before_the_erasure_keeps_seeing_the_message(server):
    """Bob was there when it was sent (and changes his name after the erasure); Dave
    joined after the message, before the erasure (shared history: he could read it);
    Erin joined and left before the erasure (a former member reads up to her leave)."""
    room_id, alice, bob, event_id = await room_with_history(server)
    dave, erin = await register(server), await register(server)
    await dave.join(room_id)
    await erin.join(room_id)
    await erin.leave(room_id)
    await deactivate(alice, erase=True)
    ok(await bob.put(f"/profile/{path_part(bob.user_id)}/displayname", {"displayname": "B"}))

    for user in (bob, dave, erin):
        assert bodies([message_of(await user.timeline(room_id), event_id)]) == ["my secret"]


async def test_rejoining_after_the_erasure_does_not_bring_the_message_back(server):
    """Frank, who never was in the room before the erasure, joins, leaves, joins again."""
    room_id, alice, _, event_id = await room_with_history(server)
    await deactivate(alice, erase=True)
    frank = await register(server)
    await frank.join(room_id)
    await frank.leave(room_id)
    await frank.join(room_id)

    assert message_of(await frank.timeline(room_id), event_id)["content"] == {}


async def test_a_peeker_of_a_world_readable_room_sees_it_redacted_too(server):
    _, alice, _, event_id = await room_with_history(server, "world_readable")
    await deactivate(alice, erase=True)
    eve = await register(server)

    seen = ok(await eve.get(f"/events/{path_part(event_id)}"))

    assert seen["content"] == {}


async def test_without_erase_later_joiners_still_see_the_messages(server):
    room_id, alice, _, event_id = await room_with_history(server)
    await deactivate(alice, erase=False)
    carol = await register(server)
    await carol.join(room_id)

    assert bodies([message_of(await carol.timeline(room_id), event_id)]) == ["my secret"]


async def test_an_erased_users_profile_is_cleared(server):
    _, alice, _, _ = await room_with_history(server)
    ok(await alice.put(f"/profile/{path_part(alice.user_id)}/displayname", {"displayname": "Al"}))

    await deactivate(alice, erase=True)

    assert ok(await server.client.get(f"/_matrix/client/v3/profile/{alice.user_id}")) == {}
    assert server.services.users.is_erased(alice.user_id)


async def test_nio_client_joining_later_never_sees_the_erased_text(server):
    room_id, alice, bob, _ = await room_with_history(server)
    await bob.send(room_id, "bob stays")
    await deactivate(alice, erase=True)
    carol = await register(server)
    await carol.join(room_id)

    async def scenario() -> list[str]:
        client = AsyncClient(server.base_url, carol.user_id)
        client.access_token, client.device_id = carol.access_token, carol.device_id
        client.user_id = carol.user_id
        try:
            await client.sync(timeout=0, full_state=True)
            messages = await client.room_messages(room_id, start="", limit=50)
            return [event.body for event in messages.chunk if isinstance(event, RoomMessageText)]
        finally:
            await client.close()

    texts = await in_asyncio(scenario)

    assert "bob stays" in texts
    assert "my secret" not in texts


async def test_erasure_survives_a_restart(tmp_path):
    """The erased mark is stored with the deactivation, not only kept in memory."""
    with open_services(tmp_path) as services:
        await services.registration.register(
            username="gone", password=PASSWORD, login=DeviceLogin()
        )
        await services.users.deactivate("@gone:localhost", erase=True)

    with open_services(tmp_path) as services:
        assert services.users.is_erased("@gone:localhost")
        assert services.rooms.visibility.erased_at("@gone:localhost") is not None


async def test_erasure_deletes_the_accounts_account_data(server):
    """`erase`: "the server should additionally erase any non-event data associated
    with the user, such as account data"; a plain deactivation keeps it."""
    room_id, alice, _, _ = await room_with_history(server)
    keeper = await register(server, password=PASSWORD)
    for user in (alice, keeper):
        ok(await user.put(f"/user/{path_part(user.user_id)}/account_data/org.example.s", {"a": 1}))
    ok(
        await alice.put(
            f"/user/{path_part(alice.user_id)}/rooms/{path_part(room_id)}/account_data/org.x",
            {"b": 2},
        )
    )

    await deactivate(alice, erase=True)
    await deactivate(keeper, erase=False)

    account_data = server.services.account_data
    assert account_data.get(alice.user_id, None, "org.example.s") is None
    assert account_data.get(alice.user_id, room_id, "org.x") is None
    assert account_data.get(keeper.user_id, None, "org.example.s") == {"a": 1}
