"""Filters over HTTP: uploaded once, read back as given, only by their owner.

Spec: `content/client-server-api/_index.md` ("Filtering"),
`data/api/client-server/filter.yaml`; the filter's shape is
`definitions/sync_filter.yaml` (parsed by `core/filters.py`).
"""

from __future__ import annotations

import dataclasses

import pytest
import trio

from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.server import TestServer, make_config, serving

SPEC_EXAMPLE = {
    "room": {
        "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
        "timeline": {
            "limit": 10,
            "types": ["m.room.message"],
            "not_rooms": ["!726s6s6q:example.com"],
            "not_senders": ["@spam:example.com"],
        },
        "ephemeral": {
            "types": ["m.receipt", "m.typing"],
            "not_rooms": ["!726s6s6q:example.com"],
            "not_senders": ["@spam:example.com"],
        },
    },
    "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
    "event_format": "client",
    "event_fields": ["type", "content", "sender"],
}


def filter_path(user: User | str, filter_id: str | None = None) -> str:
    user_id = user if isinstance(user, str) else user.user_id
    path = f"/user/{path_part(user_id)}/filter"
    return path if filter_id is None else f"{path}/{path_part(filter_id)}"


async def upload(user: User, filter_json: dict) -> str:
    return ok(await user.post(filter_path(user), filter_json))["filter_id"]


async def test_a_filter_reads_back_exactly_as_uploaded(server: TestServer):
    alice = await register(server)
    filter_id = await upload(alice, SPEC_EXAMPLE)
    assert ok(await alice.get(filter_path(alice, filter_id))) == SPEC_EXAMPLE


async def test_filter_ids_are_distinct_and_never_start_with_a_brace(server: TestServer):
    alice = await register(server)
    ids = [await upload(alice, {"room": {"timeline": {"limit": n}}}) for n in range(5)]
    assert len(set(ids)) == len(ids)
    assert not any(filter_id.startswith("{") for filter_id in ids)


async def test_an_empty_filter_is_valid(server: TestServer):
    alice = await register(server)
    assert ok(await alice.get(filter_path(alice, await upload(alice, {})))) == {}


@pytest.mark.parametrize(
    "bad_filter",
    [
        {"room": {"timeline": {"limit": "ten"}}},
        {"room": {"rooms": "!a:b"}},
        {"presence": {"types": [1]}},
        {"room": []},
    ],
    ids=["limit not a number", "rooms not a list", "types not strings", "room not an object"],
)
async def test_a_filter_of_the_wrong_shape_is_400_m_bad_json(server: TestServer, bad_filter):
    alice = await register(server)
    assert_error(await alice.post(filter_path(alice), bad_filter), 400, "M_BAD_JSON")


async def test_an_unknown_filter_id_is_404_m_not_found(server: TestServer):
    alice = await register(server)
    assert_error(await alice.get(filter_path(alice, "nosuchfilter")), 404, "M_NOT_FOUND")


async def test_nobody_uploads_or_reads_filters_for_another_user(server: TestServer):
    alice, mallory = await register(server), await register(server)
    filter_id = await upload(alice, SPEC_EXAMPLE)

    assert_error(await mallory.get(filter_path(alice, filter_id)), 403, "M_FORBIDDEN")
    assert_error(await mallory.post(filter_path(alice), {}), 403, "M_FORBIDDEN")
    # and the id means nothing under mallory's own name
    assert_error(await mallory.get(filter_path(mallory, filter_id)), 404, "M_NOT_FOUND")


async def test_filters_survive_a_restart(tmp_path):
    config = make_config(tmp_path / "db")
    async with trio.open_nursery() as nursery, serving(nursery, config) as first:
        alice = await register(first)
        filter_id = await upload(alice, SPEC_EXAMPLE)

    async with trio.open_nursery() as nursery, serving(nursery, config) as second:
        alice = dataclasses.replace(alice, http=second.client)
        assert ok(await alice.get(filter_path(alice, filter_id))) == SPEC_EXAMPLE
