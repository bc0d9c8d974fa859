"""Hostile input: whatever a remote server sends, the rules answer allow or reject.

Events reach `check_auth` from federation, so no content, however malformed
(wrong types, missing keys, odd identifiers), may make it raise — an exception
would leave the event neither accepted nor rejected.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.core.auth import Rejection, auth_types_for_event, check_auth

from .auth_tables import ALICE, ALL_VERSIONS, BOB, established_room

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "join", "invite", "leave", "ban", "knock", "public", "restricted"]),
    st.sampled_from([ALICE, BOB, "@bad", "@:x", "!room:a.example", "$e:a.example", "50", " +7"]),
    st.text(max_size=8),
)
CONTENT_KEYS = [
    "membership",
    "join_rule",
    "users",
    "events",
    "ban",
    "kick",
    "invite",
    "notifications",
    "third_party_invite",
    "signed",
    "mxid",
    "token",
    "signatures",
    "join_authorised_via_users_server",
    "additional_creators",
    "creator",
    "m.federate",
    "room_version",
    "public_key",
    "public_keys",
    ALICE,
    BOB,
]
"""Keys the rules read, so that random content reaches them."""

content_keys = st.one_of(st.sampled_from(CONTENT_KEYS), st.text(max_size=3))
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(content_keys, children, max_size=4),
    ),
    max_leaves=12,
)
event_types = st.sampled_from(
    [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.third_party_invite",
        "m.room.aliases",
        "m.room.redaction",
        "m.room.message",
    ]
)


@st.composite
def hostile_events(draw):
    event = {
        "type": draw(event_types),
        "sender": draw(st.one_of(st.sampled_from([ALICE, BOB, "@bad", "x"]), json_scalars)),
        "content": draw(st.one_of(st.dictionaries(content_keys, json_values), json_values)),
        "room_id": draw(st.sampled_from(["!room:a.example", "!other", None])),
        "prev_events": draw(json_values),
    }
    if draw(st.booleans()):
        event["state_key"] = draw(st.one_of(st.sampled_from(["", ALICE, BOB, "tok"]), json_scalars))
    if draw(st.booleans()):
        event["redacts"] = draw(json_scalars)
    return event


@settings(max_examples=150, deadline=None)
@given(
    version=st.sampled_from(ALL_VERSIONS),
    event=hostile_events(),
    state_overrides=st.lists(hostile_events(), max_size=3),
    cite=st.booleans(),
)
def test_no_event_or_state_makes_the_rules_raise(version, event, state_overrides, cite) -> None:
    room = established_room(version)
    for override in state_overrides:
        state_key = override.get("state_key")
        if isinstance(state_key, str):
            room.state[(override["type"], state_key)] = override
    if version.room_id_is_create_event_id and event["room_id"] == "!room:a.example":
        event["room_id"] = room.room_id
    cited = list(room.state.values())[:4] if cite else None
    result = check_auth(
        event,
        room.state,
        version,
        is_signed_by=lambda signed_event, server_name: True,
        cited_auth_events=cited,
    )
    assert result is None or isinstance(result, Rejection)


@settings(max_examples=100, deadline=None)
@given(
    version=st.sampled_from(ALL_VERSIONS),
    event_type=event_types,
    state_key=st.one_of(st.none(), st.text(max_size=5)),
    content=st.dictionaries(st.text(max_size=3), json_values),
)
def test_the_selection_accepts_any_content(version, event_type, state_key, content) -> None:
    selected = auth_types_for_event(event_type, ALICE, state_key, content, version)
    assert all(isinstance(key, tuple) and len(key) == 2 for key in selected)
    assert len(selected) == len(set(selected))
