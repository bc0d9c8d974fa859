"""Transactions to an appservice survive restarts and lost answers: none lost, none doubled.

Spec: `content/application-service-api.md`, "Pushing events": the homeserver
MUST keep a queue of transactions, backs off while the appservice is
unreachable, and on a retry sends the same transaction (same txnId, no
events added), which the appservice may drop as already processed. The
appservice here is the mautrix bridge of `tests/support/mautrix_bridge.py`,
which deduplicates by txnId.
"""

from __future__ import annotations

import json

import pytest
import trio

from tests.integration.test_appservice_bridge import as_request
from tests.support.matrix import ok, path_part, register
from tests.support.mautrix_bridge import AS_ID, Bridge
from tests.support.server import make_config, start_server

pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated:DeprecationWarning")

MESSAGES = 5


async def test_transactions_queued_over_a_restart_arrive_once_in_order(nursery, tmp_path):
    bridge = Bridge(tmp_path)
    config = make_config(tmp_path / "db", app_service_config_files=[str(bridge.registration_path)])
    async with trio.open_nursery() as first_run:  # the bridge is down all along
        server = await start_server(first_run, config)
        alice = await register(server)
        room_id = await alice.create_room(preset="public_chat")
        ghost_id = bridge.ghost("henry")
        body = {
            "type": "m.login.application_service",
            "username": "_bridge_henry",
            "inhibit_login": True,  # no device: nothing queued for its device list
        }
        ok(await as_request(server, "POST", "/register", json=body))
        joined = await as_request(
            server, "POST", f"/join/{path_part(room_id)}", params={"user_id": ghost_id}, json={}
        )
        ok(joined)
        sent = [await alice.send(room_id, f"queued {n}") for n in range(MESSAGES)]
        assert server.services.appservice_sender.pending(AS_ID) == MESSAGES + 1  # + the join
        await server.client.aclose()
        await server.stop()

    bridge.fail_transactions = 1  # the first answer after the restart gets lost
    second = await start_server(nursery, config)
    await bridge.start(second.base_url)
    try:
        await bridge.wait_for(
            lambda b: len(b.transactions) >= 2 and set(sent) <= set(b.event_ids())
        )
        with trio.fail_after(30):
            while second.services.appservice_sender.pending(AS_ID):
                await trio.sleep(0.05)
    finally:
        await bridge.stop()
        await second.client.aclose()
        await second.stop()

    (first_id, first_body), (retry_id, retry_body) = bridge.transactions[:2]
    assert retry_id == first_id and json.loads(retry_body) == json.loads(first_body)
    received = bridge.event_ids()
    assert len(received) == len(set(received)) == MESSAGES + 1
    messages = [str(e.event_id) for e in bridge.events if e.type.t == "m.room.message"]
    assert messages == sent
    assert bridge.events[0].state_key == ghost_id
