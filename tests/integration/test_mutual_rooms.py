"""`GET /user/mutual_rooms`: the rooms two users are both joined to.

MSC2666 ("Get rooms in common with another user"), at the stable
`/_matrix/client/v1/user/mutual_rooms` and Synapse's unstable
`/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms`, with
`next_batch` paging; invites do not count; asking about oneself, a missing or
malformed `user_id` and a bad `from` are 400 with the errcodes Synapse gives.
"""

from __future__ import annotations

import pytest

from matrix_conduit.service import mutual_rooms
from tests.support.matrix import assert_error, ok, register
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

STABLE = "/_matrix/client/v1"
UNSTABLE = "/_matrix/client/unstable/uk.half-shot.msc2666"


async def mutual(user, params: dict, prefix: str = STABLE):
    return await user.request("GET", "/user/mutual_rooms", params=params, prefix=prefix)


@pytest.mark.parametrize("prefix", [STABLE, UNSTABLE])
async def test_only_rooms_both_users_joined_are_listed(server, prefix):
    alice, bob = await register(server), await register(server)
    shared = await alice.create_room(preset="public_chat")
    await bob.join(shared)
    await alice.create_room(preset="public_chat")  # alice alone
    invited_only = await alice.create_room(preset="private_chat")
    await alice.invite(invited_only, bob)

    answer = ok(await mutual(alice, {"user_id": bob.user_id}, prefix))

    assert answer == {"joined": [shared]}
    assert ok(await mutual(bob, {"user_id": alice.user_id}, prefix)) == {"joined": [shared]}


async def test_pages_follow_next_batch_until_the_last(server, monkeypatch):
    monkeypatch.setattr(mutual_rooms, "PAGE_SIZE", 2)
    alice, bob = await register(server), await register(server)
    rooms = []
    for _ in range(5):
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id)
        rooms.append(room_id)

    seen, params, pages = [], {"user_id": bob.user_id}, 0
    while True:
        answer = ok(await mutual(alice, params, UNSTABLE))
        seen += answer["joined"]
        pages += 1
        if "next_batch" not in answer:
            break
        params = {"user_id": bob.user_id, "from": answer["next_batch"]}

    assert pages == 3
    assert seen == sorted(rooms)


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"user_id": "not-a-user"}, "M_INVALID_PARAM"),
        ({"user_id": "@someone:localhost", "from": "-1"}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_requests_get_400(server, params, errcode):
    alice = await register(server)

    assert_error(await mutual(alice, params), 400, errcode)


async def test_asking_about_oneself_is_refused(server):
    alice = await register(server)

    assert_error(await mutual(alice, {"user_id": alice.user_id}), 400, "M_INVALID_PARAM")


async def test_it_needs_an_access_token(server):
    response = await server.client.get(f"{STABLE}/user/mutual_rooms?user_id=@a:localhost")

    assert_error(response, 401, "M_MISSING_TOKEN")
