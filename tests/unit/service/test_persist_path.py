"""The one persist path: an event stored as the context someone else computed says.

DESIGN.md, "Data flow: an event from another server": the incoming-event
handler judges another server's event and hands it to `Timeline.persist`
with an `EventContext` (state before, state after, new current state, new
forward extremities, status). Here the test is that handler: it signs events
as `remote.example` and chooses their contexts, and the room must show
exactly what each status means (spec `server-server-api.md`, "Rejection",
"Soft failure").
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from matrix_conduit.core.events import compute_event_id, sign_event_with_id
from matrix_conduit.core.filters import EventFilter
from matrix_conduit.errors import MatrixError
from matrix_conduit.service import Services
from matrix_conduit.service.rooms.event_context import EventContext, EventStatus
from matrix_conduit.service.rooms.locks import RoomGuard, RoomLockNotHeld
from matrix_conduit.service.sync import SyncRequest
from matrix_conduit.storage import WriteBatch
from tests.support.rooms import (
    ALICE,
    BOB,
    ZARA,
    RemoteServer,
    open_services,
    public_room,
    remote_server,
)


@pytest.fixture
def services(tmp_path) -> Services:
    with open_services(tmp_path) as services:
        yield services


@pytest.fixture
def remote() -> RemoteServer:
    return remote_server()


def on_top_context(services: Services, event: dict[str, Any], batch: WriteBatch) -> EventContext:
    """What an incoming-event handler computes for an accepted event on top of the room."""
    rooms = services.rooms
    room_id = event["room_id"]
    before = rooms.state.current_shortstatehash(room_id)
    after = before
    if "state_key" in event:
        key = (event["type"], event["state_key"])
        after = rooms.state.save_with_event(before, key, event["event_id"], batch)
    extremities = [e for e in rooms.timeline.forward_extremities(room_id)]
    extremities = [e for e in extremities if e not in event["prev_events"]]
    return EventContext(
        EventStatus.TIMELINE,
        state_before=before,
        state_after=after,
        current_state=after,
        forward_extremities=(*extremities, event["event_id"]),
    )


async def persist(
    services: Services,
    event: dict[str, Any],
    context: EventContext | None = None,
    batch: WriteBatch | None = None,
) -> int | None:
    rooms = services.rooms
    room_id = event["room_id"]
    batch = batch if batch is not None else rooms.timeline.batch()
    if context is None:
        context = on_top_context(services, event, batch)
    async with rooms.locks.hold(room_id) as guard:
        return rooms.timeline.persist(
            guard, event, rooms.timeline.room_version(room_id), context, batch
        )


async def foreign_join(services: Services, remote: RemoteServer, room_id: str) -> dict[str, Any]:
    """ZARA's join, made from our template as `make_join` hands it out, signed by her server."""
    builder = services.rooms.builder
    template = builder.template(room_id, ZARA, "m.room.member", {"membership": "join"}, ZARA)
    pdu = remote.sign(services, template)
    room_version = services.rooms.timeline.room_version(room_id)
    return builder.check_foreign(pdu, room_version, remote.verify_keys)


async def foreign_message(
    services: Services, remote: RemoteServer, room_id: str, body: str
) -> dict[str, Any]:
    builder = services.rooms.builder
    template = builder.template(room_id, ZARA, "m.room.message", {"body": body})
    pdu = remote.sign(services, template)
    return {**pdu, "event_id": builder_event_id(services, pdu)}


def builder_event_id(services: Services, pdu: dict[str, Any]) -> str:
    return compute_event_id(pdu, services.rooms.timeline.room_version(pdu["room_id"]))


def timeline_ids(services: Services, user_id: str, room_id: str) -> list[str]:
    """The event ids `/messages` shows the user, newest first."""
    events, _, _ = services.rooms.events.messages(
        user_id,
        room_id,
        from_token=None,
        to_token=None,
        direction="b",
        limit=1000,
        event_filter=EventFilter(),
    )
    return [event["event_id"] for event in events]


async def synced_ids(services: Services, user_id: str, room_id: str) -> list[str]:
    """The event ids of the room's timeline in the user's initial `/sync`."""
    response = await services.sync.sync(SyncRequest(user_id, None, None))
    timeline = response["rooms"]["join"][room_id]["timeline"]["events"]
    return [event["event_id"] for event in timeline]


# ---- statuses


async def test_an_outlier_is_stored_by_id_but_is_not_in_the_timeline(services, remote):
    room_id = await public_room(services)
    join = await foreign_join(services, remote, room_id)
    extremities = services.rooms.timeline.forward_extremities(room_id)
    current = services.rooms.state.current_shortstatehash(room_id)

    position = await persist(services, join, EventContext(EventStatus.OUTLIER, None, None))

    timeline = services.rooms.timeline
    assert position is None
    assert timeline.get_event(join["event_id"])["sender"] == ZARA
    assert timeline.status(join["event_id"]) is EventStatus.OUTLIER
    assert timeline.position(join["event_id"]) is None
    assert join["event_id"] not in timeline_ids(services, ALICE, room_id)
    assert timeline.forward_extremities(room_id) == extremities
    assert services.rooms.state.current_shortstatehash(room_id) == current
    assert not services.rooms.state_cache.is_joined(ZARA, room_id)


async def test_a_rejected_event_is_stored_as_rejected_and_never_reaches_sync_or_messages(
    services, remote
):
    room_id = await public_room(services)
    # ZARA never joined: her message fails the auth rules.
    message = await foreign_message(services, remote, room_id, "let me in")
    current = services.rooms.state.current_shortstatehash(room_id)

    await persist(services, message, EventContext(EventStatus.REJECTED, current, current))

    timeline = services.rooms.timeline
    assert timeline.status(message["event_id"]) is EventStatus.REJECTED
    assert timeline.is_rejected(message["event_id"])
    assert message["event_id"] not in timeline_ids(services, ALICE, room_id)
    assert message["event_id"] not in await synced_ids(services, BOB, room_id)
    assert message["event_id"] not in timeline.forward_extremities(room_id)
    with pytest.raises(Exception, match="Event not found"):
        services.rooms.events.event(ALICE, room_id, message["event_id"])


def test_a_rejected_event_cannot_change_state() -> None:
    with pytest.raises(ValueError, match="changes no state"):
        EventContext(EventStatus.REJECTED, state_before=1, state_after=2)
    with pytest.raises(ValueError, match="cannot change the current state"):
        EventContext(EventStatus.REJECTED, 1, 1, current_state=1)


async def test_a_soft_failed_event_is_kept_hidden_from_clients_and_is_no_forward_extremity(
    services, remote
):
    room_id = await public_room(services)
    join = await foreign_join(services, remote, room_id)
    await persist(services, join)
    message = await foreign_message(services, remote, room_id, "sent while being banned")
    before = services.rooms.state.current_shortstatehash(room_id)
    extremities = services.rooms.timeline.forward_extremities(room_id)

    await persist(services, message, EventContext(EventStatus.SOFT_FAILED, before, before))

    timeline = services.rooms.timeline
    assert timeline.get_event(message["event_id"])["content"] == {"body": "sent while being banned"}
    assert timeline.status(message["event_id"]) is EventStatus.SOFT_FAILED
    assert message["event_id"] not in timeline_ids(services, ALICE, room_id)
    assert message["event_id"] not in await synced_ids(services, BOB, room_id)
    assert timeline.forward_extremities(room_id) == extremities
    assert services.rooms.state.state_before_event(message["event_id"]) == (
        services.rooms.state.current_state_ids(room_id)
    )


async def test_a_soft_failed_event_named_as_a_forward_extremity_is_refused(services, remote):
    room_id = await public_room(services)
    join = await foreign_join(services, remote, room_id)
    await persist(services, join)
    message = await foreign_message(services, remote, room_id, "hidden")
    before = services.rooms.state.current_shortstatehash(room_id)
    context = EventContext(
        EventStatus.SOFT_FAILED, before, before, forward_extremities=(message["event_id"],)
    )
    with pytest.raises(ValueError, match="forward extremity"):
        await persist(services, message, context)
    assert services.rooms.timeline.status(message["event_id"]) is None


async def test_a_foreign_join_accepted_on_top_of_the_room_makes_its_sender_a_member(
    services, remote
):
    room_id = await public_room(services)
    join = await foreign_join(services, remote, room_id)

    position = await persist(services, join)

    assert position is not None
    assert services.rooms.state_cache.is_joined(ZARA, room_id)
    assert (
        services.rooms.state.current_state_ids(room_id)[("m.room.member", ZARA)]
        == (join["event_id"])
    )
    assert services.rooms.timeline.forward_extremities(room_id) == [join["event_id"]]
    assert timeline_ids(services, ALICE, room_id)[0] == join["event_id"]
    assert join["event_id"] in await synced_ids(services, BOB, room_id)


async def test_an_event_whose_state_after_is_not_current_leaves_the_current_state(services, remote):
    """A late state event on a side branch: stored with its own state, current state kept."""
    rooms = services.rooms
    room_id = await public_room(services)
    await rooms.builder.send(room_id, ALICE, "m.room.topic", {"topic": "current"}, "")
    join = await foreign_join(services, remote, room_id)
    await persist(services, join)
    # ZARA's topic cites her join as its only prev event; the room has moved on since.
    await rooms.builder.send(room_id, ALICE, "m.room.message", {"body": "moving on"})
    template = rooms.builder.template(room_id, ZARA, "m.room.topic", {"topic": "late"}, "")
    template["prev_events"] = [join["event_id"]]
    topic = remote.sign(services, template)
    topic["event_id"] = builder_event_id(services, topic)
    current = rooms.state.current_shortstatehash(room_id)
    extremities = rooms.timeline.forward_extremities(room_id)

    batch = rooms.timeline.batch()
    before = rooms.state.shortstatehash_after_event(join["event_id"])
    after = rooms.state.save_with_event(before, ("m.room.topic", ""), topic["event_id"], batch)
    context = EventContext(
        EventStatus.TIMELINE,
        state_before=before,
        state_after=after,
        current_state=None,
        forward_extremities=(*extremities, topic["event_id"]),
    )
    await persist(services, topic, context, batch)

    assert rooms.state.current_shortstatehash(room_id) == current
    assert rooms.timeline.state_content(room_id, "m.room.topic") == {"topic": "current"}
    assert (
        rooms.state.state_after_event(topic["event_id"])[("m.room.topic", "")]
        == (topic["event_id"])
    )
    assert rooms.state.state_before_event(topic["event_id"]) == rooms.state.state_after_event(
        join["event_id"]
    )
    assert set(rooms.timeline.forward_extremities(room_id)) == {*extremities, topic["event_id"]}
    stored = rooms.timeline.get_event(topic["event_id"])
    assert stored["unsigned"]["prev_content"] == {"topic": "current"}


# ---- forks and state resolution


def signed_ours(services: Services, template: dict[str, Any]) -> dict[str, Any]:
    """A template of ours signed as this server, with its id, but not persisted."""
    room_version = services.rooms.timeline.room_version(template["room_id"])
    signed, event_id = sign_event_with_id(
        template, "localhost", services.globals.signing_key, room_version
    )
    return {**signed, "event_id": event_id}


def fork_of(
    services: Services, parent_id: str, sender: str, event_type: str, content: dict, **fields: Any
) -> dict[str, Any]:
    """A state event of ours whose only prev event is `parent_id` (a branch from there)."""
    room_id = services.rooms.timeline.get_event(parent_id)["room_id"]
    state_key = sender if event_type == "m.room.member" else ""
    template = services.rooms.builder.template(room_id, sender, event_type, content, state_key)
    template.update(prev_events=[parent_id], **fields)
    return signed_ours(services, template)


async def persist_branch(services: Services, event: dict[str, Any]) -> None:
    """Persist a state event on its own branch; current state = resolution of the extremities."""
    rooms = services.rooms
    room_id = event["room_id"]
    batch = rooms.timeline.batch()
    (parent_id,) = event["prev_events"]
    before = rooms.state.shortstatehash_after_event(parent_id)
    key = (event["type"], event["state_key"])
    after = rooms.state.save_with_event(before, key, event["event_id"], batch)
    others = [e for e in rooms.timeline.forward_extremities(room_id) if e != parent_id]
    states = [rooms.state.shortstatehash_after_event(e) for e in others] + [after]
    context = EventContext(
        EventStatus.TIMELINE,
        state_before=before,
        state_after=after,
        current_state=rooms.resolution.save_resolved(room_id, states, batch, pending=[event]),
        forward_extremities=(*others, event["event_id"]),
    )
    await persist(services, event, context, batch)


@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_the_current_state_of_a_forked_room_is_the_resolution_of_its_extremities(
    services, room_version
):
    rooms = services.rooms
    room_id = await public_room(services, room_version)
    (fork_point,) = rooms.timeline.forward_extremities(room_id)
    ts = rooms.timeline.get_event(fork_point)["origin_server_ts"]
    later = fork_of(
        services, fork_point, ALICE, "m.room.topic", {"topic": "later"}, origin_server_ts=ts + 2000
    )
    earlier = fork_of(
        services,
        fork_point,
        ALICE,
        "m.room.topic",
        {"topic": "earlier"},
        origin_server_ts=ts + 1000,
    )

    await persist_branch(services, later)
    await persist_branch(services, earlier)

    # Persisted last, but resolution orders equal-power conflicts by timestamp: the later wins.
    assert set(rooms.timeline.forward_extremities(room_id)) == {
        later["event_id"],
        earlier["event_id"],
    }
    assert rooms.timeline.state_content(room_id, "m.room.topic") == {"topic": "later"}
    resolved = rooms.resolution.resolve(room_id, [earlier["event_id"], later["event_id"]])
    assert rooms.state.current_state_ids(room_id) == resolved
    assert (
        rooms.state.state_after_event(earlier["event_id"])[("m.room.topic", "")]
        == (earlier["event_id"])
    )


async def test_a_fork_merged_by_resolution_updates_the_membership_cache(services):
    rooms = services.rooms
    room_id = await public_room(services)
    (fork_point,) = rooms.timeline.forward_extremities(room_id)
    # Later than BOB's join for sure: resolution orders by timestamp before event id.
    ts = rooms.timeline.get_event(fork_point)["origin_server_ts"] + 1000
    topic = fork_of(
        services, fork_point, ALICE, "m.room.topic", {"topic": "one branch"}, origin_server_ts=ts
    )
    leave = fork_of(
        services, fork_point, BOB, "m.room.member", {"membership": "leave"}, origin_server_ts=ts
    )

    await persist_branch(services, topic)
    await persist_branch(services, leave)

    assert rooms.state_cache.membership(room_id, BOB) == "leave"
    assert BOB not in rooms.state_cache.joined_members(room_id)
    current = rooms.state.current_state_ids(room_id)
    assert current[("m.room.topic", "")] == topic["event_id"]
    assert current[("m.room.member", BOB)] == leave["event_id"]
    # The next event of ours merges the branches: it cites both extremities.
    event_id = await rooms.builder.send(room_id, ALICE, "m.room.message", {"body": "merged"})
    assert set(rooms.timeline.get_event(event_id)["prev_events"]) == {
        topic["event_id"],
        leave["event_id"],
    }
    assert rooms.timeline.forward_extremities(room_id) == [event_id]


# ---- durable follow-up work in the event's batch


class RecordingBatch(WriteBatch):
    """A real batch that notes which trees it writes, and can fail to commit."""

    def __init__(self, inner: WriteBatch, *, fail: bool) -> None:
        self._inner = inner
        self._fail = fail
        self.trees: list[str] = []

    def put(self, tree: Any, key: bytes, value: bytes) -> None:
        self.trees.append(tree.name)
        self._inner.put(tree, key, value)

    def delete(self, tree: Any, key: bytes) -> None:
        self._inner.delete(tree, key)

    def _write(self) -> None:
        if self._fail:
            raise OSError("the disk went away")
        self._inner._write()


async def bob_with_a_pusher(services: Services) -> str:
    room_id = await public_room(services)
    services.push_rules.initialise(BOB)
    services.pushers.set(
        BOB,
        {
            "kind": "http",
            "app_id": "org.example.app",
            "pushkey": "bob-phone",
            "app_display_name": "Example",
            "device_display_name": "Phone",
            "lang": "en",
            "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify"},
        },
    )
    return room_id


async def test_the_push_queue_entry_is_written_in_the_events_own_batch(services, monkeypatch):
    room_id = await bob_with_a_pusher(services)
    batches: list[RecordingBatch] = []

    def recording_batch() -> WriteBatch:
        batches.append(RecordingBatch(services.db.batch(), fail=False))
        return batches[-1]

    monkeypatch.setattr(services.rooms.timeline, "batch", recording_batch)
    await services.rooms.builder.send(room_id, ALICE, "m.room.message", {"body": "hi bob"})

    (batch,) = batches
    assert "pduid_pdu" in batch.trees
    assert "pushqueue" in batch.trees
    assert len(list(services.db.tree("pushqueue").iter_prefix())) == 1


async def test_an_event_whose_batch_fails_to_commit_leaves_no_push_behind(services, monkeypatch):
    room_id = await bob_with_a_pusher(services)
    extremities = services.rooms.timeline.forward_extremities(room_id)
    monkeypatch.setattr(
        services.rooms.timeline,
        "batch",
        lambda: RecordingBatch(services.db.batch(), fail=True),
    )

    with pytest.raises(OSError, match="disk went away"):
        await services.rooms.builder.send(room_id, ALICE, "m.room.message", {"body": "lost"})

    assert list(services.db.tree("pushqueue").iter_prefix()) == []
    assert services.rooms.timeline.forward_extremities(room_id) == extremities
    assert "lost" not in [
        services.rooms.timeline.get_event(e)["content"].get("body")
        for e in timeline_ids(services, ALICE, room_id)
    ]


async def test_an_appending_hook_writes_into_the_batch_with_the_event_and_its_context(
    services, remote
):
    """Where the federation sender will queue per-destination entries."""
    room_id = await public_room(services)
    outbox = services.db.tree("test_outbox")
    seen: list[tuple[str, EventStatus, int | None]] = []

    def queue(event: Any, context: EventContext, position: int | None, batch: WriteBatch) -> None:
        seen.append((event["event_id"], context.status, position))
        batch.put(outbox, event["event_id"].encode(), b"remote.example")

    services.rooms.timeline.appending.append(queue)
    event_id = await services.rooms.builder.send(room_id, ALICE, "m.room.message", {"body": "x"})
    join = await foreign_join(services, remote, room_id)
    await persist(services, join, EventContext(EventStatus.OUTLIER, None, None))

    assert seen == [
        (event_id, EventStatus.TIMELINE, services.rooms.timeline.position(event_id)),
        (join["event_id"], EventStatus.OUTLIER, None),
    ]
    assert outbox.get(event_id.encode()) == b"remote.example"


# ---- the room lock


async def test_persisting_under_another_rooms_guard_is_refused(services, remote):
    room_id = await public_room(services)
    other_room = await public_room(services)
    join = await foreign_join(services, remote, room_id)
    rooms = services.rooms
    async with rooms.locks.hold(other_room) as guard:
        with pytest.raises(RoomLockNotHeld, match="not " + room_id):
            rooms.timeline.persist(
                guard,
                join,
                rooms.timeline.room_version(room_id),
                EventContext(EventStatus.OUTLIER, None, None),
            )
    assert rooms.timeline.status(join["event_id"]) is None


async def test_a_guard_kept_after_its_lock_is_released_is_refused(services, remote):
    room_id = await public_room(services)
    rooms = services.rooms
    async with rooms.locks.hold(room_id) as guard:
        pass
    with pytest.raises(RoomLockNotHeld, match="not held"):
        rooms.builder.send_locked(guard, room_id, ALICE, "m.room.message", {"body": "late"})


async def test_a_guard_cannot_be_made_outside_the_room_locks() -> None:
    with pytest.raises(RoomLockNotHeld, match="only from RoomLocks"):
        RoomGuard("!room:localhost", object())


async def test_a_guard_is_good_only_in_the_task_that_holds_the_lock(services):
    room_id = await public_room(services)
    refused: list[RoomLockNotHeld] = []

    async def use(guard: RoomGuard) -> None:
        try:
            guard.require(room_id)
        except RoomLockNotHeld as error:
            refused.append(error)

    async with services.rooms.locks.hold(room_id) as guard, trio.open_nursery() as nursery:
        nursery.start_soon(use, guard)
    assert len(refused) == 1


# ---- the builder's steps


async def test_a_template_is_an_unsigned_event_on_top_of_the_room(services):
    rooms = services.rooms
    room_id = await public_room(services)
    template = rooms.builder.template(room_id, ZARA, "m.room.member", {"membership": "join"}, ZARA)
    assert "signatures" not in template and "hashes" not in template
    assert template["prev_events"] == rooms.timeline.forward_extremities(room_id)
    current = rooms.state.current_state_ids(room_id)
    assert current[("m.room.create", "")] in template["auth_events"]
    assert current[("m.room.join_rules", "")] in template["auth_events"]


async def test_a_foreign_event_with_a_bad_signature_is_refused(services, remote):
    room_id = await public_room(services)
    template = services.rooms.builder.template(
        room_id, ZARA, "m.room.member", {"membership": "join"}, ZARA
    )
    pdu = remote.sign(services, template)
    impostor = remote_server()
    with pytest.raises(MatrixError, match="signatures") as raised:
        services.rooms.builder.check_foreign(
            pdu, services.rooms.timeline.room_version(room_id), impostor.verify_keys
        )
    assert raised.value.errcode == "M_FORBIDDEN"


async def test_a_foreign_event_whose_content_hash_fails_goes_on_redacted(services, remote):
    room_id = await public_room(services)
    join = await foreign_join(services, remote, room_id)
    await persist(services, join)
    message = await foreign_message(services, remote, room_id, "original")
    tampered = {key: value for key, value in message.items() if key != "event_id"}
    tampered["content"] = {"body": "tampered"}
    checked = services.rooms.builder.check_foreign(
        tampered, services.rooms.timeline.room_version(room_id), remote.verify_keys
    )
    assert checked["content"] == {}
    assert checked["event_id"] == message["event_id"]


async def test_a_malformed_foreign_event_is_bad_json(services, remote):
    room_id = await public_room(services)
    join = await foreign_join(services, remote, room_id)
    pdu = {key: value for key, value in join.items() if key not in ("event_id", "depth")}
    with pytest.raises(MatrixError) as raised:
        services.rooms.builder.check_foreign(
            pdu, services.rooms.timeline.room_version(room_id), remote.verify_keys
        )
    assert raised.value.errcode == "M_BAD_JSON"


async def test_a_foreign_event_the_auth_rules_refuse_is_forbidden(services, remote):
    room_id = await public_room(services)
    template = services.rooms.builder.template(room_id, ZARA, "m.room.message", {"body": "hi"})
    pdu = remote.sign(services, template)
    with pytest.raises(MatrixError, match="sender") as raised:
        services.rooms.builder.check_foreign(
            pdu, services.rooms.timeline.room_version(room_id), remote.verify_keys
        )
    assert raised.value.errcode == "M_FORBIDDEN"


async def test_a_redaction_is_applied_with_the_power_in_the_state_before_it(services):
    """BOB may redact on a branch where ALICE made him a moderator, whatever is current."""
    rooms = services.rooms
    room_id = await public_room(services)
    message_id = await rooms.builder.send(room_id, ALICE, "m.room.message", {"body": "oops"})
    levels = dict(rooms.timeline.state_content(room_id, "m.room.power_levels"))
    levels["users"] = {**levels["users"], BOB: 100}
    promotion = signed_ours(
        services, rooms.builder.template(room_id, ALICE, "m.room.power_levels", levels, "")
    )
    redaction = rooms.builder.template(room_id, BOB, "m.room.redaction", {}, redacts=message_id)
    redaction = signed_ours(services, {**redaction, "prev_events": [promotion["event_id"]]})

    batch = rooms.timeline.batch()
    before = rooms.state.current_shortstatehash(room_id)
    after = rooms.state.save_with_event(
        before, ("m.room.power_levels", ""), promotion["event_id"], batch
    )
    await persist(services, promotion, EventContext(EventStatus.TIMELINE, before, after), batch)
    await persist(services, redaction, EventContext(EventStatus.TIMELINE, after, after))

    assert rooms.timeline.power_levels(room_id).user_level(BOB) == 0
    assert rooms.timeline.get_event(message_id)["content"] == {}
