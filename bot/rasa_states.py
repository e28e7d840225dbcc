"""A serving Rasa walks a conversation's history once, not again at every prediction.

Rasa 3.6's policies ask for the states of a conversation's history
(``Domain.states_for_tracker_history``) two or three times a prediction, two or three
predictions a turn, and every ask replays every applied event of the session into a fresh
tracker and builds a state at every action: the cost grows with the conversation (about 2 ms
of Rasa's CPU a turn in a six-turn conversation, docs/performance.md). Every state but the last
depends only on the events before it, and a conversation's events are only appended.

Here the walk is remembered per domain, conversation and set of arguments: the events it
replayed, the replayed tracker where it stopped, the states so far and the walk's two flags.
An ask whose applied events begin with those events (compared by kind and timestamp: a
tracker read back from the tracker store is made of new objects)
goes on from there with that tracker (each ask replaces its walk, so nothing else needs the
tracker as it was); any other ask (a rewind, a restart, a form's
repeated executions that ``applied_events`` folds away, a new session) walks from the start
as Rasa does. Callers get copies of the states (the featurizers edit the last one in place).
``tests/bot/test_rasa_states.py`` compares every ask with Rasa's own walk on the trained
model's conversations. Installed by ``bot/rasa_server.py`` for ``rasa run`` only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

PREVIOUS_ACTION = "prev_action"  # rasa.shared.core.constants
RULE_ONLY_SLOTS, RULE_ONLY_LOOPS = "rule_only_slots", "rule_only_loops"
MAX_WALKS = 2000  # remembered walks per domain, least recently used forgotten first
_WALKS = "_kefu_walks"  # the domain's attribute holding them
_APPLIED = "_kefu_applied"  # a tracker's attribute: its applied events, while it has no more
_STOCK: dict[str, Any] = {}  # Rasa's own method, for asks the fast path does not take

State = dict[str, Any]


@dataclass
class Walk:
    """How far a walk got: ``tracker`` has replayed the events marked ``events``; ``states``
    are the states at the actions among them; ``hidden`` and ``ml_action`` are the walk's
    running flags."""

    events: list[tuple[type, float]]
    tracker: Any
    states: list[State]
    hidden: bool
    ml_action: Any


def marks(events: list[Any]) -> list[tuple[type, float]]:
    """What tells events apart whether or not they are the same objects (a tracker store
    makes new ones): their kind and the moment they happened."""
    return [(event.__class__, event.timestamp) for event in events]


def _applied(tracker: Any) -> tuple[list[Any], list[tuple[type, float]]]:
    """The tracker's applied events and their marks, worked out once for the policies' two or
    three asks about the same tracker (until an event is added)."""
    events = tracker.events
    last = events[-1] if events else None
    known = tracker.__dict__.get(_APPLIED)
    if known is not None and known[0] == len(events) and known[1] is last:
        return known[2], known[3]
    applied = tracker.applied_events()
    marked = marks(applied)
    tracker.__dict__[_APPLIED] = (len(events), last, applied, marked)
    return applied, marked


def _continues(walk: Walk, applied: list[tuple[type, float]]) -> bool:
    done = walk.events
    return len(done) <= len(applied) and applied[:len(done)] == done


def _copy_states(states: list[State]) -> list[State]:
    """The states with their parts copied, a part shared by two states still shared (Rasa's
    walk gives a turn's states one user part; a featurizer that edits it edits both)."""
    copies: dict[int, Any] = {}

    def part(sub: Any) -> Any:
        if not isinstance(sub, dict):
            return sub
        copied = copies.get(id(sub))
        if copied is None:
            copied = copies[id(sub)] = dict(sub)
        return copied

    return [{name: part(sub) for name, sub in state.items()} for state in states]


def _key(tracker: Any, omit_unset_slots: bool, ignore_rule_only_turns: bool,
         rule_only_data: dict[str, Any] | None) -> tuple[Any, ...]:
    rule_only = None
    if ignore_rule_only_turns and rule_only_data:
        rule_only = (tuple(rule_only_data.get(RULE_ONLY_SLOTS) or ()),
                     tuple(rule_only_data.get(RULE_ONLY_LOOPS) or ()))
    return (tracker.sender_id, tracker.is_rule_tracker, bool(omit_unset_slots),
            bool(ignore_rule_only_turns), rule_only)


def _step(domain: Any, tracker: Any, hide_rule_turn: bool, states: list[State], hidden: bool,
          ml_action: Any, omit_unset_slots: bool, ignore_rule_only_turns: bool,
          rule_only_data: dict[str, Any] | None) -> tuple[bool, Any]:
    """One prior tracker of Rasa's walk (``Domain.states_for_tracker_history``'s loop body)."""
    if ignore_rule_only_turns:
        if not hidden:  # the previous action of the last turn stories can see
            ml_action = domain._get_prev_action_sub_state(tracker)
        if not tracker.followup_action and not tracker.latest_action_name == \
                tracker.active_loop_name:
            hidden = hide_rule_turn
        if hidden:
            return hidden, ml_action
    state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, rule_only_data)
        if states:
            domain._substitute_rule_only_user_input(state, states[-1])
        if ml_action:
            state[PREVIOUS_ACTION] = ml_action
    states.append(domain._clean_state(state))
    return hidden, ml_action


def states_for_tracker_history(domain: Any, tracker: Any, omit_unset_slots: bool = False,
                               ignore_rule_only_turns: bool = False,
                               rule_only_data: dict[str, Any] | None = None) -> list[State]:
    """``Domain.states_for_tracker_history``, resuming the conversation's last walk."""
    from rasa.shared.core.events import ActionExecuted

    walks: OrderedDict[tuple[Any, ...], Walk] = domain.__dict__.setdefault(_WALKS, OrderedDict())
    key = _key(tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    applied, marked = _applied(tracker)
    walk = walks.pop(key, None)  # goes on in place: a walk that breaks is not kept
    if walk is not None and _continues(walk, marked):
        replayed, states = walk.tracker, walk.states
        hidden, ml_action, start = walk.hidden, walk.ml_action, len(walk.events)
    else:
        replayed, states, hidden, ml_action, start = tracker.init_copy(), [], False, None, 0
    for event in applied[start:]:
        if isinstance(event, ActionExecuted):
            hidden, ml_action = _step(domain, replayed, event.hide_rule_turn, states, hidden,
                                      ml_action, omit_unset_slots, ignore_rule_only_turns,
                                      rule_only_data)
        replayed.update(event)
    walks[key] = Walk(marked, replayed, states, hidden, ml_action)  # the newest, last
    if len(walks) > MAX_WALKS:
        walks.popitem(last=False)
    answer = list(states)
    _step(domain, replayed, False, answer, hidden, ml_action, omit_unset_slots,
          ignore_rule_only_turns, rule_only_data)  # the tracker as it is now: never remembered
    return _copy_states(answer)


def install() -> None:
    """Every ask for a history's states resumes the last walk (``rasa run`` only)."""
    from rasa.shared.core.domain import Domain

    if "states_for_tracker_history" not in _STOCK:
        _STOCK["states_for_tracker_history"] = Domain.states_for_tracker_history
    Domain.states_for_tracker_history = states_for_tracker_history  # type: ignore[assignment]
