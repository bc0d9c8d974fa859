"""Push rules: the default ruleset, and which rule an event matches for a user.

Spec: `content/client-server-api/modules/push.md` ("Push Rules", "Conditions",
"Predefined Rules") and the appendices ("Glob-style matching", "Dot-separated
property paths"). Pure: the caller supplies what the conditions ask about
the room (member count, the user's display name, power levels).

Order of evaluation: `.m.rule.master`, then for each kind in
override, content, room, sender, underride — the user's own rules before the
server defaults of that kind. The first enabled rule whose conditions hold
decides; its actions (without the historical `dont_notify`/`coalesce`) are
the result.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .digits import parse_decimal

KINDS = ("override", "content", "room", "sender", "underride")
HISTORICAL_ACTIONS = ("dont_notify", "coalesce")
MAX_SAFE_INTEGER = 2**53 - 1


def _rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any], **extra: Any) -> dict:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": True,
        "conditions": conditions,
        "actions": actions,
        **extra,
    }


def _match(key: str, pattern: str) -> dict[str, str]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight"}


def default_ruleset(user_id: str) -> dict[str, Any]:
    """The spec's server-default rules (v1.17: no legacy body-based mention rules)."""
    override = [
        _rule(".m.rule.master", [], [], enabled=False),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", user_id),
            ],
            ["notify", SOUND_DEFAULT],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": user_id,
                }
            ],
            ["notify", SOUND_DEFAULT, HIGHLIGHT],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", HIGHLIGHT],
        ),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", HIGHLIGHT],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(
            ".m.rule.room.server_acl",
            [_match("type", "m.room.server_acl"), _match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
    ]
    underride = [
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
            ["notify", SOUND_DEFAULT],
        ),
        _rule(
            ".m.rule.room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
            ["notify", SOUND_DEFAULT],
        ),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ]
    return {
        "global": {
            "override": override,
            "content": [],
            "room": [],
            "sender": [],
            "underride": underride,
        }
    }


# ---- matching helpers


@lru_cache(maxsize=4096)
def _glob(pattern: str, *, word_boundaries: bool) -> re.Pattern[str]:
    """A glob (`*`, `?`) as a case-insensitive regex over the whole value or words."""
    body = "".join(
        ".*?" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    if word_boundaries:
        return re.compile(rf"(?:^|[^A-Za-z0-9_]){body}(?:[^A-Za-z0-9_]|$)", re.IGNORECASE | re.S)
    return re.compile(rf"{body}\Z", re.IGNORECASE | re.S)


@lru_cache(maxsize=1024)
def split_path(key: str) -> tuple[str, ...]:
    """A dot-separated property path, with `\\.` and `\\\\` escapes (spec appendix)."""
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return tuple(parts)


_MISSING = object()


def _lookup(event: Mapping[str, Any], key: str) -> Any:
    value: Any = event
    for part in split_path(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _is_simple_value(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]+)")


def member_count_matches(spec: object, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    match = _COUNT.fullmatch(spec.strip())
    if match is None:
        return False
    operator, number = match.group(1) or "==", parse_decimal(match.group(2).lstrip("0") or "0")
    if number is None:  # more digits than a count can have: more than any room has members
        return operator in ("<", "<=")
    return {
        "==": count == number,
        "<": count < number,
        ">": count > number,
        "<=": count <= number,
        ">=": count >= number,
    }[operator]


@dataclass(frozen=True)
class PushContext:
    """What the conditions ask about the room, supplied by the caller."""

    user_id: str
    member_count: int
    display_name: str | None
    sender_power_level: float
    notification_level: Callable[[str], int | None]
    """The power level needed for a notification key (e.g. "room")."""


def condition_holds(
    condition: Mapping[str, Any], event: Mapping[str, Any], context: PushContext
) -> bool:
    kind = condition.get("kind")
    if kind == "event_match":
        key, pattern = condition.get("key"), condition.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = _lookup(event, key)
        if not isinstance(value, str):
            return False
        if key == "content.body":  # any run of whole words may match
            return bool(_glob(pattern, word_boundaries=True).search(value))
        return bool(_glob(pattern, word_boundaries=False).match(value))
    if kind == "event_property_is":
        key = condition.get("key")
        value = _lookup(event, key) if isinstance(key, str) else _MISSING
        expected = condition.get("value")
        return (
            value is not _MISSING
            and _is_simple_value(value)
            and type(value) is type(expected)
            and value == expected
        )
    if kind == "event_property_contains":
        key = condition.get("key")
        value = _lookup(event, key) if isinstance(key, str) else _MISSING
        expected = condition.get("value")
        return isinstance(value, list) and any(
            _is_simple_value(item) and type(item) is type(expected) and item == expected
            for item in value
        )
    if kind == "contains_display_name":
        body = (event.get("content") or {}).get("body")
        name = context.display_name
        if not isinstance(body, str) or not name:
            return False
        words = rf"(?:^|[^A-Za-z0-9_]){re.escape(name)}(?:[^A-Za-z0-9_]|$)"
        return re.search(words, body, re.IGNORECASE) is not None
    if kind == "room_member_count":
        return member_count_matches(condition.get("is"), context.member_count)
    if kind == "sender_notification_permission":
        key = condition.get("key")
        required = context.notification_level(key) if isinstance(key, str) else None
        return required is not None and context.sender_power_level >= required
    return False  # unrecognised conditions never match


def _rule_matches(
    kind: str, rule: Mapping[str, Any], event: Mapping[str, Any], context: PushContext
) -> bool:
    if kind == "content":
        pattern = rule.get("pattern")
        return isinstance(pattern, str) and condition_holds(
            _match("content.body", pattern), event, context
        )
    if kind == "room":
        return event.get("room_id") == rule.get("rule_id")
    if kind == "sender":
        return event.get("sender") == rule.get("rule_id")
    conditions = rule.get("conditions") or []
    return all(condition_holds(condition, event, context) for condition in conditions)


def ordered_rules(ruleset: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(kind, rule) in evaluation order: master, then user rules before defaults per kind."""
    scope = ruleset.get("global") or {}
    ordered: list[tuple[str, Mapping[str, Any]]] = []
    master = [r for r in scope.get("override", []) if r.get("rule_id") == ".m.rule.master"]
    ordered += [("override", rule) for rule in master]
    for kind in KINDS:
        rules = [r for r in scope.get(kind, []) if r.get("rule_id") != ".m.rule.master"]
        ordered += [(kind, r) for r in rules if not r.get("default")]
        ordered += [(kind, r) for r in rules if r.get("default")]
    return ordered


def evaluate(
    ruleset: Mapping[str, Any], event: Mapping[str, Any], context: PushContext
) -> list[Any] | None:
    """The actions of the first matching enabled rule, or None if no rule matches.

    Never notifies for the user's own events (spec: "Homeservers MUST NOT
    notify ... for events that the user has sent themselves").
    """
    return evaluate_ordered(ordered_rules(ruleset), event, context)


def evaluate_ordered(
    rules: list[tuple[str, Mapping[str, Any]]], event: Mapping[str, Any], context: PushContext
) -> list[Any] | None:
    """`evaluate` over rules already in `ordered_rules` order (callers that keep them)."""
    if event.get("sender") == context.user_id:
        return None
    for kind, rule in rules:
        if rule.get("enabled", True) and _rule_matches(kind, rule, event, context):
            return [a for a in rule.get("actions") or [] if a not in HISTORICAL_ACTIONS]
    return None


def should_notify(actions: list[Any] | None) -> bool:
    return bool(actions) and "notify" in actions


def tweaks(actions: list[Any] | None) -> dict[str, Any]:
    """The `set_tweak` entries of the actions (`highlight` without value means true)."""
    result: dict[str, Any] = {}
    for action in actions or []:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            result[name] = action.get("value", True) if name == "highlight" else action.get("value")
    return result


def is_highlight(actions: list[Any] | None) -> bool:
    return tweaks(actions).get("highlight") is True


def merged_with_defaults(stored: Mapping[str, Any] | None, user_id: str) -> dict[str, Any]:
    """The user's ruleset with any server-default rule it lacks restored.

    Rules the user changed (enabled, actions) keep their changes; new server
    defaults from a newer spec appear in their place.
    """
    defaults = default_ruleset(user_id)
    if not stored:
        return defaults
    result = copy.deepcopy(dict(stored))
    scope = result.setdefault("global", {})
    for kind in KINDS:
        rules = scope.setdefault(kind, [])
        present = {rule.get("rule_id") for rule in rules}
        for rule in defaults["global"][kind]:
            if rule["rule_id"] not in present:
                rules.append(rule)
    return result
