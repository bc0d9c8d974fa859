"""Server keys between two (and three) of our servers over real TLS.

Spec: `content/server-server-api.md` § Retrieving server keys (Publishing
Keys: `GET /_matrix/key/v2/server`; Querying Keys Through Another Server:
`GET`/`POST /_matrix/key/v2/query`), `data/api/server-server/keys_server.yaml`
and `keys_query.yaml`.
"""

from __future__ import annotations

from matrix_conduit.core.server_keys import parse_server_keys
from matrix_conduit.core.signing import sign_json, verify_json
from matrix_conduit.service.clock import now_ms
from tests.support.federation import free_port_on, restart, start_federating

DAY_MS = 24 * 3600 * 1000


async def test_server_keys_are_self_signed_and_valid_for_a_while(nursery, ca, tmp_path):
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")

    response = await b.client.get("/_matrix/key/v2/server")

    assert response.status_code == 200
    document = response.json()
    keys = parse_server_keys(document, b.name)  # checks the self-signature
    assert [key.key_id for key in keys] == [b.server.services.globals.signing_key_id]
    assert document["valid_until_ts"] > now_ms()
    assert document["old_verify_keys"] == {}


async def test_a_rotated_key_stays_published_as_an_old_key_across_a_restart(nursery, ca, tmp_path):
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    old_key_id = b.server.services.globals.signing_key_id
    b.server.services.globals.rotate_signing_key(now_ms())
    await b.stop()
    b = await restart(nursery, b)

    document = (await b.client.get("/_matrix/key/v2/server")).json()

    new_key_id = b.server.services.globals.signing_key_id
    assert new_key_id != old_key_id
    assert set(document["verify_keys"]) == {new_key_id}
    assert set(document["old_verify_keys"]) == {old_key_id}
    assert document["old_verify_keys"][old_key_id]["expired_ts"] <= now_ms()
    assert document["signatures"][b.name].keys() == {new_key_id}
    parse_server_keys(document, b.name)


async def test_a_server_fetches_another_servers_keys_directly(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    b_key_id = b.server.services.globals.signing_key_id
    signed_by_b = sign_json({"hello": "a"}, b.name, b.server.services.globals.signing_key)

    keys = await a.federation.key_ring.verify_keys_for(b.name, [b_key_id], now_ms())
    await a.federation.key_ring.verify_signed_json(signed_by_b, b.name, now_ms())

    assert list(keys) == [b_key_id]
    verify_json(signed_by_b, b.name, b_key_id, keys[b_key_id])
    assert a.federation.key_ring.cached_documents(b.name)[0]["server_name"] == b.name


async def test_a_notary_answers_with_the_origins_document_and_its_own_signature(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    b_key_id = b.server.services.globals.signing_key_id
    a_key_id = a.server.services.globals.signing_key_id

    by_get = await a.client.get(f"/_matrix/key/v2/query/{b.name}")
    by_post = await a.client.post(
        "/_matrix/key/v2/query",
        json={
            "server_keys": {
                b.name: {b_key_id: {"minimum_valid_until_ts": now_ms() + 3600_000}},
                a.name: {},
            }
        },
    )

    assert by_get.status_code == by_post.status_code == 200
    (document,) = by_get.json()["server_keys"]
    assert set(document["verify_keys"]) == {b_key_id}
    assert set(document["signatures"]) == {a.name, b.name}
    parse_server_keys(document, b.name)
    a_key = a.server.services.globals.signing_key.verify_key
    verify_json(document, a.name, a_key_id, a_key)
    assert sorted(d["server_name"] for d in by_post.json()["server_keys"]) == sorted(
        [a.name, b.name]
    )


async def test_a_server_that_cannot_reach_the_origin_gets_its_keys_through_a_notary(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    # C may connect to A only (127.0.0.2/32), so B's keys must come through notary A.
    c = await start_federating(
        nursery,
        ca,
        tmp_path / "c",
        "127.0.0.4",
        trusted_servers=[a.name],
        federation_ip_range_allowlist=["127.0.0.2/32"],
    )
    b_key_id = b.server.services.globals.signing_key_id
    signed_by_b = sign_json({"via": "notary"}, b.name, b.server.services.globals.signing_key)

    keys = await c.federation.key_ring.verify_keys_for(b.name, [b_key_id], now_ms())
    await c.federation.key_ring.verify_signed_json(signed_by_b, b.name, now_ms())

    assert list(keys) == [b_key_id]
    stored = c.federation.key_ring.cached_documents(b.name)[0]
    assert set(stored["signatures"]) == {b.name}, "the notary's signature is not kept"
    assert a.federation.key_ring.cached_documents(b.name), "A fetched B's keys for C"


async def test_a_key_is_not_good_for_signatures_after_its_validity(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    b = await start_federating(nursery, ca, tmp_path / "b", "127.0.0.3")
    b_key_id = b.server.services.globals.signing_key_id

    now = await a.federation.key_ring.verify_keys_for(b.name, [b_key_id], now_ms())
    in_a_week = await a.federation.key_ring.verify_keys_for(
        b.name, [b_key_id], now_ms() + 7 * DAY_MS
    )

    assert list(now) == [b_key_id]
    assert in_a_week == {}


async def test_a_notary_query_for_an_unreachable_server_answers_an_empty_list(
    nursery, ca, tmp_path
):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")
    nobody = f"127.0.0.6:{free_port_on('127.0.0.6')}"

    response = await a.client.get(f"/_matrix/key/v2/query/{nobody}")

    assert response.status_code == 200
    assert response.json() == {"server_keys": []}


MALFORMED_QUERIES = [
    ({}, "M_BAD_JSON"),
    ({"server_keys": []}, "M_BAD_JSON"),
    ({"server_keys": {"a.example": []}}, "M_BAD_JSON"),
    ({"server_keys": {"a.example": {"ed25519:x": 1}}}, "M_BAD_JSON"),
    ({"server_keys": {"a.example": {"ed25519:x": {"minimum_valid_until_ts": "1"}}}}, "M_BAD_JSON"),
    ({"server_keys": {"not a server": {}}}, "M_INVALID_PARAM"),
    ({"server_keys": {f"s{n}.example": {} for n in range(101)}}, "M_INVALID_PARAM"),
]


async def test_a_malformed_notary_query_is_400(nursery, ca, tmp_path):
    a = await start_federating(nursery, ca, tmp_path / "a", "127.0.0.2")

    answers = [
        (response.status_code, response.json()["errcode"])
        for response in [
            await a.client.post("/_matrix/key/v2/query", json=body) for body, _ in MALFORMED_QUERIES
        ]
    ]
    bad_minimum = await a.client.get("/_matrix/key/v2/query/a.example?minimum_valid_until_ts=x")

    assert answers == [(400, errcode) for _, errcode in MALFORMED_QUERIES]
    assert (bad_minimum.status_code, bad_minimum.json()["errcode"]) == (400, "M_INVALID_PARAM")
