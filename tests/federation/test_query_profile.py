"""`GET /_matrix/federation/v1/query/profile` between two of our servers over TLS.

Spec: `content/server-server-api.md` § Querying for information;
`data/api/server-server/query.yaml` (`/query/profile`: the whole public
profile, or only `field`; an unset field left out; 404 for an unknown user) and
§ Request Authentication (the route is behind the X-Matrix gate).
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.federation.errors import RemoteError
from tests.support.accounts import bearer, register
from tests.support.federation import FederatingServer, start_federating

PROFILE = "/_matrix/federation/v1/query/profile"
AVATAR = "mxc://example.org/avatar"


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3", allow_registration=True)
    return a, b


async def _user_with_profile(b: FederatingServer, avatar: str | None = AVATAR) -> str:
    account = await register(b.client, "bob")
    user_id, headers = account["user_id"], bearer(account["access_token"])
    put = await b.client.put(
        f"/_matrix/client/v3/profile/{user_id}/displayname",
        json={"displayname": "Bob"},
        headers=headers,
    )
    assert put.status_code == 200, put.text
    if avatar is not None:
        put = await b.client.put(
            f"/_matrix/client/v3/profile/{user_id}/avatar_url",
            json={"avatar_url": avatar},
            headers=headers,
        )
        assert put.status_code == 200, put.text
    return user_id


async def test_the_whole_profile_of_a_local_user(pair):
    a, b = pair
    user_id = await _user_with_profile(b)

    answer = await a.federation.client.request(b.name, "GET", PROFILE, query={"user_id": user_id})

    assert answer == {"displayname": "Bob", "avatar_url": AVATAR}


async def test_one_field_only(pair):
    a, b = pair
    user_id = await _user_with_profile(b)

    displayname = await a.federation.client.request(
        b.name, "GET", PROFILE, query={"user_id": user_id, "field": "displayname"}
    )
    avatar = await a.federation.client.request(
        b.name, "GET", PROFILE, query={"user_id": user_id, "field": "avatar_url"}
    )

    assert displayname == {"displayname": "Bob"}
    assert avatar == {"avatar_url": AVATAR}


async def test_unset_fields_are_left_out_even_when_asked_for(pair):
    a, b = pair
    user_id = await _user_with_profile(b, avatar=None)

    whole = await a.federation.client.request(b.name, "GET", PROFILE, query={"user_id": user_id})
    avatar = await a.federation.client.request(
        b.name, "GET", PROFILE, query={"user_id": user_id, "field": "avatar_url"}
    )

    assert whole == {"displayname": "Bob"}
    assert avatar == {}


async def test_an_unknown_user_is_404(pair):
    a, b = pair

    with pytest.raises(RemoteError) as error:
        await a.federation.client.request(
            b.name, "GET", PROFILE, query={"user_id": f"@nobody:{b.name}"}
        )

    assert (error.value.status, error.value.errcode) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"user_id": "not a user id"}, "M_INVALID_PARAM"),
        ({"user_id": "@bob:elsewhere.example"}, "M_INVALID_PARAM"),
    ],
)
async def test_a_missing_bad_or_foreign_user_id_is_400(pair, query, errcode):
    a, b = pair

    with pytest.raises(RemoteError) as error:
        await a.federation.client.request(b.name, "GET", PROFILE, query=query)

    assert (error.value.status, error.value.errcode) == (400, errcode)


async def test_an_unsigned_request_is_refused(pair):
    _, b = pair
    user_id = await _user_with_profile(b)

    answer = await b.client.get(PROFILE, params={"user_id": user_id})

    assert answer.status_code == 401
    assert answer.json()["errcode"] == "M_UNAUTHORIZED"
