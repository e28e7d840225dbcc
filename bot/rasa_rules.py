"""A serving Rasa's RulePolicy tests only the rules that can match the conversation's state.

Rasa 3.6's RulePolicy finds a prediction's rules by testing every learned rule against the
conversation's current state, then against the state before it, and so on
(``RulePolicy._get_possible_keys``): Kefu's ~130 rules, two or three lookups a prediction,
two or three predictions a turn, about 2 ms of Rasa's CPU a turn, nearly all of it spent
rejecting rules on the current state's previous action or intent alone.

Here each lookup table's rules are indexed once by those two features of their last state,
and only the rules whose features are unset or equal to the conversation's are tested, by
Rasa's own ``_is_rule_applicable``, state by state as before. A rule is left out only where
Rasa's check would refuse it (its last state names a previous action or an intent the
conversation's current state does not have), so the rules found are the same set;
``tests/bot/test_rasa_rules.py`` compares both on the trained model's rules. Installed by
``bot/rasa_server.py`` for ``rasa run`` only: training keeps Rasa's own lookup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

PREVIOUS_ACTION, USER, ACTION_NAME, INTENT = "prev_action", "user", "action_name", "intent"
SHOULD_NOT_BE_SET = "should_not_be_set"  # rasa.shared.core.constants
State = dict[str, dict[str, Any]]


def _required(state: State, part: str, name: str) -> str | None:
    """The value a rule's state requires of ``part.name`` (None: it requires none we index)."""
    value = (state.get(part) or {}).get(name)
    return value if isinstance(value, str) and value and value != SHOULD_NOT_BE_SET else None


class RuleIndex:
    """The rules of one lookup table by (previous action, intent) of their last state."""

    def __init__(self, keys: list[str], parse: Callable[[str], list[State]]) -> None:
        self.size = len(keys)
        self.unindexed: list[str] = []  # conversation starters: Rasa checks them otherwise
        self.by_features: dict[tuple[str | None, str | None], list[str]] = defaultdict(list)
        for key in keys:
            states = parse(key)
            last = states[-1] if states else {}
            if not last.get(PREVIOUS_ACTION):
                self.unindexed.append(key)
                continue
            self.by_features[(_required(last, PREVIOUS_ACTION, ACTION_NAME),
                              _required(last, USER, INTENT))].append(key)

    def candidates(self, state: State) -> set[str]:
        """Every rule that may match ``state`` (a superset of those that do)."""
        action = (state.get(PREVIOUS_ACTION) or {}).get(ACTION_NAME)
        intent = (state.get(USER) or {}).get(INTENT)
        found = set(self.unindexed)
        for wanted_action in {None, action if isinstance(action, str) else None}:
            for wanted_intent in {None, intent if isinstance(intent, str) else None}:
                found.update(self.by_features.get((wanted_action, wanted_intent), ()))
        return found


def _index(policy: Any, lookup: dict[str, Any]) -> RuleIndex:
    """The index of ``lookup``, built once (a lookup table does not change while serving)."""
    cache: dict[int, tuple[dict[str, Any], RuleIndex]] = policy.__dict__.setdefault(
        "_kefu_rule_indexes", {})
    entry = cache.get(id(lookup))
    if entry is None or entry[0] is not lookup or entry[1].size != len(lookup):
        entry = (lookup, RuleIndex(list(lookup), policy._rule_key_to_state))
        cache[id(lookup)] = entry
    return entry[1]


def possible_keys(policy: Any, lookup: dict[str, Any], states: list[State]) -> set[str]:
    """``RulePolicy._get_possible_keys``, testing only the indexed candidates."""
    if not states:
        return set(lookup)
    current = states[-1]
    possible = {key for key in _index(policy, lookup).candidates(current)
                if policy._is_rule_applicable(key, 0, current)}
    for turn_index, state in enumerate(reversed(states[:-1]), start=1):
        if not possible:
            break
        possible = {key for key in possible
                    if policy._is_rule_applicable(key, turn_index, state)}
    return possible


def install() -> None:
    """RulePolicy looks its rules up through the index (``rasa run`` only)."""
    from rasa.core.policies.rule_policy import RulePolicy

    if hasattr(RulePolicy, "_get_possible_keys") and hasattr(RulePolicy, "_is_rule_applicable"):
        RulePolicy._get_possible_keys = possible_keys  # type: ignore[assignment]
