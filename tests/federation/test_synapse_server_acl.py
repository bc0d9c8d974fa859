"""Server ACLs between ours and a real Synapse, both ways.

A room's `m.room.server_acl` denies the visitor's server (by host, without
the port, with IP literals allowed: both servers here are IP literals):
the room's server refuses its joins, and drops the PDUs it still sends. The
room's server says so: ours in its `/send` answer (Synapse logs "Remote
returned error for <event id>"), Synapse in its log ("Ignoring PDUs for room
... from banned server"); only then is it checked that the home user's
`/sync` and `/event` never show the event. Spec: `content/server-server-api.md`
"Server Access Control Lists (ACLs)".
"""

from __future__ import annotations

import re

import pytest

from tests.support.matrix import ok, path_part
from tests.support.remote_membership import eventually
from tests.support.synapse import Synapse
from tests.support.synapse_rooms import (
    DIRECTIONS,
    Account,
    Peers,
    has_bodies,
    our_errors,
    peers,
    shared_room,
    sides,
    start_ours,
)

pytestmark = pytest.mark.parametrize("direction", DIRECTIONS)


@pytest.fixture
async def both(nursery, synapse, tmp_path, caplog) -> Peers:
    ours = await start_ours(nursery, synapse, tmp_path / "us")
    async with peers(ours, synapse) as pair:
        yield pair
    assert not our_errors(caplog.records), our_errors(caplog.records)


def _denying(server_name: str) -> dict:
    host = server_name.rsplit(":", 1)[0]
    return {"allow": ["*"], "deny": [host], "allow_ip_literals": True}


async def _accounts(both: Peers, direction: str) -> tuple[Account, Account]:
    home_side, visitor_side = sides(direction)
    return await both.account_on(home_side), await both.account_on(visitor_side)


async def test_a_user_of_a_server_the_acl_denies_cannot_join(both, direction):
    home, visitor = await _accounts(both, direction)
    acl = {"type": "m.room.server_acl", "state_key": "", "content": _denying(visitor.server_name)}
    room_id = await home.create_room(preset="public_chat", initial_state=[acl])

    refused = await visitor.join(room_id, server_name=home.server_name)

    assert refused.status_code == 403, refused.text
    assert refused.json()["errcode"] == "M_FORBIDDEN"
    members = ok(await home.request("GET", f"/rooms/{path_part(room_id)}/joined_members"))
    assert visitor.user_id not in members["joined"]


async def _dropped(synapse: Synapse, since: int, home: Account, room_id: str, event_id: str):
    """Wait until the room's server has said it dropped `event_id` (see the module's doc)."""
    if home.server_name == synapse.server_name:
        pattern = f"Ignoring PDUs for room {re.escape(room_id)} from banned server"
    else:
        pattern = f"Remote returned error for {re.escape(event_id)}"
    await eventually(lambda: _logged(synapse, since, pattern), timeout=60)


async def _logged(synapse: Synapse, since: int, pattern: str) -> bool:
    return re.search(pattern, synapse.log(since)) is not None


async def test_messages_from_a_server_the_acl_came_to_deny_are_dropped(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync, visitor_sync = await shared_room(home, visitor)
    acl_id = ok(await home.put_state(room_id, "m.room.server_acl", _denying(visitor.server_name)))[
        "event_id"
    ]
    await visitor_sync.until(lambda sync: sync.event(room_id, acl_id))
    since = both.synapse.log_size()

    event_id = await visitor.send(room_id, "from a denied server")

    await _dropped(both.synapse, since, home, room_id, event_id)
    await home.send(room_id, "home goes on")
    await home_sync.until(has_bodies(room_id, "home goes on"))
    assert "from a denied server" not in home_sync.bodies(room_id)
    assert (await home.event(room_id, event_id)).status_code == 404
