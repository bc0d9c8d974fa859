"""Push rule evaluation: conditions, globs, ordering and the default ruleset.

Spec: `content/client-server-api/modules/push.md` ("Conditions", "Predefined
Rules") and `content/appendices.md` ("Glob-style matching", "Dot-separated
property paths").
"""

from __future__ import annotations

import pytest

from matrix_conduit.core.push_rules import (
    PushContext,
    condition_holds,
    default_ruleset,
    evaluate,
    is_highlight,
    member_count_matches,
    should_notify,
    split_path,
    tweaks,
)

ME = "@me:example.org"
OTHER = "@other:example.org"


def context(**overrides) -> PushContext:
    values = {
        "user_id": ME,
        "member_count": 5,
        "display_name": "Me Myself",
        "sender_power_level": 0,
        "notification_level": lambda key: 50 if key == "room" else None,
    }
    values.update(overrides)
    return PushContext(**values)


def message(body: str = "hi", **content) -> dict:
    return {
        "type": "m.room.message",
        "sender": OTHER,
        "room_id": "!room:example.org",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("lunc?*", "Lunch plans", True),
        ("lunc?*", "LUNCH", True),
        ("lunc?*", " lunch", False),
        ("lunc?*", "lunc", False),
        ("m.notice", "m.notice", True),
        ("m.notice", "m.noticeX", False),
    ],
)
def test_event_match_globs_the_whole_value_case_insensitively(pattern, value, matches):
    event = {"content": {"topic": value}}
    condition = {"kind": "event_match", "key": "content.topic", "pattern": pattern}
    assert condition_holds(condition, event, context()) is matches


@pytest.mark.parametrize(
    ("body", "matches"),
    [
        ("An example event.", True),
        ("exple", True),
        ("An exciting triple-whammy", True),
        ("counterexample", False),
    ],
)
def test_event_match_on_body_matches_whole_words(body, matches):
    condition = {"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}
    assert condition_holds(condition, message(body), context()) is matches


def test_event_match_does_not_match_absent_or_non_string_values():
    condition = {"kind": "event_match", "key": "content.topic", "pattern": "*"}
    assert not condition_holds(condition, {"content": {}}, context())
    assert not condition_holds(condition, {"content": {"topic": None}}, context())


@pytest.mark.parametrize(
    ("value", "matches"), [(True, True), ("true", False), (1, False), (None, False)]
)
def test_event_property_is_compares_without_casting(value, matches):
    event = {"content": {"m.federate": value}}
    condition = {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
    assert condition_holds(condition, event, context()) is matches


def test_event_property_contains_needs_an_exact_array_member():
    event = {"content": {"alt_aliases": ["#a:example.org", "#myroom:example.com"]}}
    condition = {
        "kind": "event_property_contains",
        "key": "content.alt_aliases",
        "value": "#myroom:example.com",
    }
    assert condition_holds(condition, event, context())
    partial = {**condition, "value": ":example.com"}
    assert not condition_holds(partial, event, context())


@pytest.mark.parametrize(
    ("spec", "count", "matches"),
    [("2", 2, True), ("==2", 3, False), ("<3", 2, True), (">=10", 10, True), ("x", 2, False)],
)
def test_room_member_count(spec, count, matches):
    assert member_count_matches(spec, count) is matches


def test_sender_notification_permission_uses_the_notification_level():
    condition = {"kind": "sender_notification_permission", "key": "room"}
    assert not condition_holds(condition, message(), context(sender_power_level=0))
    assert condition_holds(condition, message(), context(sender_power_level=50))


def test_unknown_conditions_never_match():
    assert not condition_holds({"kind": "org.example.new"}, message(), context())


def test_dot_paths_honour_escapes():
    assert split_path("content.m\\.relates_to.rel_type") == ("content", "m.relates_to", "rel_type")
    assert split_path("a\\\\.b") == ("a\\", "b")


def test_plain_message_notifies_without_highlight():
    actions = evaluate(default_ruleset(ME), message(), context())
    assert should_notify(actions) and not is_highlight(actions)


def test_user_mention_highlights_with_sound():
    event = message("look", **{"m.mentions": {"user_ids": [ME]}})
    actions = evaluate(default_ruleset(ME), event, context())
    assert is_highlight(actions)
    assert tweaks(actions)["sound"] == "default"


def test_room_mention_needs_the_senders_power():
    event = message("everyone!", **{"m.mentions": {"room": True}})
    weak = evaluate(default_ruleset(ME), event, context(sender_power_level=0))
    strong = evaluate(default_ruleset(ME), event, context(sender_power_level=100))
    assert not is_highlight(weak)
    assert is_highlight(strong)


def test_one_to_one_rooms_notify_with_sound_and_encrypted_group_messages_without():
    encrypted = {**message(), "type": "m.room.encrypted", "content": {"ciphertext": "x"}}
    one_to_one = evaluate(default_ruleset(ME), encrypted, context(member_count=2))
    group = evaluate(default_ruleset(ME), encrypted, context(member_count=5))
    assert tweaks(one_to_one) == {"sound": "default"}
    assert group == ["notify"]


def test_call_invite_rings():
    call = {**message(), "type": "m.call.invite", "content": {}}
    assert tweaks(evaluate(default_ruleset(ME), call, context())) == {"sound": "ring"}


def test_notices_edits_reactions_and_member_events_are_silent():
    ruleset = default_ruleset(ME)
    edit = message("fix", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})
    reaction = {**message(), "type": "m.reaction", "content": {}}
    member = {**message(), "type": "m.room.member", "state_key": OTHER, "content": {}}
    for event in (message("n", msgtype="m.notice"), edit, reaction, member):
        assert not should_notify(evaluate(ruleset, event, context()))


def test_invite_for_me_notifies():
    invite = {
        "type": "m.room.member",
        "sender": OTHER,
        "state_key": ME,
        "content": {"membership": "invite"},
    }
    assert should_notify(evaluate(default_ruleset(ME), invite, context()))


def test_own_events_never_notify():
    own = {**message(), "sender": ME}
    assert evaluate(default_ruleset(ME), own, context()) is None


def test_enabled_master_rule_silences_everything():
    ruleset = default_ruleset(ME)
    ruleset["global"]["override"][0]["enabled"] = True
    event = message("look", **{"m.mentions": {"user_ids": [ME]}})
    assert evaluate(ruleset, event, context()) == []


def test_user_rules_come_before_server_defaults_of_the_same_kind():
    ruleset = default_ruleset(ME)
    ruleset["global"]["underride"].append(
        {"rule_id": "mine", "default": False, "enabled": True, "actions": [], "conditions": []}
    )
    assert evaluate(ruleset, message(), context()) == []


def test_content_rule_matches_words_of_the_body():
    ruleset = default_ruleset(ME)
    ruleset["global"]["content"].append(
        {
            "rule_id": "cake",
            "default": False,
            "enabled": True,
            "pattern": "cake*lie",
            "actions": ["notify", {"set_tweak": "highlight"}],
        }
    )
    assert is_highlight(evaluate(ruleset, message("the cake is a lie"), context()))


def test_sender_and_room_rules_match_by_rule_id():
    ruleset = default_ruleset(ME)
    ruleset["global"]["sender"].append(
        {"rule_id": OTHER, "default": False, "enabled": True, "actions": []}
    )
    assert evaluate(ruleset, message(), context()) == []


def test_historical_actions_are_dropped():
    ruleset = default_ruleset(ME)
    ruleset["global"]["override"].insert(
        1,
        {
            "rule_id": "old",
            "default": False,
            "enabled": True,
            "conditions": [],
            "actions": ["dont_notify"],
        },
    )
    assert evaluate(ruleset, message(), context()) == []
