"""History from before our join, between two of our servers over TLS: `/backfill` served
and used by `/messages`.

Spec: `content/server-server-api.md` § Backfilling and retrieving missing events
(`GET /backfill/{roomId}`), § Retrieving events (`GET /event_auth/{roomId}/{eventId}`),
§ Checks performed on receipt of a PDU, § Server Access Control Lists;
`content/client-server-api/_index.md` § Pagination (`/messages` with `dir=b` back to
`m.room.create`); `content/client-server-api/modules/history_visibility.md` (what a
server may be given is what its users could see).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio

from matrix_conduit.core.events import compute_event_id
from matrix_conduit.core.room_versions import get_room_version
from matrix_conduit.service.federation import backfill as backfill_service
from matrix_conduit.service.federation.errors import RemoteError
from matrix_conduit.service.federation.received import wire_pdu
from tests.support.backfill import bodies, history
from tests.support.federation import FederatingServer, start_federating
from tests.support.matrix import User, ok, path_part, register
from tests.support.push_gateway import start_gateway
from tests.support.remote_membership import eventually, join
from tests.support.stub_peer import StubPeer, StubRoom, start_stub_peer

BACKFILL = "/_matrix/federation/v1/backfill/"
LIMIT_20 = json.dumps({"room": {"timeline": {"limit": 20}}})


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3", max_fetch_prev_events=5)
    return a, b


async def room_with_history(
    a: FederatingServer, messages: int, **create: Any
) -> tuple[User, str, list[str]]:
    """A public room of a user of `a`, with `messages` messages sent before anyone else came."""
    alice = await register(a.server)
    create.setdefault("preset", "public_chat")
    room_id = await alice.create_room(**create)
    texts = [f"old {n}" for n in range(1, messages + 1)]
    for text in texts:
        await alice.send(room_id, text)
    return alice, room_id, texts


async def joined_later(a: FederatingServer, b: FederatingServer, room_id: str) -> User:
    bob = await register(b.server)
    ok(await join(bob, room_id, via=a.name))
    return bob


async def since_now(user: User) -> str:
    return ok(await user.get("/sync", timeout=0))["next_batch"]


async def new_in_sync(user: User, since: str, room_id: str) -> list[dict[str, Any]]:
    """The room's timeline events an incremental `/sync` from `since` brings."""
    answer = ok(await user.get("/sync", since=since, timeout=0))
    return answer["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])


async def federation_get(
    server: FederatingServer, destination: FederatingServer, path: str, **query: Any
) -> Any:
    return await server.federation.client.request(destination.name, "GET", path, query=query)


# ---- used by /messages


@pytest.mark.parametrize("room_version", ["1", "6", "10", "12"])
async def test_a_user_who_joined_later_pages_back_through_every_old_message_to_the_create(
    pair, room_version
):
    a, b = pair
    _alice, room_id, texts = await room_with_history(a, 150, room_version=room_version)
    bob = await joined_later(a, b, room_id)
    since = await since_now(bob)

    events = await history(bob, room_id, page=20)

    assert events[0]["type"] == "m.room.create"
    assert bodies(events) == texts
    assert [e["type"] for e in events].count("m.room.create") == 1
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[-1]["type"] == "m.room.member" and events[-1]["state_key"] == bob.user_id
    assert await new_in_sync(bob, since, room_id) == []  # history, not news
    assert b.server.services.rooms.timeline.forward_extremities(room_id) == [events[-1]["event_id"]]


async def test_backfilled_messages_push_nothing_and_a_live_one_after_them_is_pushed(nursery, pair):
    """Push (`content/push-gateway-api.md`) is for new events: the history B fetches is
    queued for no pusher; the first notification bob's gateway gets is the live message
    sent after it (the queue is in order, so anything queued before would come first)."""
    a, b = pair
    gateway = await start_gateway(nursery)
    alice, room_id, texts = await room_with_history(a, 10)
    bob = await joined_later(a, b, room_id)
    pusher = {
        "kind": "http",
        "app_id": "org.example.backfill",
        "pushkey": "bob-phone",
        "app_display_name": "Backfill test",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": gateway.url, "format": "event_id_only"},
    }
    ok(await bob.post("/pushers/set", pusher))
    assert bodies(await history(bob, room_id, page=5)) == texts

    live_id = await alice.send(room_id, "live")

    [first] = await gateway.wait_for(1)
    assert first["notification"]["event_id"] == live_id


async def test_paging_again_reads_the_stored_history_in_the_same_order(pair):
    a, b = pair
    _alice, room_id, texts = await room_with_history(a, 12)
    bob = await joined_later(a, b, room_id)
    first = await history(bob, room_id, page=5)
    await a.stop()  # nothing more can come from there

    again = await history(bob, room_id, page=7)

    assert [e["event_id"] for e in again] == [e["event_id"] for e in first]
    assert bodies(again) == texts


async def test_messages_after_the_join_and_backfilled_ones_come_in_one_order(pair):
    a, b = pair
    alice, room_id, texts = await room_with_history(a, 8)
    bob = await joined_later(a, b, room_id)
    await bob.send(room_id, "bob was here")
    await alice.send(room_id, "alice answers")
    await eventually(lambda: _holds(b, room_id, "alice answers"))

    events = await history(bob, room_id, page=4)

    assert bodies(events) == [*texts, "bob was here", "alice answers"]
    assert events[0]["type"] == "m.room.create"


async def _holds(server: FederatingServer, room_id: str, text: str) -> bool:
    """The server has a message with this text in the room's timeline (read from its
    storage: a `/messages` would backfill what is missing)."""
    timeline = server.server.services.rooms.timeline
    newest = timeline.events_before(room_id, timeline.last_position(room_id))
    return text in bodies([event for _, (_, event) in zip(range(10), newest, strict=False)])


async def test_messages_across_a_gap_left_by_the_missing_events_cap_come_in_order(pair):
    """B's `max_fetch_prev_events` is 5: of 30 messages it did not receive, it pulls the
    newest 5 and learns the state below them; `/messages` fills the other 25 from A."""
    a, b = pair
    alice, room_id, texts = await room_with_history(a, 3)
    bob = await joined_later(a, b, room_id)
    behind = await since_now(bob)  # a device of bob's that syncs only at the end
    await alice.send(room_id, "before the gap")
    await eventually(lambda: _holds(b, room_id, "before the gap"))
    timeline = a.server.services.rooms.timeline
    hooks = timeline.appending
    timeline.appending = [hook for hook in hooks if hook != a.server.services.outbox.queue_event]
    missed = [f"missed {n}" for n in range(1, 31)]
    for text in missed:
        await alice.send(room_id, text)
    timeline.appending = hooks
    await alice.send(room_id, "after the gap")
    await eventually(lambda: _holds(b, room_id, "after the gap"))
    held = bodies([e for _, e in b.server.services.rooms.timeline.events_after(room_id, 0)])
    assert len(set(missed) & set(held)) == 5  # the newest five: pulled, the rest a gap
    since = await since_now(bob)

    events = await history(bob, room_id, page=10)

    assert bodies(events) == [*texts, "before the gap", *missed, "after the gap"]
    assert events[0]["type"] == "m.room.create"
    assert await new_in_sync(bob, since, room_id) == []
    # A sync from before the gap: the newest 20 in room order, the filled ones among them.
    late = ok(await bob.get("/sync", since=behind, timeout=0, filter=LIMIT_20))
    timeline_part = late["rooms"]["join"][room_id]["timeline"]
    assert timeline_part["limited"] is True
    assert bodies(timeline_part["events"]) == [*missed, "after the gap"][-20:]


async def test_when_the_rooms_first_server_is_down_history_comes_from_another(
    nursery, ca, tmp_path, pair
):
    """A holds the room and has the most users in it, so it is asked first; it is down,
    so B asks C, whose user paged the history back (and so holds it) before."""
    a, b = pair
    c = await start_federating(nursery, ca, tmp_path / "c", "127.0.0.4")
    _alice, room_id, texts = await room_with_history(a, 12)
    ok(await join(await register(a.server), room_id))
    carol = await joined_later(a, c, room_id)
    assert bodies(await history(carol, room_id, page=50)) == texts
    bob = await joined_later(a, b, room_id)
    await a.stop()

    events = await history(bob, room_id, page=5)

    assert events[0]["type"] == "m.room.create"
    assert bodies(events) == texts
    assert b.federation.destinations.retry_at_ms(a.name) is not None  # A was tried, and failed


async def test_an_event_one_server_forged_is_taken_from_another_and_history_goes_on(
    nursery, ca, tmp_path, pair
):
    """A (asked first: the sender's server, with the most users) breaks the signatures
    of one old message in every answer; B keeps what checks out above it, and asks C
    for the forged one and what lies behind it."""
    a, b = pair
    c = await start_federating(nursery, ca, tmp_path / "c", "127.0.0.4")
    _alice, room_id, texts = await room_with_history(a, 20)
    ok(await join(await register(a.server), room_id))
    carol = await joined_later(a, c, room_id)
    assert bodies(await history(carol, room_id, page=50)) == texts
    asked: list[str] = []
    for name, server in (("a", a), ("c", c)):
        served = server.server.services.inbound.served
        real_backfill = served.backfill

        def answering(
            origin: str, room: str, from_ids: Any, limit: int, *, name=name, real=real_backfill
        ) -> dict:
            asked.append(name)
            answer = real(origin, room, from_ids, limit)
            for pdu in answer["pdus"]:
                if name == "a" and pdu["content"].get("body") == "old 10":
                    pdu["signatures"] = {a.name: {"ed25519:" + "x" * 6: "A" * 86}}
            return answer

        served.backfill = answering
    bob = await joined_later(a, b, room_id)

    events = await history(bob, room_id, page=50)

    assert events[0]["type"] == "m.room.create"
    assert bodies(events) == texts
    assert asked[:2] == ["a", "a"] and "c" in asked


async def test_a_server_the_rooms_acl_denies_is_never_asked_for_history(
    nursery, ca, tmp_path, pair
):
    """Spec § Server Access Control Lists: a denied server takes no part in the room, so
    its history is not asked for either; with A down, B gets nothing rather than C's."""
    a, b = pair
    c = await start_federating(nursery, ca, tmp_path / "c", "127.0.0.4")
    alice, room_id, texts = await room_with_history(a, 4)
    ok(await join(await register(a.server), room_id))
    carol = await joined_later(a, c, room_id)
    assert bodies(await history(carol, room_id, page=50)) == texts
    served = c.server.services.inbound.served
    real_backfill = served.backfill
    asked: list[str] = []

    def counting(origin: str, room: str, from_ids: Any, limit: int) -> dict:
        asked.append(origin)
        return real_backfill(origin, room, from_ids, limit)

    served.backfill = counting
    denied = c.name.rpartition(":")[0]
    await alice.set_state(room_id, "m.room.server_acl", {"allow": ["*"], "deny": [denied]})
    bob = await joined_later(a, b, room_id)
    await a.stop()

    events = await history(bob, room_id, page=5)

    assert asked == []
    assert bodies(events) == []


# ---- a peer that lies


async def test_a_backfill_answer_with_another_rooms_events_is_rejected_and_logged_once(
    pair, caplog
):
    a, b = pair
    alice, room_id, _texts = await room_with_history(a, 6)
    other_room = await alice.create_room(preset="public_chat")
    await alice.send(other_room, "from the other room")
    services = a.server.services
    other_events = [e for _, e in services.rooms.timeline.events_after(other_room, 0)]
    version = services.rooms.timeline.room_version(other_room)

    asked: list[str] = []

    def foreign(origin: str, room: str, from_ids: Any, limit: int) -> dict:
        asked.append(origin)
        return {
            "origin": a.name,
            "origin_server_ts": 0,
            "pdus": [wire_pdu(e, version) for e in other_events],
        }

    services.inbound.served.backfill = foreign
    bob = await joined_later(a, b, room_id)
    caplog.set_level(logging.WARNING, "matrix_conduit.service.federation.backfill")

    for _ in range(2):
        events = await history(bob, room_id, page=10)

    assert asked == [b.name]
    assert bodies(events) == []
    assert "m.room.create" not in [e["type"] for e in events]
    for event in other_events:
        assert b.server.services.rooms.timeline.get_event(event["event_id"]) is None
    warnings = [r for r in caplog.records if "another room" in r.getMessage()]
    assert len(warnings) == 1


async def test_backfilled_events_with_bad_signatures_are_never_shown(pair):
    a, b = pair
    _alice, room_id, _texts = await room_with_history(a, 6)
    served = a.server.services.inbound.served
    real_backfill = served.backfill

    forged_ids: list[str] = []

    def forged(origin: str, room: str, from_ids: Any, limit: int) -> dict:
        answer = real_backfill(origin, room, from_ids, limit)
        forged_ids.extend(compute_event_id(pdu, version) for pdu in answer["pdus"])
        for pdu in answer["pdus"]:
            pdu["signatures"] = {a.name: {"ed25519:" + "x" * 6: "A" * 86}}
        return answer

    served.backfill = forged
    version = a.server.services.rooms.timeline.room_version(room_id)
    bob = await joined_later(a, b, room_id)

    events = await history(bob, room_id, page=10)

    assert len(forged_ids) >= 6
    assert bodies(events) == []
    assert [e["type"] for e in events] == ["m.room.member"]
    shown = {e["event_id"] for e in events}
    for event_id in forged_ids:
        assert event_id not in shown
        assert b.server.services.rooms.timeline.position(event_id) is None


async def test_backfilled_messages_whose_content_was_changed_are_shown_redacted_only(pair):
    """A content hash that does not match: the event goes on redacted (spec: § Checks
    performed on receipt of a PDU, step 3); the changed text never reaches a client."""
    a, b = pair
    _alice, room_id, texts = await room_with_history(a, 6)
    served = a.server.services.inbound.served
    real_backfill = served.backfill

    def tampered(origin: str, room: str, from_ids: Any, limit: int) -> dict:
        answer = real_backfill(origin, room, from_ids, limit)
        for pdu in answer["pdus"]:
            if pdu["type"] == "m.room.message":
                pdu["content"] = {"msgtype": "m.text", "body": "forged"}
        return answer

    served.backfill = tampered
    bob = await joined_later(a, b, room_id)

    events = await history(bob, room_id, page=10)

    assert events[0]["type"] == "m.room.create"
    messages = [e for e in events if e["type"] == "m.room.message"]
    assert len(messages) == len(texts)
    assert all(e["content"] == {} for e in messages)


async def room_with_a_stub_member(
    nursery: Any, ca: Any, pair: Any
) -> tuple[FederatingServer, User, str, StubPeer]:
    """A's room with history and a user of a stub peer in it; then bob of B joined and
    A stopped, so the stub is the one server B can ask for the history."""
    a, b = pair
    stub = await start_stub_peer(nursery, ca, "127.0.0.5")
    _alice, room_id, _texts = await room_with_history(a, 5)
    await stub.join(a, room_id, "mallory")
    bob = await joined_later(a, b, room_id)
    await a.stop()
    return b, bob, room_id, stub


async def test_a_stub_peer_answering_backfill_with_its_own_rooms_events_gives_nothing(
    nursery, ca, pair, caplog
):
    """The stub's answer is validly signed, by the stub, but of a room of its own."""
    b, bob, room_id, stub = await room_with_a_stub_member(nursery, ca, pair)
    elsewhere = StubRoom.create(stub)

    async def other_room(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        return 200, {"origin": stub.name, "origin_server_ts": 0, "pdus": elsewhere.state_pdus()}

    stub.on("GET", BACKFILL, other_room)
    caplog.set_level(logging.WARNING, "matrix_conduit.service.federation.backfill")

    events = await history(bob, room_id, page=10)

    assert stub.asked("GET", BACKFILL)
    assert [e["type"] for e in events] == ["m.room.member"]
    timeline = b.server.services.rooms.timeline
    version = get_room_version("10")
    for pdu in elsewhere.state_pdus():
        assert timeline.get_event(compute_event_id(pdu, version)) is None
    assert [r for r in caplog.records if "another room" in r.getMessage()]


async def test_a_stub_peer_that_never_answers_backfill_holds_messages_only_so_long(
    nursery, ca, pair, monkeypatch
):
    """Each server gets a bounded turn (`SERVER_TIMEOUT_SECONDS`, here 1 s): `/messages`
    answers with what B has, and the stub is not asked again at once (backoff)."""
    monkeypatch.setattr(backfill_service, "SERVER_TIMEOUT_SECONDS", 1.0)
    _b, bob, room_id, stub = await room_with_a_stub_member(nursery, ca, pair)

    async def never(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    stub.on("GET", BACKFILL, never)

    first = await history(bob, room_id, page=10)
    again = await history(bob, room_id, page=10)

    assert [e["type"] for e in first] == [e["type"] for e in again] == ["m.room.member"]
    assert len(stub.asked("GET", BACKFILL)) == 1


# ---- served, with history visibility


@pytest.mark.parametrize("visibility", ["joined", "invited"])
async def test_a_server_without_a_member_at_the_time_gets_no_content(pair, visibility):
    a, b = pair
    alice, room_id, _texts = await room_with_history(
        a,
        5,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": visibility},
            }
        ],
    )
    bob = await joined_later(a, b, room_id)
    await alice.send(room_id, "after bob came")
    await eventually(lambda: _holds(b, room_id, "after bob came"))
    newest = a.server.services.rooms.timeline.forward_extremities(room_id)

    served = await federation_get(b, a, BACKFILL + path_part(room_id), v=newest, limit=100)
    events = await history(bob, room_id, page=10)

    served_bodies = [p["content"].get("body") for p in served["pdus"] if "body" in p["content"]]
    assert served_bodies == ["after bob came"]
    assert bodies(events) == ["after bob came"]


async def test_a_shared_room_serves_its_history_to_a_server_that_came_later(pair):
    a, b = pair
    _alice, room_id, _texts = await room_with_history(a, 5)
    await joined_later(a, b, room_id)
    newest = a.server.services.rooms.timeline.forward_extremities(room_id)

    served = await federation_get(b, a, BACKFILL + path_part(room_id), v=newest, limit=3)

    assert len(served["pdus"]) == 3
    assert served["origin"] == a.name
    depths = [pdu["depth"] for pdu in served["pdus"]]
    assert depths == sorted(depths, reverse=True)


async def test_backfill_gives_at_most_100_events_whatever_the_limit(pair):
    a, b = pair
    _alice, room_id, _texts = await room_with_history(a, 105)
    await joined_later(a, b, room_id)
    newest = a.server.services.rooms.timeline.forward_extremities(room_id)

    served = await federation_get(b, a, BACKFILL + path_part(room_id), v=newest, limit=500)

    assert len(served["pdus"]) == 100


async def test_backfill_refuses_bad_parameters_with_the_specs_errcodes(pair):
    a, b = pair
    _alice, room_id, _texts = await room_with_history(a, 1)
    await joined_later(a, b, room_id)
    newest = a.server.services.rooms.timeline.forward_extremities(room_id)
    path = BACKFILL + path_part(room_id)
    cases = [
        ({"limit": 10}, 400, "M_MISSING_PARAM"),
        ({"v": newest}, 400, "M_MISSING_PARAM"),
        ({"v": newest, "limit": "ten"}, 400, "M_INVALID_PARAM"),
        ({"v": newest, "limit": -1}, 400, "M_INVALID_PARAM"),
        ({"v": ["$x"] * 101, "limit": 10}, 400, "M_INVALID_PARAM"),
    ]

    for query, status, errcode in cases:
        with pytest.raises(RemoteError) as raised:
            await federation_get(b, a, path, **query)
        assert (raised.value.status, raised.value.errcode) == (status, errcode), query


async def test_backfill_and_event_auth_are_refused_to_a_server_with_no_user_in_the_room(pair):
    a, b = pair
    _alice, room_id, _texts = await room_with_history(a, 2)
    newest = a.server.services.rooms.timeline.forward_extremities(room_id)

    for path, query in (
        (BACKFILL + path_part(room_id), {"v": newest, "limit": 10}),
        (f"/_matrix/federation/v1/event_auth/{path_part(room_id)}/{path_part(newest[0])}", {}),
    ):
        with pytest.raises(RemoteError) as raised:
            await federation_get(b, a, path, **query)
        assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")


async def test_event_auth_gives_the_whole_auth_chain_of_an_event(pair):
    a, b = pair
    _alice, room_id, _texts = await room_with_history(a, 1)
    await joined_later(a, b, room_id)
    timeline = a.server.services.rooms.timeline
    newest = timeline.get_event(timeline.forward_extremities(room_id)[0])
    assert newest is not None
    version = timeline.room_version(room_id)

    answer = await federation_get(
        b,
        a,
        f"/_matrix/federation/v1/event_auth/{path_part(room_id)}/{path_part(newest['event_id'])}",
    )

    chain = answer["auth_chain"]
    types = {pdu["type"] for pdu in chain}
    assert {"m.room.create", "m.room.power_levels", "m.room.member"} <= types
    assert set(newest["auth_events"]) <= {compute_event_id(pdu, version) for pdu in chain}
    with pytest.raises(RemoteError) as raised:
        await federation_get(
            b, a, f"/_matrix/federation/v1/event_auth/{path_part(room_id)}/{path_part('$nope')}"
        )
    assert (raised.value.status, raised.value.errcode) == (404, "M_NOT_FOUND")
