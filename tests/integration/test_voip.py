"""`GET /voip/turnServer`: TURN credentials, checked the way coturn checks them.

Spec: `content/client-server-api/modules/voip.md`, `data/api/client-server/voip.yaml`;
coturn's REST API (`use-auth-secret`): username `<expiry>:<user>`, password
base64(HMAC-SHA1(secret, username)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from tests.support.matrix import ok, register
from tests.support.server import TestServer, make_config, serving

URIS = ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]


def coturn_accepts(secret: str, username: str, password: str) -> bool:
    """coturn's check of REST API credentials: the HMAC, and an expiry in the future."""
    expected = base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()
    expiry = int(username.split(":", 1)[0])
    return hmac.compare_digest(expected, password) and expiry > time.time()


async def test_shared_secret_credentials_pass_coturns_check(nursery, tmp_path):
    config = make_config(tmp_path / "db", turn_uris=URIS, turn_secret="s3cret", turn_ttl=600)
    async with serving(nursery, config) as server:
        alice = await register(server)
        answer = ok(await alice.get("/voip/turnServer"))
    assert answer["uris"] == URIS
    assert answer["ttl"] == 600
    assert answer["username"].endswith(":" + alice.user_id)
    assert coturn_accepts("s3cret", answer["username"], answer["password"])
    assert not coturn_accepts("other secret", answer["username"], answer["password"])


async def test_table_form_of_the_turn_settings_is_used(nursery, tmp_path):
    config = make_config(tmp_path / "db", turn={"uris": URIS, "secret": "t", "ttl": 60})
    async with serving(nursery, config) as server:
        alice = await register(server)
        answer = ok(await alice.get("/voip/turnServer"))
    assert answer["ttl"] == 60 and coturn_accepts("t", answer["username"], answer["password"])


async def test_static_credentials_are_handed_out_as_configured(nursery, tmp_path):
    config = make_config(
        tmp_path / "db", turn_uris=URIS, turn_username="static", turn_password="pw"
    )
    async with serving(nursery, config) as server:
        alice = await register(server)
        answer = ok(await alice.get("/voip/turnServer"))
    assert (answer["username"], answer["password"]) == ("static", "pw")


async def test_no_turn_configured_answers_an_empty_object(server: TestServer):
    alice = await register(server)
    assert ok(await alice.get("/voip/turnServer")) == {}
