"""Rate limits over HTTP: each limited action answers 429 once its bucket is empty.

Spec: `content/client-server-api/_index.md`, "Rate limiting" (429
`M_LIMIT_EXCEEDED` with `retry_after_ms`) and RFC 9110 § 10.2.3
(`Retry-After`). The refill rates here are so slow (one token in ~17 minutes)
that no test depends on time: each bucket holds `burst_count` actions and
the next one is refused.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from tests.support.accounts import CLIENT_API, PASSWORD, log_in
from tests.support.matrix import User, assert_error, ok, register
from tests.support.server import TestServer, make_config, serving

SLOW = 0.001
"""Tokens per second: none comes back while a test runs."""


def limits(**bursts: int) -> dict[str, Any]:
    """A `[global.rate_limits]` table: the named limits hold `burst` actions, refill slowly."""
    table: dict[str, Any] = {"enabled": True}
    for name, burst in bursts.items():
        table[name] = {"per_second": SLOW, "burst_count": burst}
    return table


def limited_server(nursery: trio.Nursery, tmp_path, **config: Any) -> Any:
    """A server with open registration and these config keys (a `serving` block)."""
    return serving(nursery, make_config(tmp_path / "db", allow_registration=True, **config))


async def member(server: TestServer, password: str | None = None) -> User:
    """A new user who is not a server admin (the first account made is one)."""
    user = await register(server, password=password)
    server.services.users.set_admin(user.user_id, False)
    return user


def assert_limited(response: httpx.Response) -> None:
    """429 M_LIMIT_EXCEEDED with a positive integer `retry_after_ms` and `Retry-After`."""
    body = assert_error(response, 429, "M_LIMIT_EXCEEDED")
    assert isinstance(body["retry_after_ms"], int) and body["retry_after_ms"] > 0, body
    assert int(response.headers["Retry-After"]) >= 1
    assert int(response.headers["Retry-After"]) * 1000 >= body["retry_after_ms"]


async def send_text(user: User, room_id: str) -> httpx.Response:
    return await user.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})


async def test_messages_beyond_the_burst_are_refused_per_user(nursery, tmp_path) -> None:
    """rc_message: each user has their own bucket; the fourth message of a burst of 3 is 429."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(message=3)) as server:
        alice, bob = await member(server), await member(server)
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id)
        for _ in range(3):
            ok(await send_text(alice, room_id))
        assert_limited(await send_text(alice, room_id))
        ok(await send_text(bob, room_id))


async def test_admins_are_exempt_unless_configured_otherwise(nursery, tmp_path) -> None:
    """Server admins are not limited (`exempt_admins = true`, the default); `false` limits them."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(message=1)) as server:
        admin = await member(server)
        server.services.users.set_admin(admin.user_id, True)
        room_id = await admin.create_room()
        for _ in range(3):
            ok(await send_text(admin, room_id))
    table = {**limits(message=1), "exempt_admins": False}
    async with limited_server(nursery, tmp_path / "2", rate_limits=table) as server:
        admin = await member(server)
        server.services.users.set_admin(admin.user_id, True)
        room_id = await admin.create_room()
        ok(await send_text(admin, room_id))
        assert_limited(await send_text(admin, room_id))


APPSERVICE = """
id: {id}
url: null
as_token: as-{id}
hs_token: hs-{id}
sender_localpart: {id}bot
rate_limited: {rate_limited}
namespaces:
  users: []
  aliases: []
  rooms: []
"""


@pytest.mark.parametrize("rate_limited", [False, True])
async def test_an_appservice_is_limited_unless_its_registration_says_not(
    nursery, tmp_path, rate_limited: bool
) -> None:
    """application-service-api.md, Registration: `rate_limited: false` exempts its users."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(message=1)) as server:
        name = "bridge"
        server.services.appservices.register(
            APPSERVICE.format(id=name, rate_limited=str(rate_limited).lower())
        )
        bot = User(f"@{name}bot:localhost", "", f"as-{name}", server.client, "localhost")
        room_id = await bot.create_room()
        ok(await send_text(bot, room_id))
        second = await send_text(bot, room_id)
        if rate_limited:
            assert_limited(second)
        else:
            ok(second)


async def register_request(
    client: httpx.AsyncClient, username: str, *, complete: bool = True, **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"username": username, "password": PASSWORD}
    if complete:
        body["auth"] = {"type": "m.login.dummy"}
    return await client.post(f"{CLIENT_API}/register", json=body, headers=headers)


async def test_registration_is_limited_per_address_counting_accounts_made(
    nursery, tmp_path
) -> None:
    """rc_registration: UIA's first round trips cost nothing; the third account is 429."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(registration=2)) as server:
        for _ in range(3):
            assert (await register_request(server.client, "x", complete=False)).status_code == 401
        ok(await register_request(server.client, "one"))
        ok(await register_request(server.client, "two"))
        assert_limited(await register_request(server.client, "three"))


async def test_login_is_limited_per_address(nursery, tmp_path) -> None:
    """rc_login.address: every attempt from one address counts, whatever the account."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(login_address=2)) as server:
        alice, bob = await member(server, PASSWORD), await member(server)
        ok(await log_in(server.client, alice.localpart))
        assert (await log_in(server.client, bob.localpart, "wrong")).status_code == 403
        assert_limited(await log_in(server.client, alice.localpart))


async def test_login_is_limited_per_account(nursery, tmp_path) -> None:
    """rc_login.account: one account's logins are bounded; another account's are not."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(login_account=2)) as server:
        alice = await member(server, PASSWORD)
        bob = await member(server, PASSWORD)
        ok(await log_in(server.client, alice.localpart))
        ok(await log_in(server.client, alice.localpart))
        assert_limited(await log_in(server.client, alice.localpart))
        ok(await log_in(server.client, bob.localpart))


async def test_failed_logins_lock_the_account_even_with_the_right_password(
    nursery, tmp_path
) -> None:
    """rc_login.failed_attempts: after 2 wrong passwords the account refuses the right one too."""
    async with limited_server(
        nursery, tmp_path, rate_limits=limits(login_failed_attempts=2)
    ) as server:
        alice = await member(server, PASSWORD)
        ok(await log_in(server.client, alice.localpart))
        for _ in range(2):
            assert_error(await log_in(server.client, alice.localpart, "wrong"), 403, "M_FORBIDDEN")
        assert_limited(await log_in(server.client, alice.localpart))


async def test_local_joins_are_limited_per_user(nursery, tmp_path) -> None:
    """rc_joins.local: joins of rooms this server is in already."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(joins_local=1)) as server:
        alice, bob = await member(server), await member(server)
        first = await alice.create_room(preset="public_chat")
        second = await alice.create_room(preset="public_chat")
        ok(await bob.post(f"/join/{first}"))
        assert_limited(await bob.post(f"/join/{second}"))
        assert_limited(await bob.post(f"/rooms/{second}/join"))


async def test_invites_are_limited_per_inviter_and_per_invitee(nursery, tmp_path) -> None:
    """rc_invites.per_issuer and per_user: invites sent by one user, and received by one."""
    table = limits(invites_per_issuer=2, invites_per_user=1)
    async with limited_server(nursery, tmp_path, rate_limits=table) as server:
        alice, bob, carol, dan = [await member(server) for _ in range(4)]
        room_id = await alice.create_room()
        other_room = await bob.create_room()
        ok(await alice.membership_action(room_id, "invite", carol))
        assert_limited(await bob.membership_action(other_room, "invite", carol))
        ok(await alice.membership_action(room_id, "invite", dan))
        assert_limited(await alice.membership_action(room_id, "invite", bob))


async def test_media_uploads_are_limited_per_user(nursery, tmp_path) -> None:
    """rc_media_create: `/upload`, `/create` and `PUT /upload` share one bucket."""
    async with limited_server(nursery, tmp_path, rate_limits=limits(media_create=2)) as server:
        alice = await member(server)
        headers = {"Authorization": f"Bearer {alice.access_token}", "Content-Type": "text/plain"}
        upload = "/_matrix/media/v3/upload"
        ok(await server.client.post(upload, content=b"one", headers=headers))
        ok(await server.client.post("/_matrix/media/v1/create", headers=headers))
        assert_limited(await server.client.post(upload, content=b"three", headers=headers))


async def test_threepid_token_requests_are_limited_per_address(nursery, tmp_path) -> None:
    """rc_3pid_validation: `requestToken` endpoints answer as before until the bucket is empty."""
    table = limits(threepid_validation=2)
    async with limited_server(nursery, tmp_path, rate_limits=table) as server:
        body = {"client_secret": "secret", "email": "a@example.org", "send_attempt": 1}
        path = f"{CLIENT_API}/register/email/requestToken"
        assert_error(await server.client.post(path, json=body), 403, "M_THREEPID_DENIED")
        other = f"{CLIENT_API}/account/password/email/requestToken"
        assert_error(await server.client.post(other, json=body), 400, "M_THREEPID_NOT_FOUND")
        assert_limited(await server.client.post(path, json=body))


async def test_disabled_limits_refuse_nothing(nursery, tmp_path) -> None:
    """`enabled = false` turns every limit off, even a burst of 1."""
    table = {**limits(message=1, login_address=1), "enabled": False}
    async with limited_server(nursery, tmp_path, rate_limits=table) as server:
        alice = await member(server, PASSWORD)
        room_id = await alice.create_room()
        for _ in range(3):
            ok(await send_text(alice, room_id))
            ok(await log_in(server.client, alice.localpart))


async def login_from(server: TestServer, user: User, forwarded_for: str) -> httpx.Response:
    return await server.client.post(
        f"{CLIENT_API}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.localpart},
            "password": PASSWORD,
        },
        headers={"X-Forwarded-For": forwarded_for},
    )


async def test_x_forwarded_for_names_the_client_behind_a_trusted_proxy(nursery, tmp_path) -> None:
    """Behind a proxy in `trusted_proxies`, each forwarded client has its own bucket;
    what the client wrote left of the proxy's entry is not believed."""
    async with limited_server(
        nursery,
        tmp_path,
        rate_limits=limits(login_address=1),
        trusted_proxies=["127.0.0.0/8"],
    ) as server:
        alice = await member(server, PASSWORD)
        ok(await login_from(server, alice, "203.0.113.5"))
        ok(await login_from(server, alice, "203.0.113.6"))
        assert_limited(await login_from(server, alice, "203.0.113.5"))
        # A client that forges an entry is still known by the address the proxy added.
        assert_limited(await login_from(server, alice, "198.51.100.1, 203.0.113.6"))


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(nursery, tmp_path) -> None:
    """A peer not in `trusted_proxies` is the client, whatever X-Forwarded-For it sends."""
    async with limited_server(
        nursery,
        tmp_path,
        rate_limits=limits(login_address=1),
        trusted_proxies=["10.0.0.0/8"],
    ) as server:
        alice = await member(server, PASSWORD)
        ok(await login_from(server, alice, "203.0.113.5"))
        assert_limited(await login_from(server, alice, "203.0.113.6"))
