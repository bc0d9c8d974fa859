"""Identifier grammar (spec: `appendices.md` § Identifier Grammar: Server Name,
User Identifiers, Historical User IDs, Room IDs, Room Aliases, Event IDs)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.core.errors import InvalidIdentifier
from matrix_conduit.core.ids import (
    EventId,
    RoomAlias,
    RoomId,
    UserId,
    is_on_server,
    is_valid_event_id,
    is_valid_localpart,
    is_valid_room_alias,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    parse_server_name,
    server_name_of,
)

HOSTILE = [None, 42, b"@a:b", ["@a:b"], {"@a:b": 1}, object(), "", "x" * 10_000_000]

REFERENCE_HASH = "Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"  # rooms/fragments/v4-event-ids.md


# --- server names -----------------------------------------------------------


@pytest.mark.parametrize(
    ("server_name", "host", "port"),
    [
        # The spec's examples.
        ("matrix.org", "matrix.org", None),
        ("matrix.org:8888", "matrix.org", 8888),
        ("1.2.3.4", "1.2.3.4", None),
        ("1.2.3.4:1234", "1.2.3.4", 1234),
        ("[1234:5678::abcd]", "[1234:5678::abcd]", None),
        ("[1234:5678::abcd]:5678", "[1234:5678::abcd]", 5678),
        # Beyond them.
        ("localhost", "localhost", None),
        ("MATRIX.ORG", "MATRIX.ORG", None),
        ("a-b.c-d.example", "a-b.c-d.example", None),
        ("[::1]", "[::1]", None),
        ("[::ffff:1.2.3.4]:8448", "[::ffff:1.2.3.4]", 8448),
        ("[2001:DB8::1]", "[2001:DB8::1]", None),
        ("example.org:1", "example.org", 1),
        ("example.org:65535", "example.org", 65535),
        ("example.org:00443", "example.org", 443),
        ("a" * 255, "a" * 255, None),
        ("a" * 255 + ":8448", "a" * 255, 8448),
    ],
)
def test_valid_server_names_split_into_host_and_port(server_name: str, host: str, port: int | None):
    assert parse_server_name(server_name) == (host, port)
    assert is_valid_server_name(server_name)


@pytest.mark.parametrize(
    "server_name",
    [
        "",
        ":8448",
        "example.org:",
        "example.org:port",
        "example.org:123456",
        "example.org:65536",
        "example.org:-1",
        "example.org:٣",  # a non-ASCII digit
        "example.org:80:80",
        "exa mple.org",
        "exa_mple.org",
        "example.org/path",
        "user@example.org",
        "ex\x00ample.org",
        "exämple.org",
        "例え.jp",
        "a" * 256,
        "[::1",
        "[]",
        "[:]",
        "[::1]x",
        "[::1]:",
        "[::g]",
        "[1:2:3:4:5:6:7:8:9]",
        "[fe80::1%eth0]",
        "[1.2.3.4]",
        "::1",
        "example.org\n",
        *HOSTILE,
    ],
)
def test_invalid_server_names_are_refused(server_name: object):
    assert not is_valid_server_name(server_name)
    with pytest.raises(InvalidIdentifier):
        parse_server_name(server_name)


# --- user ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    "user_id",
    [
        "@alice:example.org",
        "@a:b",
        "@alice.b_c=d-e/f+g:example.org:8448",
        "@0123456789:[::1]",
        "@alice:1.2.3.4",
    ],
)
def test_compliant_user_ids_are_valid_under_both_grammars(user_id: str):
    assert is_valid_user_id(user_id, historical=False)
    assert is_valid_user_id(user_id, historical=True)
    assert str(UserId.parse(user_id, historical=False)) == user_id


@pytest.mark.parametrize(
    "user_id",
    [
        "@Alice:example.org",
        "@:example.org",
        "@alice!:example.org",
        "@al ice:example.org",
        "@ålice:example.org",
        "@\x01:example.org",
        "@a*b:example.org",
        "@a#b:example.org",
    ],
)
def test_historical_user_ids_are_valid_only_under_the_historical_grammar(user_id: str):
    assert is_valid_user_id(user_id)
    assert not is_valid_user_id(user_id, historical=False)
    assert str(UserId.parse(user_id)) == user_id
    with pytest.raises(InvalidIdentifier, match="localpart may only contain"):
        UserId.parse(user_id, historical=False)


@pytest.mark.parametrize(
    "user_id",
    [
        "alice:example.org",
        "@alice",
        "@alice:",
        "@alice:bad_server",
        "@al\x00ice:example.org",
        "@al\ud800ice:example.org",
        "#alice:example.org",
        "@alice:example.org:99999",
        "@" + "a" * 243 + ":example.org",
        "@" + "é" * 122 + ":example.org",
        *HOSTILE,
    ],
)
def test_invalid_user_ids_are_refused_under_both_grammars(user_id: object):
    assert not is_valid_user_id(user_id, historical=True)
    assert not is_valid_user_id(user_id, historical=False)
    with pytest.raises(InvalidIdentifier):
        UserId.parse(user_id)


def test_the_length_limit_counts_utf8_bytes_of_the_whole_id():
    server = ":example.org"  # 12 bytes
    assert is_valid_user_id("@" + "a" * 242 + server)  # 255 bytes
    assert not is_valid_user_id("@" + "a" * 243 + server)  # 256 bytes
    assert is_valid_user_id("@" + "é" * 121 + server)  # 121 chars, 255 bytes
    assert not is_valid_user_id("@" + "é" * 122 + server)  # 135 chars, 257 bytes


def test_the_localpart_ends_at_the_first_colon():
    user_id = UserId.parse("@alice:example.org:8448")
    assert user_id == UserId("alice", "example.org:8448")


def test_user_ids_built_directly_are_checked_too():
    with pytest.raises(InvalidIdentifier):
        UserId("alice", "bad server")
    with pytest.raises(InvalidIdentifier):
        UserId("al:ice", "example.org")
    with pytest.raises(InvalidIdentifier):
        UserId(None, "example.org")


def test_user_ids_are_frozen_and_hashable():
    user_id = UserId.parse("@alice:example.org")
    assert {user_id: 1}[UserId("alice", "example.org")] == 1
    with pytest.raises(AttributeError):
        user_id.localpart = "bob"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("localpart", "valid"),
    [
        ("alice", True),
        ("a.b_c=d-e/f+g", True),
        ("0", True),
        ("", False),
        ("Alice", False),
        ("al ice", False),
        ("al:ice", False),
        ("ålice", False),
        ("a" * 256, False),
        (None, False),
        (5, False),
    ],
)
def test_localparts_for_new_users_follow_the_strict_grammar(localpart: object, valid: bool):
    assert is_valid_localpart(localpart) is valid


def test_errors_about_huge_input_stay_short():
    with pytest.raises(InvalidIdentifier) as raised:
        UserId.parse("@" + "a" * 10_000_000 + ":example.org")
    assert len(str(raised.value)) < 200


# --- room ids, event ids, aliases -------------------------------------------


@pytest.mark.parametrize(
    ("room_id", "opaque_id", "server_name"),
    [
        ("!abc123:example.org", "abc123", "example.org"),
        ("!ABC:example.org:8448", "ABC", "example.org:8448"),
        ("!héllo wörld:[::1]", "héllo wörld", "[::1]"),
        (f"!{REFERENCE_HASH}", REFERENCE_HASH, None),
    ],
)
def test_room_ids_with_and_without_a_server_part(room_id: str, opaque_id: str, server_name):
    parsed = RoomId.parse(room_id)
    assert parsed == RoomId(opaque_id, server_name)
    assert str(parsed) == room_id
    assert is_valid_room_id(room_id)


@pytest.mark.parametrize(
    "room_id",
    [
        "abc:example.org",
        "!:example.org",
        "!abc:",
        "!abc:bad_server",
        "!a\x00c:example.org",
        "!abc",
        "!" + REFERENCE_HASH[:-1],
        "!" + REFERENCE_HASH + "A",
        "!" + REFERENCE_HASH.replace("-", "+"),
        "!" + "a" * 250 + ":example.org",
        *HOSTILE,
    ],
)
def test_invalid_room_ids_are_refused(room_id: object):
    assert not is_valid_room_id(room_id)
    with pytest.raises(InvalidIdentifier):
        RoomId.parse(room_id)


@pytest.mark.parametrize(
    ("event_id", "opaque_id", "server_name"),
    [
        ("$a4ecee13e2accdadf56c1025:example.com", "a4ecee13e2accdadf56c1025", "example.com"),
        ("$0:domain", "0", "domain"),
        (f"${REFERENCE_HASH}", REFERENCE_HASH, None),
        (
            "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk",
            "acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk",
            None,
        ),
    ],
)
def test_event_ids_of_every_format(event_id: str, opaque_id: str, server_name):
    parsed = EventId.parse(event_id)
    assert parsed == EventId(opaque_id, server_name)
    assert str(parsed) == event_id
    assert is_valid_event_id(event_id)


@pytest.mark.parametrize(
    "event_id",
    [
        "abc:example.org",
        "$:example.org",
        "$abc",
        "$" + REFERENCE_HASH[:-1],
        "$" + REFERENCE_HASH[:-1] + "+",  # mixes the URL-safe and standard alphabets
        "$abc:bad server",
        "$" + "a" * 250 + ":example.org",
        *HOSTILE,
    ],
)
def test_invalid_event_ids_are_refused(event_id: object):
    assert not is_valid_event_id(event_id)
    with pytest.raises(InvalidIdentifier):
        EventId.parse(event_id)


@pytest.mark.parametrize(
    ("alias", "localpart", "server_name"),
    [
        ("#room:example.org", "room", "example.org"),
        ("#Room With Spaces!:example.org:8448", "Room With Spaces!", "example.org:8448"),
        ("#日本:example.org", "日本", "example.org"),
    ],
)
def test_room_aliases(alias: str, localpart: str, server_name: str):
    parsed = RoomAlias.parse(alias)
    assert parsed == RoomAlias(localpart, server_name)
    assert str(parsed) == alias
    assert is_valid_room_alias(alias)


@pytest.mark.parametrize(
    "alias",
    [
        "room:example.org",
        "#room",
        "#:example.org",
        "#room:",
        "#ro\x00om:example.org",
        "#room:bad server",
        "#" + "a" * 250 + ":example.org",
        *HOSTILE,
    ],
)
def test_invalid_room_aliases_are_refused(alias: object):
    assert not is_valid_room_alias(alias)
    with pytest.raises(InvalidIdentifier):
        RoomAlias.parse(alias)


@pytest.mark.parametrize(
    ("identifier", "server_name"),
    [
        ("@alice:example.org", "example.org"),
        ("!room:example.org:8448", "example.org:8448"),
        ("$event:[::1]", "[::1]"),
        ("#alias:1.2.3.4", "1.2.3.4"),
    ],
)
def test_server_name_of_any_identifier(identifier: str, server_name: str):
    assert server_name_of(identifier) == server_name


@pytest.mark.parametrize(
    "identifier",
    [f"!{REFERENCE_HASH}", f"${REFERENCE_HASH}", "%alice:example.org", "alice", *HOSTILE],
)
def test_server_name_of_refuses_identifiers_without_one(identifier: object):
    with pytest.raises(InvalidIdentifier):
        server_name_of(identifier)


@settings(deadline=None)
@given(st.text(max_size=300))
def test_parsers_never_raise_anything_but_invalid_identifier(text: str):
    for parse in (parse_server_name, UserId.parse, RoomId.parse, EventId.parse, RoomAlias.parse):
        for candidate in (text, "@" + text, "!" + text, "$" + text, "#" + text):
            with contextlib.suppress(InvalidIdentifier):
                parse(candidate)


@settings(deadline=None)
@given(
    st.text(st.characters(blacklist_characters=":\x00", blacklist_categories=("Cs",)), max_size=40),
    st.from_regex(r"[a-z0-9.\-]{1,30}(:[1-9][0-9]{0,3})?", fullmatch=True),
)
def test_every_historical_user_id_round_trips_through_str(localpart: str, server_name: str):
    user_id = UserId(localpart, server_name)
    assert UserId.parse(str(user_id)) == user_id


@pytest.mark.parametrize(
    ("identifier", "ours"),
    [
        ("@alice:example.org", True),
        ("@alice:example.org:8448", False),
        ("@alice:other.example.org", False),
        ("@alice:evil.org:example.org", False),
        ("@example.org", False),
        ("#room:example.org", True),
        ("!opaque:example.org", True),
        ("!hashonly", False),
        ("$abc:example.org", True),
        ("$hashonlyv3", False),
        ("example.org", True),
        ("example.org:8448", False),
        ("exAmple.org", False),
        ("", False),
    ],
)
def test_an_id_is_on_the_server_named_after_its_first_colon(identifier: str, ours: bool):
    assert is_on_server(identifier, "example.org") is ours


def test_an_id_on_a_server_with_a_port_is_on_that_server_and_port_only():
    assert is_on_server("@alice:example.org:8448", "example.org:8448")
    assert not is_on_server("@alice:example.org", "example.org:8448")
