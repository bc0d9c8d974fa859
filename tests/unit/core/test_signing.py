"""Signing keys, signed JSON and X-Matrix request authentication.

Spec: `appendices.md` § Signing JSON, § Checking for a Signature and
§ Cryptographic Test Vectors; `server-server-api.md` § Request Authentication.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.core.errors import InvalidAuthorizationHeader, InvalidSigningKey, SignatureError
from matrix_conduit.core.signing import (
    XMatrixAuth,
    build_x_matrix_header,
    decode_base64,
    decode_signing_key,
    decode_verify_key,
    encode_base64,
    encode_signing_key,
    generate_signing_key,
    key_id_of,
    parse_x_matrix_header,
    sign_json,
    sign_request,
    signed_key_ids,
    verify_json,
    verify_key_base64,
    verify_request,
)

# appendices.md § Cryptographic Test Vectors: the seed, server name and key id.
SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SPEC_KEY = decode_signing_key(f"ed25519 1 {SPEC_SEED}")


# --- base64 (appendices.md § Unpadded Base64) -------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
    ],
)
def test_unpadded_base64_matches_the_spec_examples(raw: bytes, encoded: str):
    assert encode_base64(raw) == encoded
    assert decode_base64(encoded) == raw


def test_base64_decoding_accepts_padding_and_the_url_safe_alphabet():
    assert decode_base64("Zg==") == b"f"
    assert decode_base64(encode_base64(b"\xfb\xff", urlsafe=True)) == b"\xfb\xff"
    assert encode_base64(b"\xfb\xff", urlsafe=True) == "-_8"
    assert encode_base64(b"\xfb\xff") == "+/8"


@pytest.mark.parametrize("text", ["Zm9v!", "Zm 9v", "Z", "Zm9vY", "Zg===", None, 5, "Zg=x"])
def test_base64_decoding_refuses_rather_than_skips_foreign_characters(text: object):
    with pytest.raises(ValueError):
        decode_base64(text)


# --- keys -------------------------------------------------------------------


def test_generated_keys_are_ed25519_with_a_random_alphanumeric_version():
    first, second = generate_signing_key(), generate_signing_key()
    assert re.fullmatch(r"ed25519:[A-Za-z0-9]{8}", key_id_of(first))
    assert key_id_of(first) != key_id_of(second)


def test_a_stored_key_reads_back_as_the_same_key():
    key = generate_signing_key()
    stored = encode_signing_key(key)
    assert stored.startswith(f"ed25519 {key.version} ")
    restored = decode_signing_key(stored)
    assert key_id_of(restored) == key_id_of(key)
    assert bytes(restored) == bytes(key)


def test_the_spec_seed_decodes_to_the_spec_key_id():
    assert key_id_of(SPEC_KEY) == "ed25519:1"


def test_the_stored_form_spells_the_seed_canonically():
    # The spec's seed ends in "1": its last two bits are padding, so the same 32 bytes
    # are canonically spelled with "0". Both read as the same key.
    assert encode_signing_key(SPEC_KEY) == f"ed25519 1 {SPEC_SEED[:-1]}0"
    assert bytes(decode_signing_key(encode_signing_key(SPEC_KEY))) == bytes(SPEC_KEY)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ("", "<algorithm> <version>"),
        ("ed25519 1", "<algorithm> <version>"),
        (f"curve25519 1 {SPEC_SEED}", "not ed25519"),
        (f"ed25519 a:b {SPEC_SEED}", "version"),
        ("ed25519 1 Zm9v", "not 32"),
        ("ed25519 1 !!!!", "base64"),
        (None, "<algorithm> <version>"),
    ],
)
def test_malformed_stored_keys_are_refused_with_the_reason(stored: object, reason: str):
    with pytest.raises(InvalidSigningKey, match=reason):
        decode_signing_key(stored)


def test_the_published_verify_key_decodes_back_to_a_working_key():
    published = verify_key_base64(SPEC_KEY)
    assert published == verify_key_base64(SPEC_KEY.verify_key)
    verify_key = decode_verify_key("ed25519:1", published)
    verify_json(sign_json({"a": 1}, "domain", SPEC_KEY), "domain", "ed25519:1", verify_key)


@pytest.mark.parametrize(
    ("key_id", "key_base64"),
    [
        ("curve25519:1", "AAAA"),
        ("ed25519:", "AAAA"),
        ("ed25519:1", "Zm9v"),
        ("ed25519:1", "not base64!"),
        (None, "AAAA"),
    ],
)
def test_unusable_published_keys_are_refused(key_id: object, key_base64: object):
    with pytest.raises(InvalidSigningKey):
        decode_verify_key(key_id, key_base64)


# --- signed JSON: the spec's test vectors -----------------------------------


def test_signing_an_empty_object_gives_the_spec_signature():
    assert sign_json({}, "domain", SPEC_KEY) == {
        "signatures": {
            "domain": {
                "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/"
                "7Xg4ahLwYGYZzuHGZKM5ZAQ"
            }
        }
    }


def test_signing_an_object_with_data_gives_the_spec_signature():
    assert sign_json({"one": 1, "two": "Two"}, "domain", SPEC_KEY) == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/"
                "fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
            }
        },
        "two": "Two",
    }


def test_unsigned_and_existing_signatures_are_kept_but_not_signed():
    original = {
        "one": 1,
        "two": "Two",
        "unsigned": {"age_ts": 922834800000},
        "signatures": {"other.org": {"ed25519:x": "c2ln"}},
    }
    signed = sign_json(original, "domain", SPEC_KEY)
    assert signed["unsigned"] == {"age_ts": 922834800000}
    assert signed["signatures"]["other.org"] == {"ed25519:x": "c2ln"}
    # Same signature as the spec vector: neither `unsigned` nor `signatures` is covered.
    assert signed["signatures"]["domain"]["ed25519:1"].startswith("KqmLSbO39")
    assert "domain" not in original["signatures"], "the input must not be modified"


def test_a_signature_survives_changes_to_unsigned():
    signed = sign_json({"a": 1}, "domain", SPEC_KEY)
    signed["unsigned"] = {"age": 5}
    verify_json(signed, "domain", "ed25519:1", SPEC_KEY.verify_key)


def test_a_second_key_adds_a_second_signature():
    other = generate_signing_key()
    signed = sign_json(sign_json({"a": 1}, "domain", SPEC_KEY), "domain", other)
    assert signed_key_ids(signed, "domain") == sorted(["ed25519:1", key_id_of(other)])


def test_signed_key_ids_skips_unknown_algorithms_and_junk():
    obj = {"signatures": {"s": {"ed25519:a": "x", "curve25519:b": "y", "ed25519:c": "z"}}}
    assert signed_key_ids(obj, "s") == ["ed25519:a", "ed25519:c"]
    assert signed_key_ids(obj, "missing") == []
    assert signed_key_ids({"signatures": "junk"}, "s") == []
    assert signed_key_ids({"signatures": {"s": ["x"]}}, "s") == []


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda o: o.pop("signatures"), "no 'signatures'"),
        (lambda o: o["signatures"].pop("domain"), "not signed by"),
        (lambda o: o["signatures"].__setitem__("domain", "x"), "not signed by"),
        (lambda o: o["signatures"]["domain"].pop("ed25519:1"), "no signature by"),
        (lambda o: o["signatures"]["domain"].__setitem__("ed25519:1", "!!"), "not base64"),
        (lambda o: o["signatures"]["domain"].__setitem__("ed25519:1", "AAAA"), "does not verify"),
        (lambda o: o.__setitem__("one", 2), "does not verify"),
        (lambda o: o.__setitem__("three", 3), "does not verify"),
    ],
)
def test_a_tampered_object_fails_verification_with_the_reason(tamper, reason: str):
    signed = sign_json({"one": 1}, "domain", SPEC_KEY)
    tamper(signed)
    with pytest.raises(SignatureError, match=reason):
        verify_json(signed, "domain", "ed25519:1", SPEC_KEY.verify_key)


def test_another_servers_key_does_not_verify():
    signed = sign_json({"one": 1}, "domain", SPEC_KEY)
    with pytest.raises(SignatureError):
        verify_json(signed, "domain", "ed25519:1", generate_signing_key().verify_key)


json_objects = st.dictionaries(
    st.text(max_size=8).filter(lambda key: key not in ("signatures", "unsigned")),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=10,
    ),
    max_size=5,
)


@settings(deadline=None, max_examples=50)
@given(json_objects)
def test_every_signed_object_verifies(obj: dict):
    verify_json(
        sign_json(obj, "example.org", SPEC_KEY), "example.org", "ed25519:1", SPEC_KEY.verify_key
    )


@settings(deadline=None, max_examples=50)
@given(json_objects, st.text(max_size=8))
def test_every_added_key_breaks_the_signature(obj: dict, extra_key: str):
    signed = sign_json(obj, "example.org", SPEC_KEY)
    if extra_key in ("signatures", "unsigned") or extra_key in obj:
        return
    signed[extra_key] = "added"
    with pytest.raises(SignatureError):
        verify_json(signed, "example.org", "ed25519:1", SPEC_KEY.verify_key)


# --- X-Matrix request authentication ----------------------------------------


def test_the_header_has_the_form_the_spec_example_shows():
    assert (
        build_x_matrix_header(
            "origin.hs.example.com", "destination.hs.example.com", "ed25519:key1", "ABCDEF..."
        )
        == 'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
        'key="ed25519:key1",sig="ABCDEF..."'
    )


def test_a_signed_request_verifies_at_its_destination():
    content = {"pdus": [], "edus": []}
    header = sign_request(
        "PUT", "/_matrix/federation/v1/send/1", "a.org", "b.org", content, SPEC_KEY
    )
    auth = parse_x_matrix_header(header)
    assert auth.origin == "a.org"
    assert auth.destination == "b.org"
    assert auth.key_id == "ed25519:1"
    verify_request(
        auth, "PUT", "/_matrix/federation/v1/send/1", "b.org", content, SPEC_KEY.verify_key
    )


def test_the_request_signature_covers_the_spec_json():
    header = sign_request("GET", "/_matrix/key/v2/server?x=1", "a.org", "b.org", None, SPEC_KEY)
    expected = sign_json(
        {
            "method": "GET",
            "uri": "/_matrix/key/v2/server?x=1",
            "origin": "a.org",
            "destination": "b.org",
        },
        "a.org",
        SPEC_KEY,
    )
    assert parse_x_matrix_header(header).signature == expected["signatures"]["a.org"]["ed25519:1"]


@pytest.mark.parametrize(
    ("method", "uri", "content", "server_name"),
    [
        ("POST", "/_matrix/federation/v1/send/1", {"pdus": []}, "b.org"),
        ("PUT", "/_matrix/federation/v1/send/2", {"pdus": []}, "b.org"),
        ("PUT", "/_matrix/federation/v1/send/1", {"pdus": [1]}, "b.org"),
        ("PUT", "/_matrix/federation/v1/send/1", None, "b.org"),
        ("PUT", "/_matrix/federation/v1/send/1", {"pdus": []}, "c.org"),
    ],
)
def test_a_request_changed_in_any_signed_part_fails(method, uri, content, server_name):
    header = sign_request(
        "PUT", "/_matrix/federation/v1/send/1", "a.org", "b.org", {"pdus": []}, SPEC_KEY
    )
    with pytest.raises(SignatureError):
        verify_request(
            parse_x_matrix_header(header), method, uri, server_name, content, SPEC_KEY.verify_key
        )


def test_a_header_without_destination_is_checked_against_our_own_name():
    signature = parse_x_matrix_header(
        sign_request("GET", "/x", "a.org", "b.org", None, SPEC_KEY)
    ).signature
    auth = parse_x_matrix_header(f'X-Matrix origin=a.org,key="ed25519:1",sig="{signature}"')
    assert auth.destination is None
    verify_request(auth, "GET", "/x", "b.org", None, SPEC_KEY.verify_key)
    with pytest.raises(SignatureError):
        verify_request(auth, "GET", "/x", "c.org", None, SPEC_KEY.verify_key)


def test_a_header_for_another_destination_is_refused():
    auth = XMatrixAuth("a.org", "elsewhere.org", "ed25519:1", "AAAA")
    with pytest.raises(SignatureError, match="addressed to"):
        verify_request(auth, "GET", "/x", "b.org", None, SPEC_KEY.verify_key)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'X-Matrix origin="a.org",destination="b.org",key="ed25519:1",sig="c2ln"',
            XMatrixAuth("a.org", "b.org", "ed25519:1", "c2ln"),
        ),
        (
            "x-matrix origin=a.org,key=ed25519:1,sig=c2ln",
            XMatrixAuth("a.org", None, "ed25519:1", "c2ln"),
        ),
        (
            'X-MATRIX   ORIGIN="a.org" ,\t Key="ed25519:1"\t,  SIG="c2ln"',
            XMatrixAuth("a.org", None, "ed25519:1", "c2ln"),
        ),
        (
            'X-Matrix sig="c2ln",key="ed25519:1",destination=b.org:8448,origin="a.org"',
            XMatrixAuth("a.org", "b.org:8448", "ed25519:1", "c2ln"),
        ),
        (
            'X-Matrix origin="[::1]:8448",key="ed25519:1",sig="c2ln"',
            XMatrixAuth("[::1]:8448", None, "ed25519:1", "c2ln"),
        ),
        (
            r'X-Matrix origin="a\.org",key="ed25519:\1",sig="c\"2\\ln"',
            XMatrixAuth("a.org", None, "ed25519:1", 'c"2\\ln'),
        ),
        (
            'X-Matrix origin="a.org",unknown="ignored, really",key="ed25519:1",sig="c2ln",',
            XMatrixAuth("a.org", None, "ed25519:1", "c2ln"),
        ),
    ],
)
def test_headers_parse_by_the_spec_rules(header: str, expected: XMatrixAuth):
    assert parse_x_matrix_header(header) == expected


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ('Bearer origin="a.org",key="ed25519:1",sig="c2ln"', "not 'X-Matrix"),
        ('X-Matrixorigin="a.org",key="ed25519:1",sig="c2ln"', "not 'X-Matrix"),
        ('X-Matrix key="ed25519:1",sig="c2ln"', "lacks origin"),
        ('X-Matrix origin="a.org",sig="c2ln"', "lacks key"),
        ('X-Matrix origin="a.org",key="ed25519:1"', "lacks sig"),
        ('X-Matrix origin="a.org",origin="b.org",key="k",sig="s"', "twice"),
        ('X-Matrix origin="a.org" key="ed25519:1",sig="c2ln"', "expected ','"),
        ('X-Matrix origin="a.org,key="ed25519:1",sig="c2ln"', "expected ','"),
        ('X-Matrix origin=[::1],key="ed25519:1",sig="c2ln"', "bad value"),
        ('X-Matrix origin,key="ed25519:1",sig="c2ln"', "name=value"),
        ('X-Matrix origin="a.org/x",key="ed25519:1",sig="c2ln"', "origin"),
        ('X-Matrix origin="a.org",destination="",key="k",sig="s"', "destination"),
        ('X-Matrix origin="a.org\r\nX: y",key="k",sig="s"', "bad value"),
        ("X-Matrix " + "a" * 10000, "Authorization header"),
        (None, "Authorization header"),
        (b"X-Matrix origin=a", "Authorization header"),
    ],
)
def test_malformed_headers_are_refused_with_the_reason(header: object, reason: str):
    with pytest.raises(InvalidAuthorizationHeader, match=reason):
        parse_x_matrix_header(header)


def test_a_value_that_cannot_travel_in_a_header_is_refused_when_building():
    with pytest.raises(ValueError):
        build_x_matrix_header("a.org", "b.org\r\nInjected: yes", "ed25519:1", "sig")


server_names = st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,20}(:[1-9][0-9]{0,3})?", fullmatch=True)
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40
)


@settings(deadline=None)
@given(server_names, server_names, header_text, header_text)
def test_every_built_header_parses_back_to_its_parts(origin, destination, key_id, signature):
    header = build_x_matrix_header(origin, destination, key_id, signature)
    assert parse_x_matrix_header(header) == XMatrixAuth(origin, destination, key_id, signature)
