"""Sliding sync requests that are not what MSC4186 describes: a spec errcode each, never a 500.

Spec: MSC4186 ("Request Body"); `content/client-server-api/_index.md`
("Standard error response": `M_BAD_JSON`, `M_NOT_JSON`, `M_INVALID_PARAM`).
"""

from __future__ import annotations

import pytest

from tests.support.matrix import assert_error
from tests.support.shared_server import shared_server_fixtures
from tests.support.sliding_sync import SLIDING_SYNC_PREFIX, Connection, user_without_rooms

running_server, server = shared_server_fixtures()

BAD_BODIES = [
    ({"conn_id": 5}, "M_BAD_JSON"),
    ({"lists": []}, "M_BAD_JSON"),
    ({"lists": {"l": 1}}, "M_BAD_JSON"),
    ({"lists": {"l": {"ranges": [[0.5, 2]]}}}, "M_BAD_JSON"),
    ({"lists": {"l": {"ranges": [[0, 1, 2]]}}}, "M_BAD_JSON"),
    ({"lists": {"l": {"ranges": [[0, 10]], "timeline_limit": True}}}, "M_BAD_JSON"),
    ({"lists": {"l": {"ranges": [[0, 10]], "timeline_limit": 100000}}}, "M_INVALID_PARAM"),
    ({"lists": {"l": {"ranges": [[0, 10]], "required_state": "all"}}}, "M_BAD_JSON"),
    ({"lists": {"l": {"ranges": [[0, 10]], "filters": {"room_types": "m.space"}}}}, "M_BAD_JSON"),
    ({"lists": {"l": {"ranges": [[0, 10]], "filters": {"spaces": [1]}}}}, "M_BAD_JSON"),
    ({"lists": {str(n): {"ranges": [[0, 1]]} for n in range(101)}}, "M_INVALID_PARAM"),
    ({"room_subscriptions": {"!a:localhost": []}}, "M_BAD_JSON"),
    ({"extensions": {"to_device": []}}, "M_BAD_JSON"),
    ({"extensions": {"to_device": {"enabled": "yes"}}}, "M_BAD_JSON"),
    ({"extensions": {"to_device": {"enabled": True, "since": 5}}}, "M_BAD_JSON"),
    ({"extensions": {"to_device": {"enabled": True, "since": "abc"}}}, "M_INVALID_PARAM"),
    ({"extensions": {"account_data": {"enabled": True, "lists": "all"}}}, "M_BAD_JSON"),
]


@pytest.mark.parametrize(("body", "errcode"), BAD_BODIES)
async def test_a_malformed_body_gets_its_errcode(server, body, errcode):
    alice = await user_without_rooms(server)
    response = await alice.request(
        "POST", "/sync", body=body, params={"timeout": 0}, prefix=SLIDING_SYNC_PREFIX
    )
    assert_error(response, 400, errcode)


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"timeout": "soon"}, "M_INVALID_PARAM"),
        ({"timeout": "-5"}, "M_INVALID_PARAM"),
        ({"set_presence": "busy"}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_query_parameters_get_m_invalid_param(server, params, errcode):
    alice = await user_without_rooms(server)
    response = await alice.request(
        "POST", "/sync", body={}, params=params, prefix=SLIDING_SYNC_PREFIX
    )
    assert_error(response, 400, errcode)


async def test_a_body_that_is_not_json_or_not_an_object_is_refused(server):
    alice = await user_without_rooms(server)
    url = SLIDING_SYNC_PREFIX + "/sync"
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    assert_error(await alice.http.post(url, content=b"{nope", headers=headers), 400, "M_NOT_JSON")
    assert_error(await alice.http.post(url, content=b"[1]", headers=headers), 400, "M_BAD_JSON")


async def test_without_an_access_token_it_is_m_missing_token(server):
    response = await server.client.post(SLIDING_SYNC_PREFIX + "/sync", json={})
    assert_error(response, 401, "M_MISSING_TOKEN")


async def test_a_pos_of_another_connection_is_unknown(server):
    alice = await user_without_rooms(server)
    first = Connection(alice, "one")
    await first.sync({})
    assert_error(await Connection(alice, "two").raw({}, pos=first.pos), 400, "M_UNKNOWN_POS")
