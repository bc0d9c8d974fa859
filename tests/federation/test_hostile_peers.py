"""A peer that lies, floods or never answers: a stub server of the test's own over real TLS.

Spec: `content/server-server-api.md` § Checks performed on receipt of a PDU
(signatures, hashes, auth against the auth events), § Rejection (a rejected
event is never shown to clients nor used as state), § Joining rooms (the
`send_join` state and auth chain are checked like any events), § Backfilling
and retrieving missing events (`/get_missing_events` with a `limit`),
§ Transactions. What the mature servers learned the hard way
(`../shared/notes/federation-lessons.md`): corrupted auth chains, answers
larger than asked for, and one slow room holding up every other.

Server A is ours; the peer is `tests/support/stub_peer.py`'s, with its own
key (served as its key document), so A checks what it says exactly as it
checks anyone. What `test_receiving_pdus.py` (bad signatures and hashes
between two of our servers), `test_hostile_federation_*.py` (malformed PDUs,
51 PDUs or 101 EDUs in a transaction) and `test_joins.py` (a join answer
without the create event) cover is not repeated here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import pytest
import trio

from matrix_conduit.core.room_versions import RoomVersion
from matrix_conduit.service.federation import incoming, transactions
from matrix_conduit.service.federation.errors import Unreachable
from matrix_conduit.service.rooms.event_context import EventStatus
from tests.support.federation import FederatingServer, start_federating
from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.remote_membership import eventually, join
from tests.support.stub_peer import StubPeer, StubRoom, start_stub_peer

MAX_FETCH = 5
MAX_IN_PROGRESS = 2


@dataclass
class World:
    a: FederatingServer
    peer: StubPeer
    alice: User
    room_id: str
    room_version: RoomVersion
    mallory: str
    """The peer's user, joined to alice's room."""


@pytest.fixture
async def world(nursery, ca, tmp_path, request) -> World:
    room_version = getattr(request, "param", "10")
    a = await start_federating(
        nursery,
        ca,
        tmp_path / "a",
        "127.0.0.2",
        max_fetch_prev_events=MAX_FETCH,
        max_inbound_requests_per_server=MAX_IN_PROGRESS,
    )
    a.server.services.rooms.timeline.appending.clear()  # no outbox: A sends nothing itself
    peer = await start_stub_peer(nursery, ca, "127.0.0.60")
    alice = await register(a.server, "alice")
    room_id = await alice.create_room(preset="public_chat", room_version=room_version)
    mallory = await peer.join(a, room_id, "mallory")
    version = a.server.services.rooms.timeline.room_version(room_id)
    return World(a, peer, alice, room_id, version, mallory)


def status(world: World, event_id: str) -> EventStatus | None:
    return world.a.server.services.rooms.timeline.status(event_id)


async def assert_never_shown(world: World, event_id: str) -> None:
    """Neither alice's `/sync` nor `/messages` nor the room's `/state` has the event."""
    alice, room = world.alice, world.room_id
    synced = ok(await alice.get("/sync"))["rooms"]["join"][room]
    seen = [e["event_id"] for e in synced["timeline"]["events"] + synced["state"]["events"]]
    seen += [e["event_id"] for e in ok(await alice.messages(room, limit=100))["chunk"]]
    seen += [e["event_id"] for e in ok(await alice.get(f"/rooms/{path_part(room)}/state"))]
    assert event_id not in seen
    assert event_id not in world.a.server.services.rooms.state.current_state_ids(room).values()


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


def mallory_event(world: World, event_type: str, content: dict, state_key: str | None = None):
    return world.peer.member_event(
        world.a, world.room_id, world.mallory, event_type, content, state_key
    )


# ---- lies in /send


@pytest.mark.parametrize("world", ["10", "12"], indirect=True)
async def test_an_event_with_a_bad_signature_is_refused_and_never_shown(world, caplog):
    """§ Validating hashes and signatures: an event whose signature does not hold is dropped."""
    caplog.set_level(logging.INFO, logger="matrix_conduit.service.federation")
    pdu, event_id = world.peer.sign(
        mallory_event(world, "m.room.message", {"msgtype": "m.text", "body": "signed"}),
        world.room_version,
    )
    other, _ = world.peer.sign(
        mallory_event(world, "m.room.message", {"msgtype": "m.text", "body": "other"}),
        world.room_version,
    )
    pdu["signatures"] = other["signatures"]

    answer = ok(await world.peer.push(world.a, [pdu]))

    assert "signatures do not hold" in answer["pdus"][event_id]["error"]
    assert status(world, event_id) is None
    await assert_never_shown(world, event_id)
    assert logged(caplog, event_id) == 1


def _forged_power_levels(world: World, signed: bool = True) -> tuple[dict[str, Any], str]:
    """Power levels mallory (power 0) sends to give himself 100: the auth rules refuse it."""
    levels = world.a.server.services.rooms.timeline.state_event(
        world.room_id, "m.room.power_levels"
    )["content"]
    content = {**levels, "users": {**levels.get("users", {}), world.mallory: 100}}
    pdu, event_id = world.peer.sign(
        mallory_event(world, "m.room.power_levels", content, ""), world.room_version
    )
    if not signed:
        pdu["signatures"] = {world.peer.name: {"ed25519:x": "A" * 86}}
    return pdu, event_id


def _citing(world: World, template: dict[str, Any], power_levels_id: str) -> dict[str, Any]:
    """The template with `power_levels_id` as its power levels auth event."""
    timeline = world.a.server.services.rooms.timeline
    auth = [
        e for e in template["auth_events"] if timeline.get_event(e)["type"] != "m.room.power_levels"
    ]
    return {**template, "auth_events": [*auth, power_levels_id]}


@pytest.mark.parametrize("world", ["10", "12"], indirect=True)
@pytest.mark.parametrize("auth_event", ["badly signed", "refused by the auth rules"])
async def test_an_event_whose_auth_chain_does_not_check_is_rejected(world, caplog, auth_event):
    """§ Checks on receipt, step 4: the auth events are fetched (`/event`) and checked
    like any event; one that fails makes the event citing it rejected."""
    caplog.set_level(logging.INFO, logger="matrix_conduit.service.federation")
    forged, forged_id = _forged_power_levels(
        world, signed=auth_event == "refused by the auth rules"
    )

    async def serve_event(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        return 200, {"origin": world.peer.name, "origin_server_ts": 0, "pdus": [forged]}

    world.peer.on("GET", f"/_matrix/federation/v1/event/{quote(forged_id, safe='')}", serve_event)
    topic = _citing(
        world, mallory_event(world, "m.room.topic", {"topic": "mallory's"}, ""), forged_id
    )
    pdu, event_id = world.peer.sign(topic, world.room_version)

    assert ok(await world.peer.push(world.a, [pdu])) == {"pdus": {event_id: {}}}

    await eventually(lambda: _is(status(world, event_id), EventStatus.REJECTED))
    assert world.peer.asked("GET", "/_matrix/federation/v1/event/")
    assert status(world, forged_id) in (None, EventStatus.REJECTED)
    await assert_never_shown(world, event_id)
    await assert_never_shown(world, forged_id)
    assert (await world.alice.get_state(world.room_id, "m.room.topic")).status_code == 404
    assert logged(caplog, f"rejected {event_id}") == 1


async def _is(value: Any, expected: Any) -> bool:
    return value is expected


# ---- lies in a send_join answer


def _another_rooms_events(peer: StubPeer, room_version: str) -> list[dict[str, Any]]:
    other = StubRoom.create(peer, room_version, "elsewhere")
    other.add("m.room.topic", {"topic": "another room"}, "")
    return [pdu for pdu in other.state_pdus() if pdu["type"] != "m.room.create"]


def _lie(kind: str, room: StubRoom) -> Any:
    """The honest `send_join` answer turned into the lie `kind`."""
    version = room.room_version.identifier

    def forged_power_levels(answer: dict[str, Any]) -> dict[str, Any]:
        eve = room.peer.user("eve")
        forged = room.peer.sign(
            room.template("m.room.power_levels", {"users": {eve: 100}}, "", eve),
            room.room_version,
        )[0]
        state = [e for e in answer["state"] if e["type"] != "m.room.power_levels"]
        return {**answer, "state": [*state, forged]}

    def missing_create(answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "state": [e for e in answer["state"] if e["type"] != "m.room.create"]}

    def state_of_another_room(answer: dict[str, Any]) -> dict[str, Any]:
        create = [e for e in answer["state"] if e["type"] == "m.room.create"]
        return {**answer, "state": create + _another_rooms_events(room.peer, version)}

    def auth_chain_of_another_room(answer: dict[str, Any]) -> dict[str, Any]:
        return {
            **answer,
            "auth_chain": answer["auth_chain"] + _another_rooms_events(room.peer, version),
        }

    return {
        "forged power levels": forged_power_levels,
        "no create event": missing_create,
        "state of another room": state_of_another_room,
        "an auth chain of another room": auth_chain_of_another_room,
    }[kind]


@pytest.mark.parametrize("room_version", ["10", "12"])
@pytest.mark.parametrize(
    ("lie", "reason"),
    [
        ("forged power levels", "does not pass the auth rules"),
        ("no create event", "m.room.create"),
        ("state of another room", "another room"),
        ("an auth chain of another room", "another room"),
    ],
)
async def test_a_join_whose_send_join_state_does_not_match_the_rooms_auth_fails(
    world, caplog, room_version, lie, reason
):
    """§ Joining rooms: the resident's state and auth chain are checked; a state that is
    not the room's (forged, incomplete, another room's) fails the join with the reason,
    and nothing of it becomes the room's state here."""
    caplog.set_level(logging.INFO, logger="matrix_conduit.service.federation")
    room = StubRoom.create(world.peer, room_version)
    room.add(
        "m.room.member", {"membership": "join"}, world.peer.user("eve"), world.peer.user("eve")
    )
    room.serve_joins(_lie(lie, room))
    carol = await register(world.a.server, "carol")

    refused = assert_error(await join(carol, room.room_id, via=world.peer.name), 404, "M_NOT_FOUND")

    assert reason in refused["error"]
    assert logged(caplog, f"{room.room_id} failed through every server") == 1
    assert room.room_id not in await carol.joined_rooms()
    services = world.a.server.services
    assert services.rooms.state.current_state_ids(room.room_id) == {}
    assert not services.rooms.state_cache.is_joined(carol.user_id, room.room_id)
    state = await carol.get(f"/rooms/{path_part(room.room_id)}/state")
    assert state.status_code in (403, 404), state.text


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_join_with_an_honest_send_join_answer_from_the_stub_peer_succeeds(
    world, room_version
):
    """The counterpart of the lies: the same stub room, answered as it is, is joined."""
    room = StubRoom.create(world.peer, room_version)
    room.serve_joins()
    carol = await register(world.a.server, "carol")

    ok(await join(carol, room.room_id, via=world.peer.name))

    assert room.room_id in await carol.joined_rooms()
    state = world.a.server.services.rooms.state.current_state_ids(room.room_id)
    assert set(room.state.values()) <= set(state.values())


# ---- lies in /get_missing_events


def _chain(
    world: World, count: int, room_id: str | None = None, peer: StubPeer | None = None
) -> list[tuple[dict[str, Any], str]]:
    """`count` messages of mallory's (of `peer`, default the world's), each on top of the
    one before (the first on the room's tip on A), signed; none of them is on A yet."""
    peer = peer or world.peer
    chain: list[tuple[dict[str, Any], str]] = []
    for n in range(count):
        content = {"msgtype": "m.text", "body": f"#{n}"}
        template = peer.member_event(
            world.a, room_id or world.room_id, peer.user("mallory"), "m.room.message", content
        )
        if chain:
            template["prev_events"] = [chain[-1][1]]
            template["depth"] = chain[-1][0]["depth"] + 1
        chain.append(peer.sign(template, world.room_version))
    return chain


@pytest.mark.parametrize(
    ("answer", "taken"),
    [("honest", True), ("more events than asked", False), ("events of another room", False)],
)
async def test_a_get_missing_events_answer_that_is_not_what_was_asked_is_not_used(
    world, caplog, answer, taken
):
    """§ Backfilling and retrieving missing events: at most `limit` events of the room.
    An answer with more, or with another room's events, is a lie: none of it is used, and
    the pushed event whose prev_events stay unknown is dropped (logged once)."""
    caplog.set_level(logging.INFO, logger="matrix_conduit.service.federation")
    chain = _chain(world, MAX_FETCH + 1)
    missing, (latest, latest_id) = chain[:-1], chain[-1]
    events = [pdu for pdu, _ in missing]
    if answer == "more events than asked":
        events.append(_chain(world, 1)[0][0])
    elif answer == "events of another room":
        events[0] = _another_rooms_events(world.peer, world.room_version.identifier)[-1]

    async def get_missing_events(_method: str, _target: str, body: Any) -> tuple[int, Any]:
        assert body["limit"] == MAX_FETCH
        return 200, {"events": events}

    world.peer.on("POST", "/_matrix/federation/v1/get_missing_events/", get_missing_events)

    assert ok(await world.peer.push(world.a, [latest])) == {"pdus": {latest_id: {}}}

    await eventually(lambda: _drained(world))
    if taken:
        assert status(world, latest_id) is EventStatus.TIMELINE
        return
    assert [status(world, event_id) for _, event_id in chain] == [None] * len(chain)
    for _, event_id in chain:
        await assert_never_shown(world, event_id)
    assert logged(caplog, "ignoring get_missing_events") == 1
    assert logged(caplog, f"dropping {latest_id}") == 1


async def _drained(world: World) -> bool:
    return not world.a.server.services.inbound.queue.rooms_with_work()


# ---- floods


async def _pdu_waiting_on_a_key(
    world: World, nursery: trio.Nursery, ca: Any, release: trio.Event
) -> dict[str, Any]:
    """A PDU of a user of a silent server, with a signature of its: checking it (in
    `/send`) waits for that server's key, which it answers (404) once `release` is set."""
    silent = await start_stub_peer(nursery, ca, "127.0.0.61")

    async def key_when_released(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        await release.wait()
        return 404, {"errcode": "M_NOT_FOUND", "error": "no key"}

    silent.on("GET", "/_matrix/key/v2/server", key_when_released)
    pdu = world.peer.sign(
        {
            **mallory_event(world, "m.room.message", {"msgtype": "m.text", "body": "x"}),
            "sender": silent.user("someone"),
        },
        world.room_version,
    )[0]
    pdu["signatures"][silent.name] = {"ed25519:silent": "A" * 86}
    return pdu


async def test_more_requests_in_progress_from_one_server_than_allowed_get_429(world, nursery, ca):
    """One origin has at most `max_inbound_requests_per_server` requests in progress;
    another gets 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`, and once they are answered
    it is served again."""
    release = trio.Event()
    pdu = await _pdu_waiting_on_a_key(world, nursery, ca, release)
    request_auth = world.a.federation.request_auth
    answers: list[int] = []

    async def send() -> None:
        answers.append((await world.peer.push(world.a, [pdu])).status_code)

    profile = f"/_matrix/federation/v1/query/profile?user_id={quote(world.alice.user_id)}"
    async with trio.open_nursery() as requests:
        for _ in range(MAX_IN_PROGRESS):
            requests.start_soon(send)
        await eventually(
            lambda: _async(request_auth.in_progress(world.peer.name) == MAX_IN_PROGRESS)
        )

        refused = await world.peer.request(world.a, "GET", profile)

        assert refused.status_code == 429, refused.text
        assert refused.json()["errcode"] == "M_LIMIT_EXCEEDED"
        assert refused.json()["retry_after_ms"] > 0
        release.set()
    assert answers == [200] * MAX_IN_PROGRESS
    assert request_auth.in_progress(world.peer.name) == 0
    ok(await world.peer.request(world.a, "GET", profile))


async def test_a_request_whose_sender_hangs_up_no_longer_counts_as_in_progress(world, nursery, ca):
    """The count is released however a request ends: a peer that drops its connections
    mid-request does not lock itself (or a real server behind it) out for good."""
    pdu = await _pdu_waiting_on_a_key(world, nursery, ca, trio.Event())
    request_auth = world.a.federation.request_auth
    async with trio.open_nursery() as requests:
        for _ in range(MAX_IN_PROGRESS):
            requests.start_soon(world.peer.push, world.a, [pdu])
        await eventually(
            lambda: _async(request_auth.in_progress(world.peer.name) == MAX_IN_PROGRESS)
        )
        requests.cancel_scope.cancel()  # the peer hangs up

    await eventually(lambda: _async(request_auth.in_progress(world.peer.name) == 0))
    profile = f"/_matrix/federation/v1/query/profile?user_id={quote(world.alice.user_id)}"
    ok(await world.peer.request(world.a, "GET", profile))


async def _async(value: Any) -> Any:
    return value


async def test_an_answer_larger_than_its_cap_is_not_read_and_the_event_citing_it_is_rejected(
    world, caplog
):
    """A peer's answers are read up to a cap (an `/event` holds one PDU of at most 64 KiB;
    the client aborts past it with the reason): no answer costs unbounded memory."""
    caplog.set_level(logging.INFO, logger="matrix_conduit.service.federation")
    forged, forged_id = _forged_power_levels(world)
    huge = {"pdus": [forged], "padding": "x" * (2 * 1024 * 1024)}

    async def serve_event(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        return 200, huge

    world.peer.on("GET", "/_matrix/federation/v1/event/", serve_event)
    topic = _citing(world, mallory_event(world, "m.room.topic", {"topic": "big"}, ""), forged_id)
    pdu, event_id = world.peer.sign(topic, world.room_version)

    ok(await world.peer.push(world.a, [pdu]))

    await eventually(lambda: _is(status(world, event_id), EventStatus.REJECTED))
    assert status(world, forged_id) is None
    assert logged(caplog, "over 1048576") == 1
    await assert_never_shown(world, event_id)


async def test_the_answers_that_carry_a_rooms_state_get_a_larger_cap(world):
    """`send_join` and `/state` answers of 49 MB and 106 MB are on record; every other
    answer is capped at 16 MiB, and one larger fails with a clear error."""
    big = {"pdus": [], "auth_chain": [], "padding": "x" * (17 * 1024 * 1024)}

    async def serve_big(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        return 200, big

    world.peer.on("GET", "/_matrix/federation/v1/", serve_big)
    client = world.a.federation.client

    answer = await client.request(world.peer.name, "GET", "/_matrix/federation/v1/state/!r:x")
    assert len(answer["padding"]) == len(big["padding"])
    with pytest.raises(Unreachable, match="over 16777216"):
        await client.request(world.peer.name, "GET", "/_matrix/federation/v1/publicRooms")


# ---- a peer that never answers


async def test_a_peer_that_never_answers_for_one_room_holds_up_no_other_room(world):
    """The inbound worker handles rooms apart: while one room waits on a peer that never
    answers `/get_missing_events`, another room's events keep arriving."""
    stuck_room = world.room_id
    other_room = await world.alice.create_room(preset="public_chat")
    await world.peer.join(world.a, other_room, "mallory")

    async def never(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    world.peer.on(
        "POST", f"/_matrix/federation/v1/get_missing_events/{quote(stuck_room, safe='')}", never
    )
    _, (waiting, waiting_id) = _chain(world, 2)
    ok(await world.peer.push(world.a, [waiting]))
    await eventually(
        lambda: _async(bool(world.peer.asked("POST", "/_matrix/federation/v1/get_missing_events/")))
    )

    message, message_id = world.peer.sign(
        world.peer.member_event(
            world.a,
            other_room,
            world.mallory,
            "m.room.message",
            {"msgtype": "m.text", "body": "on"},
        ),
        world.room_version,
    )
    ok(await world.peer.push(world.a, [message]))

    await eventually(lambda: _is(status(world, message_id), EventStatus.TIMELINE))
    assert status(world, waiting_id) is None  # still waiting for the peer
    assert message_id in [e["event_id"] for e in await world.alice.timeline(other_room, limit=5)]


async def test_a_peer_that_never_answers_holds_its_room_only_for_the_fetch_budget(
    world, monkeypatch
):
    """All the fetching one pushed event causes is bounded (`FETCH_BUDGET_SECONDS`, made
    short here): an auth event the peer never gives leaves the event rejected, and the
    room's next events are handled."""
    monkeypatch.setattr(incoming, "FETCH_BUDGET_SECONDS", 1.0)

    async def never(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    world.peer.on("GET", "/_matrix/federation/v1/event/", never)
    _, forged_id = _forged_power_levels(world)
    topic = _citing(world, mallory_event(world, "m.room.topic", {"topic": "slow"}, ""), forged_id)
    pdu, event_id = world.peer.sign(topic, world.room_version)
    ok(await world.peer.push(world.a, [pdu]))

    await eventually(lambda: _is(status(world, event_id), EventStatus.REJECTED))
    message, message_id = world.peer.sign(
        mallory_event(world, "m.room.message", {"msgtype": "m.text", "body": "next"}),
        world.room_version,
    )
    ok(await world.peer.push(world.a, [message]))
    await eventually(lambda: _is(status(world, message_id), EventStatus.TIMELINE))
    await assert_never_shown(world, event_id)


async def _never(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def _stuck(world: World, room_id: str) -> None:
    """A PDU of the world's peer in `room_id` whose missing prev_events the peer never
    gives: the room's worker waits on `/get_missing_events` (a PDU stays queued)."""
    world.peer.on(
        "POST", f"/_matrix/federation/v1/get_missing_events/{quote(room_id, safe='')}", _never
    )
    _, (waiting, _) = _chain(world, 2, room_id)
    ok(await world.peer.push(world.a, [waiting]))


async def test_a_peer_with_too_many_pdus_waiting_gets_429_for_its_next_transaction(
    world, monkeypatch
):
    """§ Transactions: the sender retries a transaction until it gets a 200; at most
    `MAX_QUEUED_PER_ORIGIN` PDUs of one origin wait here (made 3): a transaction that
    would queue more is 429 `M_LIMIT_EXCEEDED`, and nothing of it is taken."""
    monkeypatch.setattr(transactions, "MAX_QUEUED_PER_ORIGIN", 3)
    await _stuck(world, world.room_id)
    await eventually(lambda: _async(bool(world.peer.asked("POST", "/_matrix/federation/v1/get"))))
    messages = [pdu for pdu, _ in _chain(world, 3)]

    refused = await world.peer.push(world.a, messages)

    assert refused.status_code == 429, refused.text
    assert refused.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert refused.json()["retry_after_ms"] > 0
    taken = await world.peer.push(world.a, messages[:2])
    assert taken.status_code == 200, taken.text


@pytest.fixture
def few_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rooms handled at once, one PDU of an origin at once (before the server starts)."""
    monkeypatch.setattr(transactions, "WORKER_CONCURRENCY", 2)
    monkeypatch.setattr(transactions, "WORKERS_PER_ORIGIN", 1)


async def test_a_peer_that_never_answers_holds_no_more_than_its_share_of_the_workers(
    few_workers, world, nursery, ca
):
    """Rooms waiting on one silent peer take at most `WORKERS_PER_ORIGIN` of the
    `WORKER_CONCURRENCY` slots (made 1 of 2): another server's room is handled meanwhile."""
    second_room = await world.alice.create_room(preset="public_chat")
    await world.peer.join(world.a, second_room, "mallory")
    other = await start_stub_peer(nursery, ca, "127.0.0.62")
    others_room = await world.alice.create_room(preset="public_chat")
    await other.join(world.a, others_room, "mallory")
    await _stuck(world, world.room_id)
    await _stuck(world, second_room)
    await eventually(lambda: _async(bool(world.peer.asked("POST", "/_matrix/federation/v1/get"))))

    (message, message_id), *_ = _chain(world, 1, others_room, other)
    ok(await other.push(world.a, [message]))

    await eventually(lambda: _is(status(world, message_id), EventStatus.TIMELINE))


async def test_an_event_whose_prev_events_are_of_another_room_takes_nothing_from_it(world):
    """§ PDUs: prev_events are the event's parents in its own room. An event of alice's
    room citing as its prev_event an event of another room (one A is in too, where the
    peer's user has a membership) is never accepted, and the other room's state never
    becomes part of alice's room."""
    elsewhere = StubRoom.create(world.peer, "10")
    elsewhere.add("m.room.member", {"membership": "join"}, world.mallory, world.mallory)
    elsewhere.serve_joins()
    carol = await register(world.a.server, "carol")
    ok(await join(carol, elsewhere.room_id, via=world.peer.name))
    carols_join = elsewhere.events[-1]["event_id"]
    assert status(world, carols_join) is EventStatus.TIMELINE
    state_before = world.a.server.services.rooms.state.current_state_ids(world.room_id)
    template = mallory_event(world, "m.room.message", {"msgtype": "m.text", "body": "crossed"})
    pdu, event_id = world.peer.sign({**template, "prev_events": [carols_join]}, world.room_version)

    ok(await world.peer.push(world.a, [pdu]))

    await eventually(lambda: _drained(world))
    assert status(world, event_id) in (None, EventStatus.REJECTED)
    await assert_never_shown(world, event_id)
    state = world.a.server.services.rooms.state.current_state_ids(world.room_id)
    assert state == state_before
    timeline = world.a.server.services.rooms.timeline
    assert event_id not in timeline.forward_extremities(world.room_id)
    assert event_id not in timeline.forward_extremities(elsewhere.room_id)


async def test_the_keys_of_a_transactions_signers_are_asked_for_all_at_once(world, nursery, ca):
    """A transaction whose PDUs need the keys of several slow servers waits for one key
    fetch, not one after another: each server is asked before any has answered."""
    release = trio.Event()
    silent = [await start_stub_peer(nursery, ca, f"127.0.0.{63 + n}") for n in range(3)]

    async def key_when_released(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        await release.wait()
        return 404, {"errcode": "M_NOT_FOUND", "error": "no key"}

    pdus = []
    for server in silent:
        server.on("GET", "/_matrix/key/v2/server", key_when_released)
        template = mallory_event(world, "m.room.message", {"msgtype": "m.text", "body": "x"})
        pdu = world.peer.sign({**template, "sender": server.user("someone")}, world.room_version)
        pdu[0]["signatures"][server.name] = {"ed25519:slow": "A" * 86}
        pdus.append(pdu)
    answers: list[Any] = []

    async def send() -> None:
        answers.append(ok(await world.peer.push(world.a, [pdu for pdu, _ in pdus])))

    async with trio.open_nursery() as sending:
        sending.start_soon(send)
        await eventually(
            lambda: _async(all(server.asked("GET", "/_matrix/key/v2/server") for server in silent))
        )
        release.set()
    assert set(answers[0]["pdus"]) == {event_id for _, event_id in pdus}
    assert all("error" in result for result in answers[0]["pdus"].values())


@pytest.mark.parametrize("heavy", [False, True])
async def test_the_state_at_a_gap_is_filled_only_within_its_weight(world, monkeypatch, heavy):
    """§ Retrieving events (`/state_ids`, then `/event` for each unknown id): the events
    fetched for one gap are held until stored, so what they weigh together is bounded
    (`MAX_GAP_BYTES`, made small here). Over it, the gap stays unfilled and the events
    above it are dropped; under it, they are taken."""
    if heavy:
        monkeypatch.setattr(incoming, "MAX_GAP_BYTES", 100_000)
    (below, below_id), (missing, missing_id), (latest, latest_id) = _chain(world, 3)
    pads = [
        world.peer.sign(
            mallory_event(world, "org.example.pad", {"pad": "x" * 30_000}, str(n)),
            world.room_version,
        )
        for n in range(5)
    ]
    served = {event_id: pdu for pdu, event_id in [*pads, (below, below_id)]}
    state_ids = list(world.a.server.services.rooms.state.current_state_ids(world.room_id).values())

    async def get_missing_events(_method: str, _target: str, _body: Any) -> tuple[int, Any]:
        return 200, {"events": [missing]}

    async def serve_state_ids(_method: str, target: str, _body: Any) -> tuple[int, Any]:
        assert quote(below_id, safe="") in target
        return 200, {"pdu_ids": [*state_ids, *served], "auth_chain_ids": []}

    async def serve_event(_method: str, target: str, _body: Any) -> tuple[int, Any]:
        event_id = unquote(target.rsplit("/", 1)[1])
        return 200, {"origin": world.peer.name, "origin_server_ts": 0, "pdus": [served[event_id]]}

    world.peer.on("POST", "/_matrix/federation/v1/get_missing_events/", get_missing_events)
    world.peer.on("GET", "/_matrix/federation/v1/state_ids/", serve_state_ids)
    world.peer.on("GET", "/_matrix/federation/v1/event/", serve_event)

    ok(await world.peer.push(world.a, [latest]))

    await eventually(lambda: _drained(world))
    assert world.peer.asked("GET", "/_matrix/federation/v1/state_ids/")
    expected = None if heavy else EventStatus.TIMELINE
    assert [status(world, missing_id), status(world, latest_id)] == [expected, expected]
