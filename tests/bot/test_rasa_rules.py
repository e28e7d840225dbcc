"""bot/rasa_rules.py inside the real Rasa: the indexed rule lookup finds what Rasa's finds."""

from __future__ import annotations

import json

import pytest

from bot.assistant import RASA_PYTHON
from bot.rasa_config import ROOT
from tests.bot.in_rasa import run_in_rasa

MODEL = ROOT / "models" / "kefu.tar.gz"

pytestmark = pytest.mark.skipif(not RASA_PYTHON.exists(), reason="needs .venv-rasa (make setup)")

SYNTHETIC = r"""
import json
from rasa.core.policies.rule_policy import RulePolicy
from rasa.shared.core.constants import SHOULD_NOT_BE_SET, PREVIOUS_ACTION, USER
from rasa.shared.nlu.constants import ACTION_NAME, INTENT
from bot import rasa_rules
assert (rasa_rules.SHOULD_NOT_BE_SET, rasa_rules.PREVIOUS_ACTION, rasa_rules.USER,
        rasa_rules.ACTION_NAME, rasa_rules.INTENT) == (
        SHOULD_NOT_BE_SET, PREVIOUS_ACTION, USER, ACTION_NAME, INTENT)
stock = RulePolicy._get_possible_keys
listen = {"action_name": "action_listen"}
rules = [
    [{}, {"prev_action": listen, "user": {"intent": "greet"}}],                 # starter + intent
    [{"prev_action": listen, "user": {"intent": "greet"}}],
    [{"prev_action": listen, "user": {"intent": "greet"}},
     {"prev_action": {"action_name": "utter_greet"}, "user": {"intent": "greet"}}],
    [{"prev_action": {"action_name": "utter_greet"}}],
    [{"prev_action": {"action_text": "hi"}, "user": {"intent": "bye"}}],        # no action name
    [{"prev_action": listen, "user": {"intent": SHOULD_NOT_BE_SET}}],
    [{"prev_action": {"action_name": SHOULD_NOT_BE_SET}, "user": {"intent": "bye"}}],
    [{"user": {"intent": "bye"}}],                                                # no prev action
    [{"prev_action": listen, "user": {"intent": "bye", "entities": ["order_id"]}}],
    [{"prev_action": listen, "active_loop": {"name": "refund_form"}}],
]
lookup = {json.dumps(r, sort_keys=True): "utter_x" for r in rules}
conversations = [
    [], [{}], [{"user": {"intent": "greet"}}],
    [{}, {"prev_action": listen, "user": {"intent": "greet"}}],
    [{"prev_action": listen, "user": {"intent": "greet"}},
     {"prev_action": {"action_name": "utter_greet"}, "user": {"intent": "greet"}}],
    [{"prev_action": {"action_name": "utter_greet"}}],
    [{"prev_action": {"action_text": "hi"}, "user": {"intent": "bye"}}],
    [{"prev_action": listen}], [{"prev_action": listen, "user": {"intent": "bye"}}],
    [{"prev_action": listen, "user": {"intent": "bye", "entities": ("order_id",)}}],
    [{"prev_action": listen, "user": {"intent": "greet"}, "active_loop": {"name": "refund_form"}}],
    [{"prev_action": {"action_name": "utter_greet"}, "user": {"intent": "bye"}}],
]
policy = RulePolicy.__new__(RulePolicy)
found = []
for states in conversations:
    want = stock(policy, lookup, states)
    got = rasa_rules.possible_keys(policy, lookup, states)
    assert got == want, (states, got, want)
    found.append(len(want))
print(json.dumps(found))
"""

CONVERSATIONS = r"""
import asyncio, json, logging, os
logging.disable(logging.WARNING)
from rasa.utils.log_utils import configure_structlog
configure_structlog(logging.WARNING)
from rasa.core.policies.rule_policy import RulePolicy
from bot import rasa_rules
stock = RulePolicy._get_possible_keys
seen = {"calls": 0, "rules": 0, "found": 0, "tested": 0}
def both(self, lookup, states):
    want = stock(self, lookup, states)
    got = rasa_rules.possible_keys(self, lookup, states)
    assert got == want, (states, got, want)
    seen["calls"] += 1
    seen["rules"] = max(seen["rules"], len(lookup))
    seen["found"] += bool(want)
    seen["tested"] += len(rasa_rules._index(self, lookup).candidates(states[-1])) if states else 0
    return want
RulePolicy._get_possible_keys = both
from rasa.core.agent import Agent
lines = ["你好", "hello", "what is your return policy", "我要退货", "no", "where is my order",
         "6012", "转人工", "充电宝还有货吗", "thanks", "/affirm", "bye", "我的订单到哪了",
         "I want a refund for order 6012", "谢谢"]
async def main():
    agent = Agent.load(os.environ["KEFU_MODEL"])
    for sender in ("a", "b"):
        for line in (lines if sender == "a" else list(reversed(lines))):
            await agent.handle_text(line, sender_id=sender)
asyncio.run(main())
print(json.dumps(seen))
"""


def test_the_index_finds_rasas_rules_on_hand_built_states() -> None:
    found = json.loads(run_in_rasa(SYNTHETIC))
    assert any(found) and not all(found)  # some states match rules, some none


@pytest.mark.skipif(not MODEL.exists(), reason="needs a trained model (make train)")
def test_the_index_finds_rasas_rules_through_bilingual_conversations() -> None:
    seen = json.loads(run_in_rasa(CONVERSATIONS, KEFU_MODEL=str(MODEL)))
    assert seen["calls"] > 50 and seen["found"] > 20
    assert seen["tested"] < seen["calls"] * seen["rules"] / 4  # most rules never tested
