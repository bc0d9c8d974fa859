"""Knocking, restricted joins and partial-state joins between one of our servers and a real
Synapse, both directions, over TLS.

Each test runs with the room on Synapse and the visitor ours, then the other
way round; each side's view is what its own client API shows through
long-poll `/sync`. Synapse 1.163 makes rooms of version 12 (ours: 10), and as a
joining server always asks `send_join` for `omit_members=true` (MSC3706), so a
Synapse user joining our room gets our partial-state answer and then fetches
the full state (`/state_ids`, `/state`). Spec: `content/server-server-api.md`
"Knocking upon a room", "Restricted rooms", "Joining Rooms", "Third-party invites";
`content/client-server-api/_index.md` "Knocking on rooms", "Restricted rooms".
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from matrix_conduit.core.signing import generate_signing_key, sign_json, verify_key_base64
from matrix_conduit.service.federation.membership import OMIT_MEMBERS_FROM
from tests.support.matrix import ok, path_part
from tests.support.remote_membership import eventually
from tests.support.synapse_rooms import (
    DIRECTIONS,
    Account,
    Peers,
    Sync,
    has_bodies,
    has_membership,
    joined,
    sides,
)

pytestmark = pytest.mark.parametrize("direction", DIRECTIONS)


async def _accounts(both: Peers, direction: str) -> tuple[Account, Account]:
    home_side, visitor_side = sides(direction)
    return await both.account_on(home_side), await both.account_on(visitor_side)


async def _knock(account: Account, room: str, **params: Any) -> Any:
    return await account.request(
        "POST", f"/knock/{path_part(room)}", {"reason": "let me in"}, **params
    )


def _knocked(room_id: str) -> Any:
    """A check for `Sync.until`: the room is in the last response's `rooms.knock`."""
    return lambda sync: sync.last.get("rooms", {}).get("knock", {}).get(room_id)


async def _knock_room(home: Account, **create: Any) -> tuple[str, Sync]:
    rules = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
    room_id = await home.create_room(
        preset="private_chat", name="Knock here", initial_state=[rules], **create
    )
    home_sync = home.sync()
    await home_sync.once()
    return room_id, home_sync


async def test_a_knock_on_the_other_servers_room_is_seen_there_and_accepted(both, direction):
    home, visitor = await _accounts(both, direction)
    room_id, home_sync = await _knock_room(home)
    visitor_sync = visitor.sync()
    await visitor_sync.once()

    assert ok(await _knock(visitor, room_id, via=home.server_name))["room_id"] == room_id

    knocked = await visitor_sync.until(_knocked(room_id))
    types = {event["type"] for event in knocked["knock_state"]["events"]}
    assert {"m.room.create", "m.room.join_rules", "m.room.name"} <= types
    knock = await home_sync.until(lambda s: s.member_event(room_id, visitor.user_id, "knock"))
    assert knock["content"].get("reason") == "let me in"

    ok(await home.room_action(room_id, "invite", {"user_id": visitor.user_id}))
    await visitor_sync.until(lambda sync: room_id in sync.invites)
    ok(await visitor.join(room_id))

    await home_sync.until(joined(visitor.user_id, room_id))
    await visitor_sync.until(joined(visitor.user_id, room_id))
    said = await home.send(room_id, "come in")
    await visitor_sync.until(lambda sync: sync.event(room_id, said))


async def test_a_knock_is_retracted_by_leaving(both, direction):
    """The knocker leaves: no longer knocking on their side; ours sends the leave to the
    room (make_leave/send_leave). Synapse 1.163 retracts a knock on another server's room
    only locally (element-hq/synapse#18030), so our room goes on showing its knock."""
    home, visitor = await _accounts(both, direction)
    room_id, home_sync = await _knock_room(home)
    ok(await _knock(visitor, room_id, via=home.server_name))
    await home_sync.until(has_membership(visitor.user_id, room_id, "knock"))

    ok(await visitor.room_action(room_id, "leave"))

    body = await visitor.sync().once()
    assert room_id not in body.get("rooms", {}).get("knock", {})
    if sides(direction)[1] == "ours":
        await home_sync.until(has_membership(visitor.user_id, room_id, "leave"))


async def test_a_rejected_knock_is_seen_by_the_room(both, direction):
    """The knocker is kicked: the room sees it. (Synapse does not pass a kick of a knock
    on to the knocker's server, and ignores one about its own knocking user, logging
    "Ignoring PDU": element-hq/synapse#18030. Between our servers the knocker's server
    takes it: `test_knock_and_restricted.py`.)"""
    if sides(direction)[1] == "synapse":
        pytest.skip("Synapse ignores (and logs) a kick of its knocking user: synapse#18030")
    home, visitor = await _accounts(both, direction)
    room_id, home_sync = await _knock_room(home)
    ok(await _knock(visitor, room_id, via=home.server_name))
    await home_sync.until(has_membership(visitor.user_id, room_id, "knock"))

    ok(await home.room_action(room_id, "kick", {"user_id": visitor.user_id, "reason": "no"}))

    kick = await home_sync.until(lambda s: s.member_event(room_id, visitor.user_id, "leave"))
    assert kick["content"].get("reason") == "no"


async def test_a_rescinded_invite_reaches_the_invited_users_server(both, direction):
    """The inviter kicks the invited user, whose server is not in the room: it is told
    (both servers send it there), and takes it: the invite is gone from `/sync`. (What
    takes a rejected knock on our side; Synapse sends only this one: synapse#18030.)"""
    home, visitor = await _accounts(both, direction)
    room_id = await home.create_room(preset="private_chat", name="Changed my mind")
    visitor_sync = visitor.sync()
    await visitor_sync.once()
    ok(await home.room_action(room_id, "invite", {"user_id": visitor.user_id}))
    await visitor_sync.until(lambda sync: room_id in sync.invites)

    ok(await home.room_action(room_id, "kick", {"user_id": visitor.user_id}))

    await visitor_sync.until(lambda sync: room_id in sync.last.get("rooms", {}).get("leave", {}))
    body = await visitor.sync().once()
    assert room_id not in body.get("rooms", {}).get("invite", {})


async def test_a_restricted_room_admits_members_of_its_allowed_room_and_refuses_others(
    both, direction
):
    """`knock_restricted` (rooms v10): a member of the allowed room joins through the
    resident's signature; a user in none of the allowed rooms gets 403 on `/join`, and
    may knock instead."""
    home, visitor = await _accounts(both, direction)
    stranger = await both.account_on(sides(direction)[1])
    allowed = await home.create_room(preset="public_chat", room_version="10")
    rule = {
        "join_rule": "knock_restricted",
        "allow": [{"type": "m.room_membership", "room_id": allowed}],
    }
    room_id = await home.create_room(
        preset="private_chat",
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": rule}],
    )
    home_sync = home.sync()
    await home_sync.once()
    ok(await visitor.join(allowed, server_name=home.server_name))
    await home_sync.until(joined(visitor.user_id, allowed))

    ok(await visitor.join(room_id, server_name=home.server_name))

    await home_sync.until(joined(visitor.user_id, room_id))
    join = home_sync.member_event(room_id, visitor.user_id, "join")
    assert join["content"].get("join_authorised_via_users_server") == home.user_id
    refused = await stranger.join(room_id, server_name=home.server_name)
    assert refused.status_code == 403, refused.text
    assert refused.json()["errcode"] == "M_FORBIDDEN"
    ok(await _knock(stranger, room_id, via=home.server_name))
    await home_sync.until(has_membership(stranger.user_id, room_id, "knock"))


async def test_a_joiner_of_a_big_room_sees_its_members_and_talks(both, direction):
    """Synapse joins our rooms with `omit_members`, which we honour from
    `OMIT_MEMBERS_FROM` members on (our answer leaves the members out, the heroes of a
    nameless room kept), and fetches the rest; we join Synapse's with the full state.
    Either way the visitor ends up seeing every member and the messages."""
    home, visitor = await _accounts(both, direction)
    room_id = await home.create_room(preset="public_chat")
    members = [await both.account_on(sides(direction)[0]) for _ in range(OMIT_MEMBERS_FROM)]
    for member in members:
        ok(await member.join(room_id))
    home_sync = home.sync()
    await home_sync.once()

    ok(await visitor.join(room_id, server_name=home.server_name))

    await home_sync.until(joined(visitor.user_id, room_id))
    said = await members[-1].send(room_id, "hello newcomer")
    visitor_sync = visitor.sync()
    await visitor_sync.until(has_bodies(room_id, "hello newcomer"))
    assert visitor_sync.event(room_id, said)
    everyone = {home.user_id, visitor.user_id, *(m.user_id for m in members)}
    listed = await _joined_members(visitor, room_id, everyone)
    assert listed == everyone


async def _joined_members(account: Account, room_id: str, expected: set[str]) -> set[str]:
    """The room's `/joined_members` as the account's server lists them, once they are all
    there (a partial-state join learns the others in the background)."""

    async def listed() -> set[str] | None:
        answer = await account.request("GET", f"/rooms/{path_part(room_id)}/joined_members")
        members = set(ok(answer)["joined"])
        return members if members >= expected else None

    return await eventually(listed, timeout=60)


async def test_a_third_party_invite_is_exchanged_for_an_invite_the_user_accepts(both, direction):
    """The room's server holds an `m.room.third_party_invite` (an identity server's key);
    the invited user's server asks it to turn the redeemed invite into an invite
    (`exchange_third_party_invite`): Synapse does when an identity server calls its
    `/3pid/onbind`, ours here by hand. The invite comes by `/invite`, and is accepted."""
    home, visitor = await _accounts(both, direction)
    identity_key = generate_signing_key()
    room_id = await home.create_room(preset="private_chat", name="Invited by email")
    public_key = verify_key_base64(identity_key)
    invite_content = {
        "display_name": "v...@example.org",
        "key_validity_url": "https://id.example.org/_matrix/identity/v2/pubkey/isvalid",
        "public_key": public_key,
        "public_keys": [{"public_key": public_key}],
    }
    ok(await home.put_state(room_id, "m.room.third_party_invite", invite_content, "tok"))
    signed = sign_json({"mxid": visitor.user_id, "token": "tok"}, "id.example.org", identity_key)
    home_sync, visitor_sync = home.sync(), visitor.sync()
    await home_sync.once()
    await visitor_sync.once()

    if sides(direction)[1] == "synapse":
        invite = {
            "medium": "email",
            "address": "v@example.org",
            "mxid": visitor.user_id,
            "room_id": room_id,
            "sender": home.user_id,
            "signed": signed,
        }
        body = {"medium": "email", "address": "v@example.org", "mxid": visitor.user_id}
        async with httpx.AsyncClient(verify=both.synapse.tls_context()) as identity_server:
            answer = await identity_server.post(  # Synapse serves it as POST
                both.synapse.federation_url + "/_matrix/federation/v1/3pid/onbind",
                json={**body, "invites": [invite]},
            )
        ok(answer)
    else:
        partial = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": home.user_id,
            "state_key": visitor.user_id,
            "content": {"membership": "invite", "third_party_invite": {"signed": signed}},
        }
        path = f"/_matrix/federation/v1/exchange_third_party_invite/{path_part(room_id)}"
        await both.ours.federation.client.request(home.server_name, "PUT", path, body=partial)

    await visitor_sync.until(lambda sync: room_id in sync.invites)
    member = await home_sync.until(lambda s: s.member_event(room_id, visitor.user_id, "invite"))
    assert member["content"]["third_party_invite"]["signed"]["token"] == "tok"
    ok(await visitor.join(room_id))
    await home_sync.until(joined(visitor.user_id, room_id))
