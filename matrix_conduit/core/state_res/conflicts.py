"""Splitting the state sets to resolve into what they agree on and what they do not.

Spec: `content/rooms/fragments/v2-state-res.md`, *unconflicted state map and conflicted
state set*, and `content/rooms/v1.md`, where "a *conflict* occurs between states where
those states have different `event_ids` for the same `(event_type, state_key)`". The two
versions differ on a key that only some states have: v2 counts it as conflicted (it is
not "present in every S_i"), v1 does not (no two states disagree about it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, str]


@dataclass(frozen=True, slots=True)
class Conflicts:
    unconflicted: dict[StateKey, str]
    """The keys every state agrees on, with their event id."""
    conflicted: dict[StateKey, frozenset[str]]
    """The other keys, with every event id any state gives them."""

    @property
    def conflicted_events(self) -> frozenset[str]:
        """The conflicted state set: all event ids of the conflicted keys."""
        return frozenset().union(*self.conflicted.values())


def split_v2(state_sets: Sequence[StateMap]) -> Conflicts:
    """Unconflicted: present in every state with the same event id. Conflicted: the rest."""
    return _split(state_sets, missing_key_conflicts=True)


def split_v1(state_sets: Sequence[StateMap]) -> Conflicts:
    """Conflicted: the keys two states give different event ids. Unconflicted: the rest."""
    return _split(state_sets, missing_key_conflicts=False)


def _split(state_sets: Sequence[StateMap], *, missing_key_conflicts: bool) -> Conflicts:
    values_by_key: dict[StateKey, set[str]] = {}
    states_with_key: dict[StateKey, int] = {}
    for state in state_sets:
        for key, event_id in state.items():
            values_by_key.setdefault(key, set()).add(event_id)
            states_with_key[key] = states_with_key.get(key, 0) + 1
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, frozenset[str]] = {}
    for key, event_ids in values_by_key.items():
        missing_somewhere = states_with_key[key] < len(state_sets)
        if len(event_ids) == 1 and not (missing_key_conflicts and missing_somewhere):
            unconflicted[key] = next(iter(event_ids))
        else:
            conflicted[key] = frozenset(event_ids)
    return Conflicts(unconflicted, conflicted)
