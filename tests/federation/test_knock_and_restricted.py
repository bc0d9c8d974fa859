"""Knocking, restricted joins, `omit_members` and the third-party invite exchange between
two (or three) of our servers over TLS.

Spec: `content/server-server-api.md` "Knocking upon a room" (`make_knock`,
`send_knock`, retracting by leaving), "Restricted rooms" (the resident names an
authorising user and signs; 400 `M_UNABLE_TO_AUTHORISE_JOIN` /
`M_UNABLE_TO_GRANT_JOIN` send the joiner elsewhere, 403 when no condition
holds), "Joining Rooms" (`send_join` v2 with `omit_members`: joins-v2.yaml,
MSC3706, MSC3943 for the heroes), "Third-party invites"
(`exchange_third_party_invite`); `content/client-server-api/_index.md`
"Knocking on rooms" (`/knock`, `rooms.knock` in `/sync`).
"""

from __future__ import annotations

from typing import Any

import pytest

from matrix_conduit.core.auth import AUTHORISING_USER
from matrix_conduit.core.events import compute_event_id
from matrix_conduit.core.signing import (
    SigningKey,
    generate_signing_key,
    sign_json,
    verify_key_base64,
)
from matrix_conduit.service.federation import membership as resident_membership
from matrix_conduit.service.federation.received import wire_pdu
from tests.support.federation import FederatingServer, start_federating
from tests.support.knocks import (
    federation_error,
    knock,
    membership_on,
    restricted_rules,
    send_join_by_hand,
    synced_rooms,
    until_membership,
)
from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.remote_membership import eventually, join


@pytest.fixture
async def pair(nursery, ca, tmp_path) -> tuple[FederatingServer, FederatingServer]:
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    return a, b


async def _knock_room(owner: User, room_version: str = "10", join_rule: str = "knock") -> str:
    rules = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": join_rule}}
    return await owner.create_room(
        preset="private_chat", room_version=room_version, name="Knock here", initial_state=[rules]
    )


# ---- knocking


@pytest.mark.parametrize("room_version", ["7", "10", "12"])
async def test_a_knock_through_another_server_is_seen_on_both_and_accepted_by_an_invite(
    pair, room_version
):
    """The knocker's `/sync` has the room in `rooms.knock` (with the create event and its
    knock); the room's members see the knock; an invite accepts it and the knocker joins
    without naming a server."""
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await _knock_room(alice, room_version)

    assert ok(await knock(bob, room_id, via=a.name, reason="let me in"))["room_id"] == room_id

    knocked = (await synced_rooms(bob, "knock"))[room_id]["knock_state"]["events"]
    types = {event["type"] for event in knocked}
    assert {"m.room.create", "m.room.join_rules", "m.room.name"} <= types
    own = [e for e in knocked if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert own and own[0]["content"]["membership"] == "knock"
    seen = ok(await alice.get_state(room_id, "m.room.member", bob.user_id))
    assert seen == {**seen, "membership": "knock", "reason": "let me in"}

    await alice.invite(room_id, bob)
    await eventually(lambda: _is_in(bob, room_id, "invite"))
    assert room_id not in await synced_rooms(bob, "knock")
    ok(await join(bob, room_id))

    assert bob.user_id in a.server.services.rooms.state_cache.joined_members(room_id)
    assert room_id in await bob.joined_rooms()


async def test_a_knock_by_an_alias_of_another_server_needs_no_via(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    rules = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
    room_id = await alice.create_room(room_alias_name="door", initial_state=[rules])

    assert ok(await knock(bob, f"#door:{a.name}"))["room_id"] == room_id

    assert membership_on(a, room_id, bob) == "knock"
    assert room_id in await synced_rooms(bob, "knock")


async def _is_in(user: User, room_id: str, section: str) -> bool:
    return room_id in await synced_rooms(user, section)


async def test_a_kick_of_a_remote_knock_reaches_the_knockers_server(pair):
    """A rejected knock (the knocker kicked) is pushed to the knocker's server, which is
    not in the room: the room leaves `rooms.knock` and comes in `rooms.leave`."""
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await _knock_room(alice)
    ok(await knock(bob, room_id, via=a.name))
    since = ok(await bob.get("/sync"))["next_batch"]

    ok(await alice.membership_action(room_id, "kick", bob, reason="not today"))

    await until_membership(b, room_id, bob, "leave")
    synced = ok(await bob.get("/sync", since=since))
    assert room_id in synced["rooms"]["leave"]
    assert room_id not in synced["rooms"]["knock"]


async def test_a_ban_of_a_remote_knock_reaches_the_knockers_server_and_bars_a_new_knock(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await _knock_room(alice)
    ok(await knock(bob, room_id, via=a.name))

    ok(await alice.membership_action(room_id, "ban", bob))

    await until_membership(b, room_id, bob, "leave")
    assert_error(await knock(bob, room_id, via=a.name), 403, "M_FORBIDDEN")


async def test_a_knock_is_retracted_by_leaving_through_the_rooms_server(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await _knock_room(alice)
    ok(await knock(bob, room_id, via=a.name))

    ok(await bob.post(f"/rooms/{path_part(room_id)}/leave"))

    left = ok(await alice.get_state(room_id, "m.room.member", bob.user_id))
    assert left["membership"] == "leave"
    assert membership_on(b, room_id, bob) == "leave"
    assert room_id not in await synced_rooms(bob, "knock")


async def test_a_rescinded_invite_reaches_the_invited_users_server(pair):
    """The same path as a rejected knock: the leave of an invited user, pushed to their
    server, which is not in the room, ends the invite there ("Inviting to a room")."""
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob)
    assert membership_on(b, room_id, bob) == "invite"

    ok(await alice.membership_action(room_id, "kick", bob))

    await until_membership(b, room_id, bob, "leave")
    assert room_id not in await synced_rooms(bob, "invite")


async def test_a_pushed_leave_that_does_not_follow_the_knock_is_not_taken(pair):
    """The knocker's server takes a leave about its knocking user only when the event cites
    the knock among its auth events (the room's state is not ours to judge it by)."""
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await _knock_room(alice)
    ok(await knock(bob, room_id, via=a.name))
    knock_id = a.server.services.rooms.state.current_state_ids(room_id)[
        ("m.room.member", bob.user_id)
    ]
    services = a.server.services
    async with services.rooms.locks.hold(room_id) as guard:
        template = services.rooms.builder.template(
            room_id, alice.user_id, "m.room.member", {"membership": "leave"}, bob.user_id
        )
        template["auth_events"] = [e for e in template["auth_events"] if e != knock_id]
        forged = services.rooms.builder.authorise_and_sign(guard, template)
    room_version = services.rooms.timeline.room_version(room_id)
    answer = await a.federation.client.request(
        b.name,
        "PUT",
        "/_matrix/federation/v1/send/forged-kick",
        body={"origin": a.name, "origin_server_ts": 1, "pdus": [wire_pdu(forged, room_version)]},
    )

    assert "does not follow" in answer["pdus"][forged["event_id"]]["error"]
    assert membership_on(b, room_id, bob) == "knock"


async def test_knocking_needs_a_room_that_takes_knocks(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    public = await alice.create_room(preset="public_chat", room_version="10")
    old = await _knock_room(alice, room_version="6", join_rule="invite")

    assert_error(await knock(bob, public, via=a.name), 403, "M_FORBIDDEN")
    assert_error(await knock(bob, old, via=a.name), 403, "M_FORBIDDEN")
    knockable = await _knock_room(alice)
    make_knock = f"/_matrix/federation/v1/make_knock/{path_part(knockable)}"
    assert await federation_error(
        b, a.name, "GET", f"{make_knock}/{path_part(bob.user_id)}", query={"ver": ["6"]}
    ) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert await federation_error(
        b, a.name, "GET", f"{make_knock}/{path_part(alice.user_id)}", query={"ver": ["10"]}
    ) == (403, "M_FORBIDDEN")
    assert membership_on(b, public, bob) is None


# ---- restricted joins


async def test_a_restricted_join_moves_on_from_a_resident_that_cannot_authorise_it(
    pair, nursery, ca, tmp_path
):
    """B is in the restricted room but not in the room it allows: asked first, it answers
    400 `M_UNABLE_TO_AUTHORISE_JOIN`, and C's user joins through A, which signs."""
    a, b = pair
    c = await start_federating(nursery, ca, tmp_path / "c", "127.0.0.4")
    alice = await register(a.server)
    bob = await register(b.server)
    carol = await register(c.server)
    allowed = await alice.create_room(preset="public_chat")
    room_id = await alice.create_room(room_version="10", initial_state=[restricted_rules(allowed)])
    await alice.invite(room_id, bob)
    await eventually(lambda: _is_in(bob, room_id, "invite"))
    ok(await join(bob, room_id))
    make_join = f"/_matrix/federation/v1/make_join/{path_part(room_id)}"
    assert await federation_error(
        c, b.name, "GET", f"{make_join}/{path_part(carol.user_id)}", query={"ver": ["10"]}
    ) == (400, "M_UNABLE_TO_AUTHORISE_JOIN")
    ok(await join(carol, allowed, via=a.name))

    ok(await join(carol, room_id, via=[b.name, a.name]))

    member = ok(await alice.get_state(room_id, "m.room.member", carol.user_id))
    assert member["membership"] == "join"
    assert member[AUTHORISING_USER] == alice.user_id


async def test_a_resident_that_no_inviter_lives_on_answers_unable_to_grant(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    allowed = await alice.create_room(preset="public_chat")
    room_id = await alice.create_room(room_version="10", initial_state=[restricted_rules(allowed)])
    levels = ok(await alice.get_state(room_id, "m.room.power_levels"))
    levels["users"][alice.user_id] = 0  # she stays, but nobody here may invite now
    ok(await alice.put_state(room_id, "m.room.power_levels", {**levels, "invite": 50}))
    make_join = f"/_matrix/federation/v1/make_join/{path_part(room_id)}"
    ok(await join(bob, allowed, via=a.name))

    assert await federation_error(
        b, a.name, "GET", f"{make_join}/{path_part(bob.user_id)}", query={"ver": ["10"]}
    ) == (400, "M_UNABLE_TO_GRANT_JOIN")
    assert_error(await join(bob, room_id, via=a.name), 403, "M_FORBIDDEN")


async def test_send_join_does_not_sign_for_a_user_the_allow_rules_do_not_admit(pair):
    """A join naming our user as its authoriser, for a user in none of the allowed rooms,
    is refused (a template from elsewhere, or an old one, gets no signature from us)."""
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    allowed = await alice.create_room(preset="public_chat")
    room_id = await alice.create_room(room_version="10", initial_state=[restricted_rules(allowed)])
    content = {"membership": "join", AUTHORISING_USER: alice.user_id}
    template = a.server.services.rooms.builder.template(
        room_id, bob.user_id, "m.room.member", content, bob.user_id
    )

    status, errcode, _ = await send_join_by_hand(b, a.name, template, expect_error=True)

    assert (status, errcode) == (403, "M_FORBIDDEN")
    assert membership_on(a, room_id, bob) is None


async def test_a_join_whose_authorising_server_did_not_sign_is_refused(pair):
    """The join names an authoriser on a server that never signed it: the resident
    checks that server's signature (auth rule, rooms v8+) and refuses."""
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    allowed = await alice.create_room(preset="public_chat")
    room_id = await alice.create_room(room_version="10", initial_state=[restricted_rules(allowed)])
    content = {"membership": "join", AUTHORISING_USER: "@someone:127.0.0.9:1"}
    template = a.server.services.rooms.builder.template(
        room_id, bob.user_id, "m.room.member", content, bob.user_id
    )

    status, errcode, refusal = await send_join_by_hand(b, a.name, template, expect_error=True)

    assert (status, errcode) == (403, "M_FORBIDDEN")
    assert "signature" in refusal["error"]
    assert membership_on(a, room_id, bob) is None


# ---- send_join with omit_members


@pytest.fixture
def omit_from_three(monkeypatch: pytest.MonkeyPatch) -> None:
    """`omit_members` honoured from three members on (it is from 50 on: the rooms here
    would otherwise need 50 accounts)."""
    monkeypatch.setattr(resident_membership, "OMIT_MEMBERS_FROM", 3)


async def test_send_join_with_omit_members_leaves_out_the_members_of_a_named_room(
    pair, omit_from_three
):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", name="Named")
    others = [await register(a.server) for _ in range(3)]
    for other in others:
        await other.join(room_id)
    template = await _make_join(b, a.name, room_id, bob.user_id)

    _, _, answer = await send_join_by_hand(b, a.name, template, omit_members=True)

    assert answer["members_omitted"] is True
    assert answer["servers_in_room"] == [a.name]
    state_types = [event["type"] for event in answer["state"]]
    assert "m.room.member" not in state_types
    assert {"m.room.create", "m.room.power_levels", "m.room.name"} <= set(state_types)
    chain_members = {e["state_key"] for e in answer["auth_chain"] if e["type"] == "m.room.member"}
    assert chain_members == {alice.user_id}  # the creator: the power levels' auth chain
    state_ids = {_event_id(a, room_id, event) for event in answer["state"]}
    assert not state_ids & {_event_id(a, room_id, event) for event in answer["auth_chain"]}
    assert membership_on(a, room_id, bob) == "join"


async def test_send_join_with_omit_members_keeps_the_heroes_of_a_nameless_room(
    pair, omit_from_three
):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    others = [await register(a.server) for _ in range(6)]
    for other in others:
        await other.join(room_id)
    template = await _make_join(b, a.name, room_id, bob.user_id)

    _, _, answer = await send_join_by_hand(b, a.name, template, omit_members=True)

    members = sorted(e["state_key"] for e in answer["state"] if e["type"] == "m.room.member")
    assert members == sorted([alice.user_id, *(u.user_id for u in others)])[:5]


@pytest.mark.parametrize("omit_members", [None, False, True])
async def test_send_join_answers_the_whole_state_unless_asked_for_a_big_room(pair, omit_members):
    """Below `OMIT_MEMBERS_FROM` members the whole state is answered even when asked to
    omit members (the spec lets a resident choose per room)."""
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat", name="Named")
    other = await register(a.server)
    await other.join(room_id)
    template = await _make_join(b, a.name, room_id, bob.user_id)

    _, _, answer = await send_join_by_hand(b, a.name, template, omit_members=omit_members)

    assert answer["members_omitted"] is False
    members = {e["state_key"] for e in answer["state"] if e["type"] == "m.room.member"}
    assert members == {alice.user_id, other.user_id}
    assert answer["servers_in_room"] == [a.name]


async def test_omit_members_must_be_true_or_false(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id = await alice.create_room(preset="public_chat")
    template = await _make_join(b, a.name, room_id, bob.user_id)

    status, errcode, _ = await send_join_by_hand(
        b, a.name, template, omit_members="maybe", expect_error=True
    )

    assert (status, errcode) == (400, "M_INVALID_PARAM")


async def _make_join(
    server: FederatingServer, destination: str, room_id: str, user_id: str
) -> dict[str, Any]:
    answer = await server.federation.client.request(
        destination,
        "GET",
        f"/_matrix/federation/v1/make_join/{path_part(room_id)}/{path_part(user_id)}",
        query={"ver": ["10"]},
    )
    return answer["event"]


def _event_id(server: FederatingServer, room_id: str, pdu: dict[str, Any]) -> str:
    room_version = server.server.services.rooms.timeline.room_version(room_id)
    return compute_event_id(pdu, room_version)


# ---- exchange_third_party_invite


async def _third_party_invite(owner: User, token: str) -> tuple[str, SigningKey]:
    """A room of `owner` with an `m.room.third_party_invite` for `token`, as an identity
    server's store-invite answer makes it; the room and the identity server's key."""
    identity_key = generate_signing_key()
    room_id = await owner.create_room(preset="private_chat", name="Invited by email")
    content = {
        "display_name": "b...@example.org",
        "key_validity_url": "https://id.example.org/_matrix/identity/v2/pubkey/isvalid",
        "public_key": verify_key_base64(identity_key),
        "public_keys": [{"public_key": verify_key_base64(identity_key)}],
    }
    ok(await owner.put_state(room_id, "m.room.third_party_invite", content, token))
    return room_id, identity_key


def _redeemed(
    room_id: str, sender: User, invited: User, token: str, key: SigningKey
) -> dict[str, Any]:
    """The invited server's partial invite: the identity server's `signed` for the user."""
    signed = sign_json({"mxid": invited.user_id, "token": token}, "id.example.org", key)
    return {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": sender.user_id,
        "state_key": invited.user_id,
        "content": {
            "membership": "invite",
            "third_party_invite": {"display_name": "b...@example.org", "signed": signed},
        },
    }


def _exchange_path(room_id: str) -> str:
    return f"/_matrix/federation/v1/exchange_third_party_invite/{path_part(room_id)}"


async def test_a_redeemed_third_party_invite_becomes_an_invite_the_user_accepts(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id, key = await _third_party_invite(alice, "tok123")

    answer = await b.federation.client.request(
        a.name,
        "PUT",
        _exchange_path(room_id),
        body=_redeemed(room_id, alice, bob, "tok123", key),
    )

    assert answer == {}
    member = ok(await alice.get_state(room_id, "m.room.member", bob.user_id))
    assert member["membership"] == "invite"
    assert member["third_party_invite"]["signed"]["token"] == "tok123"
    assert membership_on(b, room_id, bob) == "invite"
    ok(await join(bob, room_id))
    assert bob.user_id in a.server.services.rooms.state_cache.joined_members(room_id)
    again = _redeemed(room_id, alice, bob, "tok123", key)
    assert await federation_error(b, a.name, "PUT", _exchange_path(room_id), body=again) == (
        403,
        "M_FORBIDDEN",
    )
    assert membership_on(a, room_id, bob) == "join"


async def test_a_third_party_invite_signed_by_another_key_or_for_another_token_is_refused(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    room_id, _ = await _third_party_invite(alice, "tok123")
    forged = _redeemed(room_id, alice, bob, "tok123", generate_signing_key())
    unknown = _redeemed(room_id, alice, bob, "nope", generate_signing_key())

    assert await federation_error(b, a.name, "PUT", _exchange_path(room_id), body=forged) == (
        403,
        "M_FORBIDDEN",
    )
    assert await federation_error(b, a.name, "PUT", _exchange_path(room_id), body=unknown) == (
        403,
        "M_FORBIDDEN",
    )
    assert membership_on(a, room_id, bob) is None


async def test_a_malformed_third_party_invite_exchange_is_a_bad_request(pair):
    a, b = pair
    alice = await register(a.server)
    bob = await register(b.server)
    carol = await register(a.server)
    room_id, key = await _third_party_invite(alice, "tok123")
    good = _redeemed(room_id, alice, bob, "tok123", key)
    for change in (
        {"type": "m.room.message"},
        {"room_id": f"!other:{a.name}"},
        {"state_key": carol.user_id},  # not a user of the asking server
        {"sender": bob.user_id},  # not a user of this one
        {"content": {"membership": "join"}},
    ):
        status = await federation_error(
            b, a.name, "PUT", _exchange_path(room_id), body={**good, **change}
        )
        assert status == (400, "M_INVALID_PARAM"), change
    for_someone_else = _redeemed(room_id, alice, await register(b.server), "tok123", key)
    mismatched = {**for_someone_else, "state_key": bob.user_id}  # signed.mxid differs
    assert await federation_error(b, a.name, "PUT", _exchange_path(room_id), body=mismatched) == (
        400,
        "M_INVALID_PARAM",
    )
