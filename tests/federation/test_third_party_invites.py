"""Third-party (email) invites and 3PID bindings, against a real identity server (Sydent).

Spec: `content/client-server-api/modules/third_party_invites.md` ("Server
behaviour": lookup, store-invite, `m.room.third_party_invite`, the exchange
on bind), `data/api/client-server/third_party_membership.yaml`,
`create_room.yaml` (`invite_3pid`), `administrative_contact.yaml`
(`/account/3pid/bind`, `/unbind`), `content/server-server-api.md` §
Third-party invites (`/3pid/onbind`), `content/identity-service-api.md`.

Our server runs with TLS on 127.0.0.2 (so Sydent can call its `/3pid/onbind`,
its keys and its OpenID userinfo); Sydent runs from `.sydent-venv/` behind a
TLS front on 127.0.0.1 (`tests/support/sydent.py`), its email into a sink
of the test's own, from which the validation tokens are read. Under
`tests/federation/` for the `ca` fixture.
"""

from __future__ import annotations

import secrets
import ssl
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from matrix_conduit.core.signing import generate_signing_key, sign_json, verify_key_base64
from tests.support.federation import FederatingServer, serve_https, start_federating
from tests.support.federation_ca import FederationCa
from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.remote_membership import eventually
from tests.support.sydent import Sydent, running_sydent, serve_tls_front
from tests.support.synapse_rooms import Peers

IDENTITY_API = "/_matrix/identity/v2"


@pytest.fixture
async def sydent(nursery, ca: FederationCa, tmp_path) -> Any:
    with running_sydent(tmp_path / "sydent") as sydent:
        await serve_tls_front(nursery, ca, sydent)
        yield sydent


@pytest.fixture
async def us(nursery, ca: FederationCa, tmp_path) -> FederatingServer:
    return await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")


def identity_client(ca: FederationCa, sydent: Sydent) -> httpx.AsyncClient:
    verify = ssl.create_default_context(cafile=str(ca.certificate_path))
    return httpx.AsyncClient(base_url=f"https://{sydent.id_server}", verify=verify, timeout=30)


async def id_access_token(ca: FederationCa, sydent: Sydent, user: User) -> str:
    """Sydent's token for `user`, from an OpenID token of ours (v2 /account/register)."""
    openid = ok(await user.post(f"/user/{path_part(user.user_id)}/openid/request_token", {}))
    return await id_access_token_for(ca, sydent, openid)


async def id_access_token_for(ca: FederationCa, sydent: Sydent, openid: dict[str, Any]) -> str:
    """Sydent's token for the holder of an OpenID token (Sydent asks its server who it is)."""
    async with identity_client(ca, sydent) as client:
        answer = await client.post(f"{IDENTITY_API}/account/register", json=openid)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


async def validated_session(
    ca: FederationCa, sydent: Sydent, token: str, address: str
) -> dict[str, str]:
    """An email validation session on Sydent, completed with the token it mailed."""
    client_secret = secrets.token_hex(8)
    headers = {"Authorization": f"Bearer {token}"}
    count = len([m for m in sydent.mail.messages if address in str(m["To"])]) + 1
    async with identity_client(ca, sydent) as client:
        requested = await client.post(
            f"{IDENTITY_API}/validate/email/requestToken",
            json={"client_secret": client_secret, "email": address, "send_attempt": 1},
            headers=headers,
        )
        assert requested.status_code == 200, requested.text
        sid = requested.json()["sid"]
        message = await sydent.mail.wait_for(address, count)
        mailed = message.get_content().split("token=", 1)[1].strip()
        submitted = await client.post(
            f"{IDENTITY_API}/validate/email/submitToken",
            json={"sid": sid, "client_secret": client_secret, "token": mailed},
            headers=headers,
        )
        assert submitted.status_code == 200 and submitted.json()["success"], submitted.text
    return {"sid": sid, "client_secret": client_secret}


async def bind(ca: FederationCa, sydent: Sydent, user: User, address: str) -> None:
    """Validate `address` on Sydent and bind it to `user` through our `/account/3pid/bind`."""
    token = await id_access_token(ca, sydent, user)
    session = await validated_session(ca, sydent, token, address)
    body = {**session, "id_server": sydent.id_server, "id_access_token": token}
    assert ok(await user.post("/account/3pid/bind", body)) == {}


async def member(user: User, room_id: str, target: str) -> dict[str, Any] | None:
    response = await user.get(f"/rooms/{room_id}/state/m.room.member/{path_part(target)}")
    return response.json() if response.status_code == 200 else None


def third_party_invites(state: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in state if event["type"] == "m.room.third_party_invite"]


async def test_an_invite_by_email_is_redeemed_when_the_address_is_bound(
    ca, sydent: Sydent, us: FederatingServer
) -> None:
    """Unbound: store-invite + m.room.third_party_invite (and Sydent mails the invitee);
    once bound, Sydent's /3pid/onbind makes the m.room.member invite carrying its signed
    proof, which the auth rules accept; the invitee joins."""
    alice, bob = await register(us.server), await register(us.server)
    address = f"bob-{secrets.token_hex(3)}@example.test"
    room_id = await alice.create_room(name="Book club")
    invitee = {
        "id_server": sydent.id_server,
        "id_access_token": await id_access_token(ca, sydent, alice),
        "medium": "email",
        "address": address,
    }
    assert ok(await alice.post(f"/rooms/{room_id}/invite", invitee)) == {}

    [pending] = third_party_invites(ok(await alice.get(f"/rooms/{room_id}/state")))
    assert pending["sender"] == alice.user_id
    assert pending["content"]["public_keys"] and pending["content"]["public_key"]
    assert "@" in pending["content"]["display_name"]  # Sydent's obfuscated address
    invitation = await sydent.mail.wait_for(address)
    assert room_id in invitation.get_content()
    assert await member(alice, room_id, bob.user_id) is None

    await bind(ca, sydent, bob, address)

    async def invited() -> dict[str, Any] | None:
        content = await member(alice, room_id, bob.user_id)
        return content if content and content.get("membership") == "invite" else None

    content = await eventually(invited)
    signed = content["third_party_invite"]["signed"]
    assert signed["mxid"] == bob.user_id and signed["token"] == pending["state_key"]
    assert content["third_party_invite"]["display_name"] == pending["content"]["display_name"]
    assert await bob.join(room_id) == room_id


async def test_an_invite_by_a_bound_email_invites_its_user_directly(
    ca, sydent: Sydent, us: FederatingServer
) -> None:
    """The lookup finds the user: an ordinary invite, no m.room.third_party_invite."""
    alice, bob = await register(us.server), await register(us.server)
    address = f"bob-{secrets.token_hex(3)}@example.test"
    await bind(ca, sydent, bob, address)
    room_id = await alice.create_room()
    invitee = {
        "id_server": sydent.id_server,
        "id_access_token": await id_access_token(ca, sydent, alice),
        "medium": "email",
        "address": address,
    }
    ok(await alice.post(f"/rooms/{room_id}/invite", invitee))
    assert (await member(alice, room_id, bob.user_id) or {}).get("membership") == "invite"
    assert third_party_invites(ok(await alice.get(f"/rooms/{room_id}/state"))) == []


async def test_create_room_with_invite_3pid_stores_a_third_party_invite(
    ca, sydent: Sydent, us: FederatingServer
) -> None:
    alice = await register(us.server)
    token = await id_access_token(ca, sydent, alice)
    invitee = {"id_server": sydent.id_server, "id_access_token": token, "medium": "email"}
    room_id = ok(
        await alice.post(
            "/createRoom",
            {"invite_3pid": [{**invitee, "address": f"x{n}@example.test"} for n in range(2)]},
        )
    )["room_id"]
    assert len(third_party_invites(ok(await alice.get(f"/rooms/{room_id}/state")))) == 2


async def test_unbinding_forgets_the_address_on_the_identity_server(
    ca, sydent: Sydent, us: FederatingServer
) -> None:
    """Unbind (signed by our server) without id_server uses the one bound through: "success";
    a later invite to the address is a third-party invite again. Unknown: "no-support"."""
    alice, bob = await register(us.server), await register(us.server)
    address = f"bob-{secrets.token_hex(3)}@example.test"
    await bind(ca, sydent, bob, address)
    threepid = {"medium": "email", "address": address}
    assert ok(await bob.post("/account/3pid/unbind", threepid)) == {
        "id_server_unbind_result": "success"
    }
    assert ok(await bob.post("/account/3pid/unbind", threepid)) == {
        "id_server_unbind_result": "no-support"
    }
    room_id = await alice.create_room()
    token = await id_access_token(ca, sydent, alice)
    invitee = {"id_server": sydent.id_server, "id_access_token": token, **threepid}
    ok(await alice.post(f"/rooms/{room_id}/invite", invitee))
    assert await member(alice, room_id, bob.user_id) is None
    assert len(third_party_invites(ok(await alice.get(f"/rooms/{room_id}/state")))) == 1


async def test_malformed_or_refused_third_party_invites_get_the_spec_errors(
    ca, sydent: Sydent, us: FederatingServer
) -> None:
    alice, outsider = await register(us.server), await register(us.server)
    room_id = await alice.create_room()
    good = {
        "id_server": sydent.id_server,
        "id_access_token": await id_access_token(ca, sydent, alice),
        "medium": "email",
        "address": "someone@example.test",
    }
    cases = [
        ({k: v for k, v in good.items() if k != "address"}, 400, "M_MISSING_PARAM"),
        ({**good, "medium": "pigeon"}, 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
        ({**good, "id_server": "https://example.test"}, 400, "M_INVALID_PARAM"),
        ({**good, "id_server": "0.0.0.0:1"}, 400, "M_SERVER_NOT_TRUSTED"),
        ({**good, "id_access_token": "not-a-token"}, 403, "M_UNAUTHORIZED"),
    ]
    for body, status, errcode in cases:
        assert_error(await alice.post(f"/rooms/{room_id}/invite", body), status, errcode)
    assert_error(await outsider.post(f"/rooms/{room_id}/invite", good), 403, "M_FORBIDDEN")
    assert third_party_invites(ok(await alice.get(f"/rooms/{room_id}/state"))) == []
    assert_error(
        await alice.post("/createRoom", {"invite_3pid": [{"medium": "email"}]}),
        400,
        "M_MISSING_PARAM",
    )
    # /account/3pid/bind needs the session and the identity server; a session Sydent
    # never made is its error, passed on.
    session = {"sid": "1", "client_secret": "s", "id_server": sydent.id_server}
    assert_error(await alice.post("/account/3pid/bind", session), 400, "M_MISSING_PARAM")
    token = good["id_access_token"]
    bind = await alice.post("/account/3pid/bind", {**session, "id_access_token": token})
    assert_error(bind, 400, "M_NO_VALID_SESSION")


async def test_onbind_refuses_malformed_notifications(us: FederatingServer) -> None:
    """/3pid/onbind is unsigned (identity servers do not sign): its body is checked."""
    for body in ([], {"mxid": "@someone:elsewhere.test", "invites": []}, {"mxid": 3}):
        response = await us.client.put("/_matrix/federation/v1/3pid/onbind", json=body)
        assert response.status_code == 400, response.text


async def test_an_invitee_on_another_server_redeems_through_exchange_third_party_invite(
    nursery, ca, sydent: Sydent, us: FederatingServer, tmp_path
) -> None:
    """The invitee's server gets /3pid/onbind, asks the inviter's server to turn the
    third-party invite into an invite (`exchange_third_party_invite`), and receives it."""
    them = await start_federating(nursery, ca, tmp_path / "them", "127.0.0.3")
    alice, bob = await register(us.server), await register(them.server)
    address = f"bob-{secrets.token_hex(3)}@example.test"
    room_id = await alice.create_room()
    invitee = {
        "id_server": sydent.id_server,
        "id_access_token": await id_access_token(ca, sydent, alice),
        "medium": "email",
        "address": address,
    }
    ok(await alice.post(f"/rooms/{room_id}/invite", invitee))
    [pending] = third_party_invites(ok(await alice.get(f"/rooms/{room_id}/state")))

    await bind(ca, sydent, bob, address)

    async def invited() -> dict[str, Any] | None:
        content = await member(alice, room_id, bob.user_id)
        return content if content and content.get("membership") == "invite" else None

    content = await eventually(invited)
    assert content["third_party_invite"]["signed"]["token"] == pending["state_key"]

    async def in_bobs_invites() -> bool:
        return room_id in ok(await bob.get("/sync")).get("rooms", {}).get("invite", {})

    await eventually(in_bobs_invites)
    assert ok(await bob.post(f"/join/{path_part(room_id)}", {})) == {"room_id": room_id}


@pytest.mark.parametrize("still_valid", [True, False])
async def test_onbind_redeems_only_invites_whose_key_the_identity_server_still_stands_by(
    nursery, ca, us: FederatingServer, still_valid: bool
) -> None:
    """Before redeeming, one of the invite's public keys must still be valid at its
    `key_validity_url` (spec: "MUST validate that the public key used for signing is still
    valid"); here an identity server of the test's own signs and answers that check."""
    asked: list[str] = []

    async def key_validity(method: str, target: str, body: Any) -> tuple[int, Any]:
        asked.append(target)
        return 200, {"valid": still_valid}

    identity_server = await serve_https(nursery, ca, "127.0.0.4", key_validity)
    key = generate_signing_key()
    alice, bob = await register(us.server), await register(us.server)
    room_id = await alice.create_room()
    token = secrets.token_hex(8)
    pending = {
        "display_name": "b...@e...",
        "key_validity_url": f"https://{identity_server}/_matrix/identity/v2/pubkey/isvalid",
        "public_key": verify_key_base64(key),
    }
    ok(await alice.put(f"/rooms/{room_id}/state/m.room.third_party_invite/{token}", pending))
    signed = sign_json({"mxid": bob.user_id, "token": token}, identity_server, key)
    invite = {"room_id": room_id, "sender": alice.user_id, "mxid": bob.user_id, "signed": signed}
    onbind = {"medium": "email", "address": "b@e.test", "mxid": bob.user_id, "invites": [invite]}

    response = await us.client.put("/_matrix/federation/v1/3pid/onbind", json=onbind)

    assert response.status_code == 200, response.text
    assert asked == [
        f"/_matrix/identity/v2/pubkey/isvalid?public_key={quote(pending['public_key'], safe='')}"
    ]
    content = await member(alice, room_id, bob.user_id)
    if still_valid:
        assert content is not None and content["membership"] == "invite"
        assert content["third_party_invite"]["signed"] == signed
    else:
        assert content is None


async def test_a_synapse_user_redeems_an_email_invite_of_ours(
    nursery, both: Peers, tmp_path
) -> None:
    """With Synapse as the invitee's server: Sydent's /3pid/onbind goes to Synapse, which
    asks us (`exchange_third_party_invite`) for the invite; it arrives and Bob joins.
    Bob binds on Sydent directly (Synapse's own /account/3pid/bind would have to trust the
    test's CA for identity servers)."""
    ca = both.synapse.ca
    with running_sydent(tmp_path / "sydent") as sydent:
        await serve_tls_front(nursery, ca, sydent)
        alice, bob = await both.our_account(), await both.synapse_account()
        address = f"bob-{secrets.token_hex(3)}@example.test"
        room_id = await alice.create_room()
        openid_path = "/user/{}/openid/request_token"
        alice_openid = ok(
            await alice.request("POST", openid_path.format(path_part(alice.user_id)), {})
        )
        invitee = {
            "id_server": sydent.id_server,
            "id_access_token": await id_access_token_for(ca, sydent, alice_openid),
            "medium": "email",
            "address": address,
        }
        ok(await alice.request("POST", f"/rooms/{room_id}/invite", invitee))

        bob_openid = ok(await bob.request("POST", openid_path.format(path_part(bob.user_id)), {}))
        bob_token = await id_access_token_for(ca, sydent, bob_openid)
        session = await validated_session(ca, sydent, bob_token, address)
        async with identity_client(ca, sydent) as client:
            bound = await client.post(
                f"{IDENTITY_API}/3pid/bind",
                json={**session, "mxid": bob.user_id},
                headers={"Authorization": f"Bearer {bob_token}"},
            )
        assert bound.status_code == 200, bound.text

        async def invited() -> dict[str, Any] | None:
            response = await alice.state(room_id, "m.room.member", bob.user_id)
            content = response.json() if response.status_code == 200 else None
            return content if content and content.get("membership") == "invite" else None

        content = await eventually(invited, timeout=60)
        assert content["third_party_invite"]["signed"]["mxid"] == bob.user_id
        ok(await bob.join(room_id))
