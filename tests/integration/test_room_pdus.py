"""Every stored room event is a real PDU: hashed, signed, chained, authorised.

Spec: `content/server-server-api.md`, "PDUs" (`prev_events`, `auth_events`,
`depth`), "Auth events selection", "Checks performed on receipt of a PDU",
"Signing events" / "Validating hashes and signatures on received events";
`content/rooms/v*.md` (event format and event ids per room version) and
`content/rooms/fragments/v*-auth-rules.md`.

A room is driven over HTTP (creation, invites, joins, a restricted join,
messages, power level changes, a kick, a redaction); then its events are read
back from storage and checked with `core/` — the same functions that judge
events received over federation: the format is valid, the content hash and
this server's signature verify, the event id is the one its content gives,
each event's `prev_events` is the event before it and its `depth` one more,
its `auth_events` are exactly the auth events selection of the state before
it, and the auth rules allow it against them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from matrix_conduit.core.auth import auth_types_for_event, check_auth
from matrix_conduit.core.events import (
    check_content_hash,
    compute_event_id,
    validate_pdu_format,
    verify_event_signatures,
)
from matrix_conduit.core.room_versions import EventFormat, RoomVersion, get_room_version
from matrix_conduit.core.signing import SignatureError
from tests.support.matrix import ok, path_part, register, register_many, room_with_members
from tests.support.shared_server import SharedServer, shared_server_fixtures

running_server, server = shared_server_fixtures()

VERSIONS = ["1", "3", "6", "9", "10", "11", "12"]


def as_pdu(stored: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The PDU as sent over federation: storage adds `unsigned`, and `event_id` (v3+) /
    `room_id` (a v12 create event) for local lookups; they are not part of the PDU."""
    pdu = {key: value for key, value in stored.items() if key != "unsigned"}
    if room_version.event_format is not EventFormat.V1:
        pdu.pop("event_id")
    if room_version.room_id_is_create_event_id and pdu["type"] == "m.room.create":
        pdu.pop("room_id")
    return pdu


def reference_id(reference: Any) -> str:
    """An entry of `prev_events`/`auth_events`: an id, or `[id, hashes]` in v1-v2."""
    return reference if isinstance(reference, str) else reference[0]


def stored_events(server: SharedServer, room_id: str) -> list[dict[str, Any]]:
    """The room's events as stored, oldest first."""
    return [dict(event) for _, event in server.services.rooms.timeline.events_after(room_id, 0)]


_busy_rooms: dict[tuple[int, str], str] = {}


async def busy_room(server: SharedServer, version: str) -> str:
    """A room with one of each kind of event; returns its id.

    Built once per room version on the module's server: the tests only read it.
    """
    key = (id(server.running), version)
    if key not in _busy_rooms:
        _busy_rooms[key] = await _build_busy_room(server, version)
    return _busy_rooms[key]


async def _build_busy_room(server: SharedServer, version: str) -> str:
    alice, bob, carol = await register_many(server, 3)
    room_id = await alice.create_room(
        room_version=version, preset="private_chat", name="PDUs", invite=[bob.user_id]
    )
    await bob.join(room_id)
    await alice.send(room_id, "hello")
    await bob.send(room_id, "hi")
    levels = ok(await alice.get_state(room_id, "m.room.power_levels"))
    levels["users"][bob.user_id] = 50
    await alice.set_state(room_id, "m.room.power_levels", levels)
    await alice.invite(room_id, carol)
    await carol.join(room_id)
    ok(await bob.membership_action(room_id, "kick", carol))
    spam = await carol.send(await carol.create_room(), "elsewhere")
    assert spam
    message = await bob.send(room_id, "to be redacted")
    ok(await alice.put(f"/rooms/{path_part(room_id)}/redact/{path_part(message)}/r1", {}))
    if get_room_version(version).restricted_join_rule:
        space = await alice.create_room(preset="public_chat")
        await carol.join(space)
        await alice.set_state(
            room_id,
            "m.room.join_rules",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]},
        )
        await carol.join(room_id)  # authorised by alice's server, cited in auth_events
    await alice.send(room_id, "bye")
    return room_id


@pytest.mark.parametrize("version", VERSIONS)
async def test_stored_events_have_valid_format_hashes_signatures_and_ids(
    server: SharedServer, version: str
):
    room_id = await busy_room(server, version)
    room_version = get_room_version(version)
    globals_ = server.services.globals
    keys = {globals_.server_name: {globals_.signing_key_id: globals_.signing_key.verify_key}}
    events = stored_events(server, room_id)
    assert len(events) > 15
    for stored in events:
        pdu = as_pdu(stored, room_version)
        validate_pdu_format(pdu, room_version)
        verify_event_signatures(pdu, room_version, keys)
        assert compute_event_id(pdu, room_version) == stored["event_id"]
        redacted = "redacted_because" in (stored.get("unsigned") or {})
        # A redacted event keeps the hash of its full content: it no longer matches.
        assert check_content_hash(pdu) is not redacted, stored["type"]
        assert pdu.get("room_id", room_id) == room_id


@pytest.mark.parametrize("version", ["1", "10", "12"])
async def test_a_tampered_event_fails_the_signature_check(server: SharedServer, version: str):
    room_id = await busy_room(server, version)
    room_version = get_room_version(version)
    globals_ = server.services.globals
    keys = {globals_.server_name: {globals_.signing_key_id: globals_.signing_key.verify_key}}
    pdu = as_pdu(stored_events(server, room_id)[-1], room_version)
    pdu["sender"] = "@mallory:localhost"  # covered by the signature (content is not)
    with pytest.raises(SignatureError):
        verify_event_signatures(pdu, room_version, keys)


@pytest.mark.parametrize("version", VERSIONS)
async def test_each_event_follows_the_previous_one(server: SharedServer, version: str):
    room_id = await busy_room(server, version)
    events = stored_events(server, room_id)
    create = events[0]
    assert create["type"] == "m.room.create"
    assert create["prev_events"] == [] and create["auth_events"] == []
    assert create["depth"] == 1
    for previous, event in itertools.pairwise(events):
        assert [reference_id(ref) for ref in event["prev_events"]] == [previous["event_id"]]
        assert event["depth"] == previous["depth"] + 1
        if get_room_version(version).event_format is EventFormat.V1:
            (reference,) = event["prev_events"]
            assert reference[1]["sha256"] == previous["hashes"]["sha256"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_auth_events_are_the_selection_from_the_state_before_and_allow_the_event(
    server: SharedServer, version: str
):
    room_id = await busy_room(server, version)
    room_version = get_room_version(version)
    events = stored_events(server, room_id)
    by_id = {event["event_id"]: event for event in events}
    state: dict[tuple[str, str], str] = {}
    for event in events:
        selection = auth_types_for_event(
            event["type"], event["sender"], event.get("state_key"), event["content"], room_version
        )
        expected = {state[key] for key in selection if key in state}
        cited = [reference_id(ref) for ref in event["auth_events"]]
        assert len(cited) == len(set(cited))
        assert set(cited) == expected, (event["type"], event.get("state_key"))

        auth_state = {key: by_id[state[key]] for key in selection if key in state}
        if ("m.room.create", "") in state:
            auth_state[("m.room.create", "")] = by_id[state[("m.room.create", "")]]
        unredacted = dict(event)  # the redacted copy lost content the rules look at
        if "redacted_because" not in (event.get("unsigned") or {}):
            rejection = check_auth(
                as_pdu(unredacted, room_version) | {"event_id": event["event_id"]},
                auth_state,
                room_version,
                is_signed_by=lambda _event, name: name == server.config.server_name,
            )
            assert rejection is None, rejection
        if "state_key" in event:
            state[(event["type"], event["state_key"])] = event["event_id"]


async def test_restricted_join_cites_the_authorising_members_event(server: SharedServer):
    room_id = await busy_room(server, "10")
    events = stored_events(server, room_id)
    by_id = {event["event_id"]: event for event in events}
    restricted_join = next(
        event
        for event in events
        if event["type"] == "m.room.member"
        and "join_authorised_via_users_server" in event["content"]
    )
    authoriser = restricted_join["content"]["join_authorised_via_users_server"]
    cited = {(by_id[i]["type"], by_id[i].get("state_key")) for i in restricted_join["auth_events"]}
    assert ("m.room.member", authoriser) in cited
    assert ("m.room.join_rules", "") in cited


def snapshot_diffs(server: SharedServer) -> dict[bytes, bytes]:
    """The stored state snapshots (shortstatehash → diff), read from the database."""
    tree = server.services.db.tree("shortstatehash_statediff")
    return dict(tree.iter_prefix())


async def test_messages_store_no_state_and_a_join_stores_a_small_diff(server: SharedServer):
    """A room's state is stored as diffs: the bigger the room, the more this matters."""
    room_id, users = await room_with_members(server, 30)
    before = snapshot_diffs(server)
    for user in users[:5]:
        await user.send(room_id, "no state change")
    assert snapshot_diffs(server) == before

    newcomer = await register(server)
    await newcomer.join(room_id)
    new = {key: value for key, value in snapshot_diffs(server).items() if key not in before}
    assert len(new) == 1
    (diff,) = new.values()
    header, entry_bytes = 16, 16  # parent + number added; short state key + short event id
    assert len(diff) <= header + 2 * entry_bytes  # not the room's 36 state entries
