"""`GET /mutual_rooms`: the rooms two users are both joined to.

Spec: `content/client-server-api/modules/mutual_rooms.md` and
`data/api/client-server/mutual_rooms.yaml` (v1.19, MSC2666), at
`/_matrix/client/v1/mutual_rooms`, Synapse's `/_matrix/client/unstable/mutual_rooms`
and the older unstable `uk.half-shot.msc2666/user/mutual_rooms`: `joined` and
the total `count`, paged with `next_batch`/`from`; invites do not count;
asking about oneself, a missing or malformed `user_id` and a bad `from` are
400 with the errcodes Synapse gives.
"""

from __future__ import annotations

import pytest

from matrix_conduit.service import mutual_rooms
from tests.support.matrix import assert_error, ok, register
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()

STABLE = "/_matrix/client/v1/mutual_rooms"
UNSTABLE = "/_matrix/client/unstable/mutual_rooms"
OLD_UNSTABLE = "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"


async def mutual(user, params: dict, path: str = STABLE):
    return await user.request("GET", "", params=params, prefix=path)


@pytest.mark.parametrize("prefix", [STABLE, UNSTABLE, OLD_UNSTABLE])
async def test_only_rooms_both_users_joined_are_listed(server, prefix):
    alice, bob = await register(server), await register(server)
    shared = await alice.create_room(preset="public_chat")
    await bob.join(shared)
    await alice.create_room(preset="public_chat")  # alice alone
    invited_only = await alice.create_room(preset="private_chat")
    await alice.invite(invited_only, bob)

    answer = ok(await mutual(alice, {"user_id": bob.user_id}, prefix))

    assert answer == {"joined": [shared], "count": 1}
    assert ok(await mutual(bob, {"user_id": alice.user_id}, prefix))["joined"] == [shared]
    assert ok(await mutual(alice, {"user_id": "@nobody:localhost"}, prefix)) == {
        "joined": [],
        "count": 0,
    }


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
        answer = ok(await mutual(alice, params))
        assert answer["count"] == 5
        seen += answer["joined"]
        pages += 1
        if "next_batch" not in answer:
            break
        params = {"user_id": bob.user_id, "from": answer["next_batch"]}

    assert pages == 3
    assert seen == sorted(rooms)


async def test_a_room_left_between_pages_does_not_shift_the_next_page(server, monkeypatch):
    """The token names where the page ended (a room id), not an offset."""
    monkeypatch.setattr(mutual_rooms, "PAGE_SIZE", 2)
    alice, bob = await register(server), await register(server)
    rooms = []
    for _ in range(4):
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id)
        rooms.append(room_id)
    rooms.sort()
    first = ok(await mutual(alice, {"user_id": bob.user_id}))

    await bob.leave(rooms[0])
    second = ok(await mutual(alice, {"user_id": bob.user_id, "from": first["next_batch"]}))

    assert first["joined"] == rooms[:2]
    assert second == {"joined": rooms[2:], "count": 3}


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"user_id": "not-a-user"}, "M_INVALID_PARAM"),
        ({"user_id": "@someone:localhost", "from": "-1"}, "M_INVALID_PARAM"),
        ({"user_id": "@someone:localhost", "from": "bm90LWEtcm9vbQ"}, "M_INVALID_PARAM"),
        ({"user_id": ["@a:localhost", "@b:localhost"]}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_requests_get_400(server, params, errcode):
    alice = await register(server)

    assert_error(await mutual(alice, params), 400, errcode)


async def test_asking_about_oneself_is_refused(server):
    alice = await register(server)

    assert_error(await mutual(alice, {"user_id": alice.user_id}), 400, "M_INVALID_PARAM")


async def test_it_needs_an_access_token(server):
    response = await server.client.get(f"{STABLE}?user_id=@a:localhost")

    assert_error(response, 401, "M_MISSING_TOKEN")


async def test_versions_advertise_mutual_rooms_and_room_summaries(server):
    """Clients call these endpoints only when /versions names them (the spec versions
    that define them, v1.15 and v1.19, are not advertised yet)."""
    features = ok(await server.client.get("/_matrix/client/versions"))["unstable_features"]

    assert features["uk.half-shot.msc2666.query_mutual_rooms"] is True
    assert features["im.nheko.summary"] is True
