"""Room deletions (`service/room_purge.py`) survive a restart.

Synapse's admin API "Delete Room API" answers at once and works in the
background; here the request is written before it is answered, so a
deletion a restart interrupted is carried out when the server starts again.
"""

from __future__ import annotations

import trio

from matrix_conduit.service.room_purge import DeletionRequest
from tests.support.rooms import ALICE, BOB, open_services, public_room


async def test_a_deletion_interrupted_by_a_restart_is_done_at_the_next_start(tmp_path):
    with open_services(tmp_path) as services:
        room_id = await public_room(services)
        delete_id = services.room_purge.start(
            DeletionRequest(room_id=room_id, requester=ALICE, block=True)
        )
        assert services.room_purge.status(delete_id)["status"] == "scheduled"
        # The server stops before its background work took the deletion up.

    with open_services(tmp_path) as services:
        room_purge = services.room_purge
        assert room_purge.is_blocked(room_id)  # blocked when asked, before the restart
        with trio.fail_after(30):  # a bound on a hang, not a measure of speed
            async with trio.open_nursery() as nursery:
                nursery.start_soon(room_purge.run)
                while delete_id not in room_purge.finished:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        status = room_purge.status(delete_id)
        assert status["status"] == "complete"
        assert sorted(status["shutdown_room"]["kicked_users"]) == sorted([ALICE, BOB])
        state_cache = services.rooms.state_cache
        assert state_cache.membership(room_id, ALICE) == "leave"
        assert state_cache.membership(room_id, BOB) == "leave"
        assert room_purge.statuses_of_room(room_id) == [status]
