"""Each user's push rules: stored as the `m.push_rules` account data, edited by the API.

Spec: `content/client-server-api/modules/push.md` ("Push Rules: API") and
`data/api/client-server/pushrules.yaml`. Keeping the ruleset in account data
means clients also see it in `/sync` (`account_data`), as they expect. The
server defaults are merged in when read, so a rule the spec adds later
appears for existing users too.
"""

from __future__ import annotations

import copy
from typing import Any

from ..core.push_rules import (
    KINDS,
    PushContext,
    evaluate_ordered,
    merged_with_defaults,
    ordered_rules,
)
from ..errors import MatrixError, not_found
from .account_data import AccountData

PUSH_RULES_TYPE = "m.push_rules"


class PushRules:
    def __init__(self, account_data: AccountData) -> None:
        self._account_data = account_data
        self._cache: dict[str, dict[str, Any]] = {}
        self._ordered: dict[str, list[tuple[str, Any]]] = {}
        account_data.changed_elsewhere.append(self._changed_elsewhere)

    def _changed_elsewhere(self, user_id: str, room_id: str | None, event_type: str) -> None:
        """Another process changed account data: drop the ruleset if it was this one
        (an empty type: anything may have changed)."""
        if not event_type:
            self._cache.clear()
            self._ordered.clear()
        elif event_type == PUSH_RULES_TYPE and room_id is None:
            self._cache.pop(user_id, None)
            self._ordered.pop(user_id, None)

    def ruleset(self, user_id: str) -> dict[str, Any]:
        """The user's whole ruleset (read-only: use the editing methods to change it)."""
        cached = self._cache.get(user_id)
        if cached is None:
            stored = self._account_data.get(user_id, None, PUSH_RULES_TYPE)
            cached = merged_with_defaults(stored, user_id)
            self._cache[user_id] = cached
        return cached

    def initialise(self, user_id: str) -> None:
        """Write the default ruleset for a new user (so their first sync shows it)."""
        self._save(user_id, merged_with_defaults(None, user_id))

    def actions_for(self, user_id: str, event: dict, context: PushContext) -> list[Any] | None:
        ordered = self._ordered.get(user_id)
        if ordered is None:
            ordered = self._ordered[user_id] = ordered_rules(self.ruleset(user_id))
        return evaluate_ordered(ordered, event, context)

    # ---- editing

    def _save(self, user_id: str, ruleset: dict[str, Any]) -> None:
        self._account_data.set(user_id, None, PUSH_RULES_TYPE, ruleset)
        self._cache[user_id] = ruleset
        self._ordered.pop(user_id, None)

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown push rule kind {kind!r}.")

    def rules_of_kind(self, user_id: str, kind: str) -> list[dict[str, Any]]:
        """The user's global rules of one kind, in priority order."""
        self._check_kind(kind)
        return self.ruleset(user_id)["global"][kind]

    def find(self, user_id: str, scope: str, kind: str, rule_id: str) -> dict[str, Any]:
        self._check_kind(kind)
        if scope != "global":
            raise not_found(f"Unknown push rule scope {scope!r}.")
        for rule in self.ruleset(user_id)["global"][kind]:
            if rule.get("rule_id") == rule_id:
                return rule
        raise not_found("The push rule was not found.")

    def put_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        body: dict[str, Any],
        *,
        before: str | None,
        after: str | None,
    ) -> None:
        """Create or replace a user-defined rule, placed as `before`/`after` say."""
        self._check_kind(kind)
        if rule_id.startswith(".") or "/" in rule_id or "\\" in rule_id:
            raise MatrixError(
                400, "M_INVALID_PARAM", "Rule ids may not start with '.' or contain slashes."
            )
        actions = body.get("actions")
        if not isinstance(actions, list):
            raise MatrixError(400, "M_BAD_JSON", "`actions` must be a list.")
        rule: dict[str, Any] = {
            "rule_id": rule_id,
            "default": False,
            "enabled": True,
            "actions": actions,
        }
        if kind in ("override", "underride"):
            conditions = body.get("conditions", [])
            if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
                raise MatrixError(400, "M_BAD_JSON", "`conditions` must be a list of objects.")
            rule["conditions"] = conditions
        if kind == "content":
            pattern = body.get("pattern")
            if not isinstance(pattern, str):
                raise MatrixError(400, "M_BAD_JSON", "Content rules need a string `pattern`.")
            rule["pattern"] = pattern
        ruleset = copy.deepcopy(self.ruleset(user_id))
        rules: list[dict[str, Any]] = ruleset["global"][kind]
        existing = next((i for i, r in enumerate(rules) if r.get("rule_id") == rule_id), None)
        if existing is not None:
            rule["enabled"] = rules[existing].get("enabled", True)
            rules.pop(existing)
        anchor_id = before if before is not None else after
        if anchor_id is not None:
            anchor = next((i for i, r in enumerate(rules) if r.get("rule_id") == anchor_id), None)
            if anchor is None or rules[anchor].get("default"):
                raise MatrixError(400, "M_UNKNOWN", f"before/after rule not found: {anchor_id}")
            rules.insert(anchor if before is not None else anchor + 1, rule)
        elif existing is not None:
            rules.insert(existing, rule)
        else:
            first_default = next((i for i, r in enumerate(rules) if r.get("default")), len(rules))
            first_user = next(
                (i for i, r in enumerate(rules) if not r.get("default")), first_default
            )
            rules.insert(min(first_user, first_default), rule)
        self._save(user_id, ruleset)

    def delete_rule(self, user_id: str, scope: str, kind: str, rule_id: str) -> None:
        rule = self.find(user_id, scope, kind, rule_id)
        if rule.get("default"):
            raise MatrixError(400, "M_UNKNOWN", "Server-default rules cannot be deleted.")
        ruleset = copy.deepcopy(self.ruleset(user_id))
        ruleset["global"][kind] = [
            r for r in ruleset["global"][kind] if r.get("rule_id") != rule_id
        ]
        self._save(user_id, ruleset)

    def set_attribute(
        self, user_id: str, scope: str, kind: str, rule_id: str, attribute: str, value: Any
    ) -> None:
        """Set `enabled` or `actions` of a rule (server defaults included)."""
        self.find(user_id, scope, kind, rule_id)
        ruleset = copy.deepcopy(self.ruleset(user_id))
        for rule in ruleset["global"][kind]:
            if rule.get("rule_id") == rule_id:
                rule[attribute] = value
        self._save(user_id, ruleset)
