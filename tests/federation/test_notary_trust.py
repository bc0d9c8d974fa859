"""Keys through a notary are only believed when both the origin and the notary signed them.

Spec: `content/server-server-api.md` § Querying Keys Through Another Server
("the notary server must sign the keys returned by the queried server"; the
origin's own signature stays on its document). The notary here is a minimal
HTTPS peer that signs as the test says; the origin is one of our servers,
which the fetching side may not reach (its allowlist holds only the notary).
"""

from __future__ import annotations

import pytest
from signedjson.key import generate_signing_key as signing_key_with_version

from matrix_conduit.core.server_keys import own_server_keys
from matrix_conduit.core.signing import generate_signing_key, sign_json
from matrix_conduit.service.clock import now_ms
from tests.support.federation import detached_federation, serve_https, start_federating
from tests.support.service_parts import FakeClock

NOTARY_ADDRESS = "127.0.0.8"
NOTARY_KEY = generate_signing_key()
IMPOSTOR_KEY = signing_key_with_version(NOTARY_KEY.version)
"""Another key under the notary's key id."""


def passed_on(mode: str, document: dict, notary: str) -> dict:
    if mode == "signed by the notary":
        return sign_json(document, notary, NOTARY_KEY)
    if mode == "signed with a key that is not the notary's":
        return sign_json(document, notary, IMPOSTOR_KEY)
    if mode == "not signed by the notary":
        return document
    if mode == "changed after the origin signed it":
        return sign_json(
            {**document, "valid_until_ts": document["valid_until_ts"] + 1}, notary, NOTARY_KEY
        )
    raise AssertionError(mode)


@pytest.mark.parametrize(
    ("mode", "believed"),
    [
        ("signed by the notary", True),
        ("signed with a key that is not the notary's", False),
        ("not signed by the notary", False),
        ("changed after the origin signed it", False),
    ],
)
async def test_keys_from_a_notary_need_the_notarys_and_the_origins_signatures(
    nursery, ca, tmp_path, mode, believed
):
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    b_document = (await b.client.get("/_matrix/key/v2/server")).json()
    notary = ""

    async def fake_notary(method: str, path: str, body: object) -> tuple[int, object]:
        if path == "/_matrix/key/v2/server":
            return 200, own_server_keys(notary, NOTARY_KEY, {}, now_ms() + 3600_000)
        return 200, {"server_keys": [passed_on(mode, b_document, notary)]}

    notary = await serve_https(nursery, ca, NOTARY_ADDRESS, fake_notary)
    clock = FakeClock(now_ms())
    async with detached_federation(
        tmp_path / "c",
        clock,
        trusted_servers=[notary],
        federation_ip_range_allowlist=[f"{NOTARY_ADDRESS}/32"],
    ) as c:
        keys = await c.key_ring.verify_keys_for(b.name, list(b_document["verify_keys"]), clock())

    assert bool(keys) is believed
