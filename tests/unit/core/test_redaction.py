"""The redaction algorithm of every room version 1–12.

Spec: `rooms/fragments/v1-redactions.md` (v1–v5), `v6-redactions.md` (v6, v7),
`rooms/v8.md` § Redactions (v8 keeps `join_rules.allow`), `v9-redactions.md`
(v9, v10), `v11-redactions.md` (v11, v12); `client-server-api` § Redactions.
The expected forms below are written out by hand from those lists.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.core.errors import InvalidEvent
from matrix_conduit.core.redaction import redact, redact_for_client
from matrix_conduit.core.room_versions import KNOWN_ROOM_VERSIONS


def versions(first: int, last: int) -> range:
    return range(first, last + 1)


ALL_VERSIONS = versions(1, 12)

KEPT_IN_EVERY_VERSION = {
    "event_id": "$event:example.org",
    "room_id": "!room:example.org",
    "sender": "@alice:example.org",
    "origin_server_ts": 1_600_000_000_000,
    "depth": 12,
    "hashes": {"sha256": "thishashcoverseverything"},
    "signatures": {"example.org": {"ed25519:1": "signature"}},
    "prev_events": ["$prev"],
    "auth_events": ["$auth1", "$auth2"],
    "state_key": "",
}
KEPT_BEFORE_V11 = {"origin": "example.org", "membership": "join", "prev_state": []}
DROPPED_IN_EVERY_VERSION = {
    "unsigned": {"age": 5, "redacted_because": {}},
    "redacts": "$target",
    "age_ts": 1_600_000_000_000,
    "outlier": True,
    "x-custom": {"anything": 1},
}

SIGNED_3PID = {
    "mxid": "@bob:example.org",
    "token": "abc",
    "signatures": {"id.org": {"ed25519:0": "s"}},
}
POWER_LEVELS = {
    "ban": 50,
    "events": {"m.room.name": 100},
    "events_default": 0,
    "invite": 50,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {"@alice:example.org": 100},
    "users_default": 0,
    "notifications": {"room": 50},
    "historical": 100,
}
POWER_LEVELS_V1 = {
    key: POWER_LEVELS[key]
    for key in POWER_LEVELS
    if key not in ("invite", "notifications", "historical")
}
POWER_LEVELS_V11 = {**POWER_LEVELS_V1, "invite": 50}
CREATE = {
    "creator": "@alice:example.org",
    "room_version": "12",
    "m.federate": False,
    "predecessor": {"room_id": "!old:example.org"},
    "additional_creators": ["@bob:example.org"],
    "type": "m.space",
}
ALLOW = [{"type": "m.room_membership", "room_id": "!space:example.org"}]

# (event type, content, {versions: redacted content})
CASES: list[tuple[str, Any, dict[range, Any]]] = [
    ("m.room.message", {"body": "hello", "msgtype": "m.text"}, {ALL_VERSIONS: {}}),
    ("m.room.topic", {"topic": "secrets"}, {ALL_VERSIONS: {}}),
    ("org.example.custom", {"membership": "join", "join_rule": "public"}, {ALL_VERSIONS: {}}),
    (
        "m.room.member",
        {
            "membership": "join",
            "displayname": "Alice",
            "avatar_url": "mxc://example.org/a",
            "join_authorised_via_users_server": "@admin:example.org",
            "third_party_invite": {"display_name": "bob@example.com", "signed": SIGNED_3PID},
        },
        {
            versions(1, 8): {"membership": "join"},
            versions(9, 10): {
                "membership": "join",
                "join_authorised_via_users_server": "@admin:example.org",
            },
            versions(11, 12): {
                "membership": "join",
                "join_authorised_via_users_server": "@admin:example.org",
                "third_party_invite": {"signed": SIGNED_3PID},
            },
        },
    ),
    (
        "m.room.member",
        {"membership": "invite", "third_party_invite": {"display_name": "no signed key"}},
        {
            versions(1, 10): {"membership": "invite"},
            versions(11, 12): {"membership": "invite", "third_party_invite": {}},
        },
    ),
    (
        "m.room.member",
        {"membership": "invite", "third_party_invite": "not an object"},
        {ALL_VERSIONS: {"membership": "invite"}},
    ),
    (
        "m.room.create",
        CREATE,
        {versions(1, 10): {"creator": "@alice:example.org"}, versions(11, 12): CREATE},
    ),
    (
        "m.room.join_rules",
        {"join_rule": "restricted", "allow": ALLOW, "extra": True},
        {
            versions(1, 7): {"join_rule": "restricted"},
            versions(8, 12): {"join_rule": "restricted", "allow": ALLOW},
        },
    ),
    (
        "m.room.power_levels",
        POWER_LEVELS,
        {versions(1, 10): POWER_LEVELS_V1, versions(11, 12): POWER_LEVELS_V11},
    ),
    (
        "m.room.aliases",
        {"aliases": ["#a:example.org"], "extra": 1},
        {versions(1, 5): {"aliases": ["#a:example.org"]}, versions(6, 12): {}},
    ),
    (
        "m.room.history_visibility",
        {"history_visibility": "shared", "extra": 1},
        {ALL_VERSIONS: {"history_visibility": "shared"}},
    ),
    (
        "m.room.redaction",
        {"redacts": "$target", "reason": "spam"},
        {versions(1, 10): {}, versions(11, 12): {"redacts": "$target"}},
    ),
    ("m.room.create", "content that is not an object", {ALL_VERSIONS: {}}),
]


def redaction_table() -> list[Any]:
    table = []
    for event_type, content, expected_by_versions in CASES:
        covered = sorted(number for numbers in expected_by_versions for number in numbers)
        assert covered == list(ALL_VERSIONS), f"{event_type}: every version needs an expectation"
        for numbers, expected_content in expected_by_versions.items():
            for number in numbers:
                table.append(
                    pytest.param(
                        number, event_type, content, expected_content, id=f"v{number}-{event_type}"
                    )
                )
    return table


@pytest.mark.parametrize(
    ("version", "event_type", "content", "expected_content"), redaction_table()
)
def test_redaction_keeps_exactly_what_the_room_version_protects(
    version: int, event_type: str, content: Any, expected_content: Any
):
    event = {
        **KEPT_IN_EVERY_VERSION,
        **KEPT_BEFORE_V11,
        **DROPPED_IN_EVERY_VERSION,
        "type": event_type,
        "content": content,
    }
    expected = {
        **KEPT_IN_EVERY_VERSION,
        **(KEPT_BEFORE_V11 if version < 11 else {}),
        "type": event_type,
        "content": expected_content,
    }
    assert redact(event, KNOWN_ROOM_VERSIONS[str(version)]) == expected


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_an_event_without_content_stays_without_content(version: int):
    event = {"type": "m.room.message", "sender": "@a:b", "unsigned": {}}
    assert redact(event, KNOWN_ROOM_VERSIONS[str(version)]) == {
        "type": "m.room.message",
        "sender": "@a:b",
    }


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_an_event_type_that_is_not_a_string_keeps_no_content(version: int):
    event = {"type": ["m.room.member"], "content": {"membership": "join"}}
    assert redact(event, KNOWN_ROOM_VERSIONS[str(version)])["content"] == {}


@pytest.mark.parametrize("event", [None, [], "event", 5])
def test_redacting_something_that_is_not_an_event_is_refused(event: object):
    with pytest.raises(InvalidEvent):
        redact(event, KNOWN_ROOM_VERSIONS["10"])  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_redaction_neither_modifies_nor_shares_with_its_input(version: int):
    event = {
        **KEPT_IN_EVERY_VERSION,
        "type": "m.room.power_levels",
        "content": copy.deepcopy(POWER_LEVELS),
    }
    original = copy.deepcopy(event)
    redacted = redact(event, KNOWN_ROOM_VERSIONS[str(version)])
    assert event == original
    redacted["content"]["users"]["@mallory:example.org"] = 100
    redacted["signatures"]["example.org"]["ed25519:1"] = "changed"
    redacted["prev_events"].append("$other")
    assert event == original


def test_clients_see_the_redaction_in_unsigned():
    event = {
        **KEPT_IN_EVERY_VERSION,
        "type": "m.room.message",
        "content": {"body": "hello"},
        "unsigned": {"age": 100, "transaction_id": "txn"},
    }
    redaction = {
        "type": "m.room.redaction",
        "event_id": "$redaction",
        "content": {"redacts": "$event:example.org"},
    }
    redacted = redact_for_client(event, redaction, KNOWN_ROOM_VERSIONS["11"])
    assert redacted == {
        **KEPT_IN_EVERY_VERSION,
        "type": "m.room.message",
        "content": {},
        "unsigned": {"redacted_because": redaction},
    }
    redacted["unsigned"]["redacted_because"]["content"]["redacts"] = "$changed"
    assert redaction["content"]["redacts"] == "$event:example.org"


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_trees = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
interesting_keys = st.sampled_from(
    sorted({*KEPT_IN_EVERY_VERSION, *KEPT_BEFORE_V11, *DROPPED_IN_EVERY_VERSION, "type", "content"})
)
content_keys = st.sampled_from(
    sorted(
        {
            *POWER_LEVELS,
            *CREATE,
            "membership",
            "join_rule",
            "allow",
            "aliases",
            "redacts",
            "history_visibility",
            "join_authorised_via_users_server",
            "third_party_invite",
            "body",
        }
    )
)
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "m.room.member",
                "m.room.create",
                "m.room.join_rules",
                "m.room.power_levels",
                "m.room.aliases",
                "m.room.history_visibility",
                "m.room.redaction",
                "m.room.message",
            ]
        ),
        "content": st.dictionaries(content_keys, json_trees, max_size=6) | json_trees,
    }
).flatmap(
    lambda base: st.dictionaries(interesting_keys, json_trees, max_size=8).map(
        lambda extra: {**extra, **base}
    )
)


@settings(deadline=None)
@given(events, st.sampled_from(sorted(KNOWN_ROOM_VERSIONS)))
def test_redacting_twice_is_redacting_once(event: dict, version: str):
    room_version = KNOWN_ROOM_VERSIONS[version]
    once = redact(event, room_version)
    assert redact(once, room_version) == once


@settings(deadline=None)
@given(events, st.sampled_from(sorted(KNOWN_ROOM_VERSIONS)))
def test_redaction_only_ever_removes(event: dict, version: str):
    redacted = redact(event, KNOWN_ROOM_VERSIONS[version])
    assert "unsigned" not in redacted
    for key, value in redacted.items():
        if key != "content":
            assert event[key] == value
    if isinstance(event.get("content"), dict):
        for key in redacted["content"]:
            if key != "third_party_invite":
                assert event["content"][key] == redacted["content"][key]
