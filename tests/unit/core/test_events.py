"""PDU hashes, ids, signatures, size limits and format.

Spec: `server-server-api.md` § Signing Events (content hash, reference hash,
adding and validating hashes and signatures) and § Checks performed on receipt
of a PDU; `appendices.md` § Cryptographic Test Vectors (Event Signing); the
event id fragments `v1-event-ids.md`, `v4-event-ids.md` and `rooms/v3.md`;
`rooms/v12.md` (room ids); `client-server-api` § Size limits; the formats
`data/api/server-server/definitions/pdu_v*.yaml`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.core.canonical_json import encode_canonical_json
from matrix_conduit.core.errors import EventTooLarge, InvalidEvent, SignatureError
from matrix_conduit.core.events import (
    MAX_PDU_BYTES,
    check_content_hash,
    check_event_size,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    event_id_of_reference_form,
    reference_form,
    required_signature_servers,
    room_id_for_create_event,
    sign_event,
    sign_event_with_id,
    validate_pdu_format,
    verify_event_signatures,
)
from matrix_conduit.core.redaction import redact
from matrix_conduit.core.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from matrix_conduit.core.signing import decode_signing_key, generate_signing_key, key_id_of

SPEC_KEY = decode_signing_key("ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")


def room_version(number: int) -> RoomVersion:
    return KNOWN_ROOM_VERSIONS[str(number)]


# --- appendices.md § Event Signing: the spec's test vectors ------------------

SPEC_MINIMAL_EVENT = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}
SPEC_MINIMAL_EVENT_SIGNED = {
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5K"
            "LjAWbOoMszkwsQma+lYAg"
        }
    },
    "type": "X",
    "unsigned": {"age_ts": 1000000},
}
SPEC_REDACTABLE_EVENT = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {"age_ts": 1000000},
}
SPEC_REDACTABLE_EVENT_SIGNED = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn24"
            "1eYHYMGCA5McEiVPdhzBA"
        }
    },
    "unsigned": {"age_ts": 1000000},
}

# The vectors predate room version 11, which stops protecting the top-level `origin`.
VERSIONS_WHERE_ORIGIN_IS_SIGNED = range(1, 11)


@pytest.mark.parametrize("version", VERSIONS_WHERE_ORIGIN_IS_SIGNED)
def test_signing_the_minimal_event_gives_the_spec_output(version: int):
    assert sign_event(SPEC_MINIMAL_EVENT, "domain", SPEC_KEY, room_version(version)) == (
        SPEC_MINIMAL_EVENT_SIGNED
    )


@pytest.mark.parametrize("version", VERSIONS_WHERE_ORIGIN_IS_SIGNED)
def test_signing_the_redactable_event_gives_the_spec_output(version: int):
    assert sign_event(SPEC_REDACTABLE_EVENT, "domain", SPEC_KEY, room_version(version)) == (
        SPEC_REDACTABLE_EVENT_SIGNED
    )


@pytest.mark.parametrize("version", [11, 12])
def test_from_room_version_11_origin_is_outside_the_signature(version: int):
    signed = sign_event(SPEC_MINIMAL_EVENT, "domain", SPEC_KEY, room_version(version))
    assert signed["hashes"] == SPEC_MINIMAL_EVENT_SIGNED["hashes"]
    assert signed["signatures"] != SPEC_MINIMAL_EVENT_SIGNED["signatures"]
    signed["origin"] = "somewhere.else"
    verify_event_signatures(
        signed, room_version(version), {"domain": {"ed25519:1": SPEC_KEY.verify_key}}
    )


def test_the_content_hash_of_the_spec_events():
    assert compute_content_hash(SPEC_MINIMAL_EVENT) == "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
    assert (
        compute_content_hash(SPEC_REDACTABLE_EVENT) == "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
    )


def test_the_content_hash_ignores_unsigned_signatures_and_hashes():
    changed = {
        **SPEC_MINIMAL_EVENT,
        "unsigned": {"age": 1},
        "signatures": {"x": {"ed25519:y": "z"}},
        "hashes": {"sha256": "other"},
    }
    assert compute_content_hash(changed) == compute_content_hash(SPEC_MINIMAL_EVENT)


def test_sign_event_leaves_its_input_alone_and_keeps_other_signatures():
    event = {**SPEC_MINIMAL_EVENT, "signatures": {"other.org": {"ed25519:a": "sig"}}}
    original = copy.deepcopy(event)
    signed = sign_event(event, "domain", SPEC_KEY, room_version(10))
    assert event == original
    assert signed["signatures"]["other.org"] == {"ed25519:a": "sig"}
    assert signed["signatures"]["domain"] == SPEC_MINIMAL_EVENT_SIGNED["signatures"]["domain"]


# --- content hash checks ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "matches"),
    [
        ({}, True),
        ({"unsigned": {"age": 99}}, True),
        ({"hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos="}}, True),
        ({"content": {"tampered": True}}, False),
        ({"depth": 4}, False),
        ({"hashes": {}}, False),
        ({"hashes": {"sha256": 5}}, False),
        ({"hashes": {"sha256": "not base64!"}}, False),
        ({"hashes": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"}, False),
    ],
)
def test_the_content_hash_check(change: dict, matches: bool):
    assert check_content_hash({**SPEC_MINIMAL_EVENT_SIGNED, **change}) is matches


def test_an_event_without_hashes_fails_the_content_hash_check():
    event = dict(SPEC_MINIMAL_EVENT_SIGNED)
    del event["hashes"]
    assert not check_content_hash(event)


# --- reference hashes and ids -------------------------------------------------

EVENT_V3_PLUS = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin_server_ts": 1000000,
    "hashes": {"sha256": "abc"},
    "signatures": {"domain": {"ed25519:1": "ignored"}},
    "unsigned": {"age": 1},
    "type": "X",
    "content": {"body": "redacted away"},
    "prev_events": [],
    "auth_events": [],
    "depth": 1,
}
# What the reference hash covers, written out by hand: redacted, without
# signatures and unsigned, as Canonical JSON.
EVENT_V3_PLUS_REFERENCE_BYTES = (
    b'{"auth_events":[],"content":{},"depth":1,"hashes":{"sha256":"abc"},'
    b'"origin_server_ts":1000000,"prev_events":[],"room_id":"!x:domain",'
    b'"sender":"@a:domain","type":"X"}'
)


@pytest.mark.parametrize("version", range(3, 13))
def test_the_reference_hash_covers_the_redacted_event_without_signatures(version: int):
    expected = hashlib.sha256(EVENT_V3_PLUS_REFERENCE_BYTES).digest()
    assert compute_reference_hash(EVENT_V3_PLUS, room_version(version)) == expected


def test_room_version_3_ids_use_standard_base64():
    digest = hashlib.sha256(EVENT_V3_PLUS_REFERENCE_BYTES).digest()
    expected = "$" + base64.b64encode(digest).decode().rstrip("=")
    assert expected == "$7ey4DGZKw7LCsru+jL/kGkSr210BX0jg/jvNUdRRwsg"
    assert compute_event_id(EVENT_V3_PLUS, room_version(3)) == expected


@pytest.mark.parametrize("version", range(4, 13))
def test_room_version_4_and_later_ids_use_url_safe_base64(version: int):
    assert compute_event_id(EVENT_V3_PLUS, room_version(version)) == (
        "$7ey4DGZKw7LCsru-jL_kGkSr210BX0jg_jvNUdRRwsg"
    )


@pytest.mark.parametrize("version", range(3, 13))
def test_the_event_id_survives_redaction_and_changes_to_unsigned(version: int):
    event_id = compute_event_id(EVENT_V3_PLUS, room_version(version))
    redacted = redact(EVENT_V3_PLUS, room_version(version))
    assert compute_event_id(redacted, room_version(version)) == event_id
    assert (
        compute_event_id({**EVENT_V3_PLUS, "unsigned": {"x": 1}}, room_version(version)) == event_id
    )


@pytest.mark.parametrize("version", [1, 2])
def test_rooms_v1_and_v2_carry_their_event_id(version: int):
    event = {**EVENT_V3_PLUS, "event_id": "$abc:domain"}
    assert compute_event_id(event, room_version(version)) == "$abc:domain"
    with pytest.raises(InvalidEvent) as raised:
        compute_event_id(EVENT_V3_PLUS, room_version(version))
    assert raised.value.key == "event_id"


def test_a_v12_room_id_is_the_create_event_id_with_a_bang():
    create = {
        "sender": "@a:domain",
        "origin_server_ts": 1000000,
        "hashes": {"sha256": "abc"},
        "signatures": {},
        "type": "m.room.create",
        "state_key": "",
        "content": {"room_version": "12"},
        "prev_events": [],
        "auth_events": [],
        "depth": 1,
    }
    room_id = room_id_for_create_event(create, room_version(12))
    assert room_id == "!" + compute_event_id(create, room_version(12))[1:]
    digest = hashlib.sha256(
        b'{"auth_events":[],"content":{"room_version":"12"},"depth":1,"hashes":{"sha256":"abc"},'
        b'"origin_server_ts":1000000,"prev_events":[],"sender":"@a:domain","state_key":"",'
        b'"type":"m.room.create"}'
    ).digest()
    assert room_id == "!" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.mark.parametrize("version", range(1, 12))
def test_room_ids_before_v12_are_not_derived_from_the_create_event(version: int):
    with pytest.raises(ValueError):
        room_id_for_create_event(EVENT_V3_PLUS, room_version(version))


# --- signatures on received events --------------------------------------------


def signed_pdu(version: int, key=SPEC_KEY, server_name: str = "domain", **changes: Any) -> dict:
    event = {**EVENT_V3_PLUS, "signatures": {}, **changes}
    if version <= 2:
        event.setdefault("event_id", "$abc:domain")
    return sign_event(event, server_name, key, room_version(version))


KNOWN = {"domain": {"ed25519:1": SPEC_KEY.verify_key}}


@pytest.mark.parametrize("version", range(1, 13))
def test_a_signed_event_verifies_in_full_and_redacted(version: int):
    event = signed_pdu(version)
    verify_event_signatures(event, room_version(version), KNOWN)
    verify_event_signatures(redact(event, room_version(version)), room_version(version), KNOWN)


@pytest.mark.parametrize("version", range(1, 13))
def test_changed_content_breaks_the_hash_but_not_the_signature(version: int):
    event = signed_pdu(version)
    event["content"] = {"body": "changed in transit"}
    verify_event_signatures(event, room_version(version), KNOWN)
    assert not check_content_hash(event)


@pytest.mark.parametrize("version", range(1, 13))
def test_a_changed_protected_key_breaks_the_signature(version: int):
    event = signed_pdu(version)
    event["type"] = "Y"
    with pytest.raises(SignatureError, match="does not verify"):
        verify_event_signatures(event, room_version(version), KNOWN)


def test_an_event_signed_only_by_unknown_keys_fails():
    event = signed_pdu(10, key=generate_signing_key())
    with pytest.raises(SignatureError, match="no signature from 'domain' by a known key"):
        verify_event_signatures(event, room_version(10), KNOWN)


def test_signatures_by_unknown_keys_are_skipped():
    event = signed_pdu(10)
    event["signatures"]["domain"]["ed25519:unknown"] = "garbage"
    event["signatures"]["elsewhere.org"] = {"ed25519:1": "garbage"}
    verify_event_signatures(event, room_version(10), KNOWN)


def test_every_known_key_must_verify():
    second = generate_signing_key()
    event = signed_pdu(10)
    event["signatures"]["domain"][key_id_of(second)] = event["signatures"]["domain"]["ed25519:1"]
    known = {"domain": {"ed25519:1": SPEC_KEY.verify_key, key_id_of(second): second.verify_key}}
    with pytest.raises(SignatureError):
        verify_event_signatures(event, room_version(10), known)


@pytest.mark.parametrize(
    ("version", "event", "servers"),
    [
        (10, {"sender": "@a:one.org"}, {"one.org"}),
        (1, {"sender": "@a:one.org", "event_id": "$e:two.org"}, {"one.org", "two.org"}),
        (2, {"sender": "@a:one.org", "event_id": "$e:one.org"}, {"one.org"}),
        (
            10,
            {
                "sender": "@a:one.org",
                "type": "m.room.member",
                "content": {"membership": "invite", "third_party_invite": {"signed": {}}},
            },
            set(),
        ),
        (
            8,
            {
                "sender": "@a:one.org",
                "type": "m.room.member",
                "content": {"membership": "join", "join_authorised_via_users_server": "@b:two.org"},
            },
            {"one.org", "two.org"},
        ),
        (
            7,
            {
                "sender": "@a:one.org",
                "type": "m.room.member",
                "content": {"membership": "join", "join_authorised_via_users_server": "@b:two.org"},
            },
            {"one.org"},
        ),
        (
            10,
            {
                "sender": "@a:one.org",
                "type": "m.room.member",
                "content": {
                    "membership": "leave",
                    "join_authorised_via_users_server": "@b:two.org",
                },
            },
            {"one.org"},
        ),
    ],
)
def test_which_servers_must_have_signed(version: int, event: dict, servers: set[str]):
    assert required_signature_servers(event, room_version(version)) == servers


def test_a_v1_event_needs_the_signature_of_its_event_id_server():
    event = signed_pdu(1, event_id="$abc:other.org")
    with pytest.raises(SignatureError, match=r"other\.org"):
        verify_event_signatures(event, room_version(1), KNOWN)


@pytest.mark.parametrize(
    "event",
    [
        {"sender": "not a user id"},
        {"sender": 5},
        {},
        {
            "sender": "@a:one.org",
            "type": "m.room.member",
            "content": {"membership": "join", "join_authorised_via_users_server": "junk"},
        },
    ],
)
def test_required_servers_of_a_malformed_event_are_an_invalid_event(event: dict):
    with pytest.raises(InvalidEvent):
        required_signature_servers(event, room_version(10))


# --- size limits --------------------------------------------------------------


def event_of_size(size: int) -> dict:
    event = {**EVENT_V3_PLUS, "content": {"body": ""}}
    overhead = len(encode_canonical_json(event))
    event["content"] = {"body": "x" * (size - overhead)}
    return event


def test_an_event_of_exactly_65536_bytes_is_allowed():
    check_event_size(event_of_size(MAX_PDU_BYTES), room_version(10))


def test_an_event_of_65537_bytes_is_too_large():
    with pytest.raises(EventTooLarge, match="65537 bytes"):
        check_event_size(event_of_size(MAX_PDU_BYTES + 1), room_version(10))


@pytest.mark.parametrize("key", ["sender", "room_id", "state_key", "type"])
def test_each_limited_key_may_have_255_bytes_but_not_256(key: str):
    check_event_size({**EVENT_V3_PLUS, key: "é" * 127 + "a"}, room_version(10))
    with pytest.raises(EventTooLarge) as raised:
        check_event_size({**EVENT_V3_PLUS, key: "é" * 128}, room_version(10))
    assert raised.value.key == key


def test_the_event_id_key_is_limited_where_it_is_part_of_the_event():
    long_event_id = "$" + "a" * 250 + ":domain"
    with pytest.raises(EventTooLarge) as raised:
        check_event_size({**EVENT_V3_PLUS, "event_id": long_event_id}, room_version(1))
    assert raised.value.key == "event_id"
    check_event_size({**EVENT_V3_PLUS, "event_id": long_event_id}, room_version(10))


# --- PDU format ---------------------------------------------------------------


def valid_pdu(version: int) -> dict:
    event: dict[str, Any] = {
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "origin_server_ts": 1_600_000_000_000,
        "type": "m.room.message",
        "content": {"body": "hi"},
        "depth": 3,
        "hashes": {"sha256": "abc"},
        "signatures": {"example.org": {"ed25519:1": "sig"}},
        "prev_events": ["$prev"],
        "auth_events": ["$auth"],
    }
    if version <= 2:
        event["event_id"] = "$event:example.org"
        event["prev_events"] = [["$prev:example.org", {"sha256": "abc"}]]
        event["auth_events"] = [["$auth:example.org", {}]]
    if version >= 12:
        event["room_id"] = "!" + "A" * 43
    return event


@pytest.mark.parametrize("version", range(1, 13))
def test_well_formed_pdus_of_each_version_pass(version: int):
    validate_pdu_format(valid_pdu(version), room_version(version))
    with_extras = {
        **valid_pdu(version),
        "state_key": "",
        "unsigned": {"age": 1},
        "origin": "example.org",
        "x-extra": [1],
    }
    validate_pdu_format(with_extras, room_version(version))


def test_a_v12_create_event_may_omit_the_room_id():
    create = {**valid_pdu(12), "type": "m.room.create", "state_key": "", "prev_events": []}
    del create["room_id"]
    validate_pdu_format(create, room_version(12))
    with pytest.raises(InvalidEvent):
        validate_pdu_format(create, room_version(11))


def without(key: str):
    return lambda event: event.pop(key)


def setting(key: str, value: Any):
    return lambda event: event.__setitem__(key, value)


@pytest.mark.parametrize(
    ("versions", "change", "key"),
    [
        (range(1, 13), without("sender"), "sender"),
        (range(1, 13), setting("sender", "alice"), "sender"),
        (range(1, 13), setting("sender", 5), "sender"),
        (range(1, 13), without("room_id"), "room_id"),
        (range(1, 13), setting("room_id", None), "room_id"),
        (range(1, 13), without("origin_server_ts"), "origin_server_ts"),
        (range(1, 13), setting("origin_server_ts", "1"), "origin_server_ts"),
        (range(1, 13), setting("origin_server_ts", True), "origin_server_ts"),
        (range(1, 13), without("type"), "type"),
        (range(1, 13), setting("type", ["m.room.message"]), "type"),
        (range(1, 13), without("content"), "content"),
        (range(1, 13), setting("content", "body"), "content"),
        (range(1, 13), setting("state_key", 5), "state_key"),
        (range(1, 13), without("depth"), "depth"),
        (range(1, 13), setting("depth", -1), "depth"),
        (range(1, 13), setting("depth", "3"), "depth"),
        (range(1, 6), setting("depth", 2**63), "depth"),
        (range(1, 13), without("hashes"), "hashes"),
        (range(1, 13), setting("hashes", {}), "hashes"),
        (range(1, 13), setting("hashes", {"sha256": 1}), "hashes"),
        (range(1, 13), without("signatures"), "signatures"),
        (range(1, 13), setting("signatures", {"example.org": "sig"}), "signatures"),
        (range(1, 13), setting("signatures", {"example.org": {"ed25519:1": 1}}), "signatures"),
        (range(1, 13), setting("unsigned", []), "unsigned"),
        (range(1, 13), without("prev_events"), "prev_events"),
        (range(1, 13), without("auth_events"), "auth_events"),
        (range(1, 13), setting("prev_events", "$prev"), "prev_events"),
        (range(3, 13), setting("prev_events", [["$prev", {}]]), "prev_events"),
        (range(3, 13), setting("auth_events", [5]), "auth_events"),
        (range(1, 3), setting("prev_events", ["$prev:example.org"]), "prev_events"),
        (range(1, 3), setting("auth_events", [["$a:example.org"]]), "auth_events"),
        (range(1, 3), setting("auth_events", [["$a:example.org", {}, {}]]), "auth_events"),
        (range(1, 3), setting("auth_events", [[{}, "$a:example.org"]]), "auth_events"),
        (range(3, 13), setting("prev_events", [f"$p{i}" for i in range(21)]), "prev_events"),
        (range(3, 13), setting("auth_events", [f"$a{i}" for i in range(11)]), "auth_events"),
        (range(1, 3), without("event_id"), "event_id"),
        (range(1, 3), setting("event_id", "$no-server"), "event_id"),
        (
            range(1, 3),
            setting("event_id", "$7ey4DGZKw7LCsru-jL_kGkSr210BX0jg_jvNUdRRwsg"),
            "event_id",
        ),
        (range(1, 11), setting("redacts", 5), "redacts"),
    ],
)
def test_malformed_pdus_are_refused_naming_the_key(versions: range, change, key: str):
    for version in versions:
        event = valid_pdu(version)
        change(event)
        with pytest.raises(InvalidEvent) as raised:
            validate_pdu_format(event, room_version(version))
        assert raised.value.key == key, f"room version {version}"


@pytest.mark.parametrize("version", range(3, 13))
def test_twenty_prev_events_and_ten_auth_events_are_allowed(version: int):
    event = {
        **valid_pdu(version),
        "prev_events": [f"$p{i}" for i in range(20)],
        "auth_events": [f"$a{i}" for i in range(10)],
    }
    validate_pdu_format(event, room_version(version))


@pytest.mark.parametrize(("version", "accepted"), [(5, True), (6, False), (12, False)])
def test_canonical_json_is_enforced_from_room_version_6(version: int, accepted: bool):
    for oddity in [{"n": 2**60}, {"n": 1.5}]:
        event = {**valid_pdu(version), "content": oddity}
        if accepted:
            validate_pdu_format(event, room_version(version))
        else:
            with pytest.raises(InvalidEvent, match="Canonical JSON"):
                validate_pdu_format(event, room_version(version))


@pytest.mark.parametrize(("version", "depth_ok"), [(5, True), (6, False)])
def test_depth_beyond_2_53_is_allowed_only_before_room_version_6(version: int, depth_ok: bool):
    event = {**valid_pdu(version), "depth": 2**53}
    if depth_ok:
        validate_pdu_format(event, room_version(version))
    else:
        with pytest.raises(InvalidEvent):
            validate_pdu_format(event, room_version(version))


def test_top_level_redacts_is_just_an_extra_key_from_room_version_11():
    validate_pdu_format({**valid_pdu(11), "redacts": 5}, room_version(11))


@pytest.mark.parametrize("event", [None, [], "event", 5])
def test_something_that_is_not_an_object_is_not_a_pdu(event: object):
    with pytest.raises(InvalidEvent):
        validate_pdu_format(event, room_version(10))


# --- properties -----------------------------------------------------------------

contents = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=6),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)
event_types = st.sampled_from(
    [
        "m.room.message",
        "m.room.member",
        "m.room.create",
        "m.room.power_levels",
        "m.room.join_rules",
        "X",
    ]
)


@settings(deadline=None, max_examples=50)
@given(contents, event_types, st.integers(3, 12))
def test_every_signed_event_verifies_and_hashes(content: dict, event_type: str, version: int):
    event = {**EVENT_V3_PLUS, "signatures": {}, "type": event_type, "content": content}
    signed = sign_event(event, "domain", SPEC_KEY, room_version(version))
    verify_event_signatures(signed, room_version(version), KNOWN)
    assert check_content_hash(signed)
    validate_pdu_format(signed, room_version(version))
    redacted = redact(signed, room_version(version))
    assert compute_event_id(redacted, room_version(version)) == compute_event_id(
        signed, room_version(version)
    )


@pytest.mark.parametrize("version", sorted(KNOWN_ROOM_VERSIONS, key=int))
def test_sign_event_with_id_gives_the_id_compute_event_id_gives(version):
    """The id comes from the signed bytes; it must be the reference hash's id all the same."""
    room_version = KNOWN_ROOM_VERSIONS[version]
    key = generate_signing_key()
    event = {
        "type": "m.room.message",
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": {"body": "hi", "msgtype": "m.text"},
        "origin_server_ts": 1,
        "depth": 3,
        "prev_events": [],
        "auth_events": [],
        "unsigned": {"age": 5},
    }
    if room_version.event_format is EventFormat.V1:
        event["event_id"] = "$abc:example.org"
    signed, event_id = sign_event_with_id(event, "example.org", key, room_version)
    assert signed == sign_event(event, "example.org", key, room_version)
    assert event_id == compute_event_id(signed, room_version)


@pytest.mark.parametrize("version", range(1, 13))
def test_one_reference_form_gives_the_event_id_and_checks_the_signatures(version: int):
    """Server-server API § Validating hashes and signatures, § Calculating the reference
    hash: both cover the redacted event without `signatures` and `unsigned`, so a
    received event is redacted and encoded once for its id and its signature check."""
    event = signed_pdu(version)
    reference = reference_form(event, room_version(version))
    assert event_id_of_reference_form(event, room_version(version), reference[1]) == (
        compute_event_id(event, room_version(version))
    )
    verify_event_signatures(event, room_version(version), KNOWN, reference=reference)
    tampered = {**event, "type": "Y"}
    with pytest.raises(SignatureError, match="does not verify"):
        verify_event_signatures(
            tampered,
            room_version(version),
            KNOWN,
            reference=reference_form(tampered, room_version(version)),
        )
