"""bot/rasa_states.py inside the real Rasa: every ask for a history's states answered as
Rasa's own walk answers it, and the conversations answered the same."""

from __future__ import annotations

import json

import pytest

from bot.assistant import RASA_PYTHON
from bot.rasa_config import ROOT
from tests.bot.in_rasa import run_in_rasa

MODEL = ROOT / "models" / "kefu.tar.gz"

CONVERSATIONS = r"""
import asyncio, json, logging, os
logging.disable(logging.WARNING)
from rasa.utils.log_utils import configure_structlog
configure_structlog(logging.WARNING)
from rasa.core.agent import Agent
from rasa.shared.core.domain import Domain
from bot import rasa_states

# refunds and address changes (forms), orders, products, handoff, ratings, noise, a restart
lines = ["你好", "我要退货", "6012", "质量问题", "no", "where is my order", "60123", "/restart",
         "I want a refund for order 6012", "it arrived broken", "yes", "改地址",
         "上海市浦东新区世纪大道100号", "转人工", "充电宝还有货吗", "thanks", "/affirm", "五星",
         "asdfgh jkl", "耳机坏了怎么办 order No.60123", "太慢了 two stars", "bye"]

async def talk(agent, prefix):
    answers = []
    for sender in ("a", "b"):
        for line in (lines if sender == "a" else list(reversed(lines))):
            said = await agent.handle_text(line, sender_id=prefix + sender)
            answers.append(json.dumps([{k: v for k, v in one.items() if k != "recipient_id"}
                                       for one in said], sort_keys=True, default=str))
    return answers

def dumped(states):
    return json.dumps(states, sort_keys=True, default=str)

async def main():
    agent = Agent.load(os.environ["KEFU_MODEL"])  # its in-memory store serialises trackers
    stock = await talk(agent, "stock-")
    rasa_states.install()
    fast, rasas = Domain.states_for_tracker_history, rasa_states._STOCK["states_for_tracker_history"]
    domains = {}
    seen = {"asks": 0, "resumed": 0, "differ": 0, "ignoring rule turns": 0}
    def checked(domain, tracker, *args, **kwargs):
        walks = domain.__dict__.get(rasa_states._WALKS) or {}
        walk = walks.get(rasa_states._key(tracker, *args, **kwargs))
        resumed = walk is not None and rasa_states._continues(
            walk, rasa_states.marks(tracker.applied_events()))
        mine = fast(domain, tracker, *args, **kwargs)
        theirs = rasas(domain, tracker, *args, **kwargs)
        seen["asks"] += 1
        seen["resumed"] += resumed
        seen["differ"] += dumped(mine) != dumped(theirs)
        seen["ignoring rule turns"] += bool(kwargs.get("ignore_rule_only_turns"))
        domains[id(domain)] = domain
        return mine
    Domain.states_for_tracker_history = checked
    answers = await talk(agent, "fast-")
    same = answers == stock
    rasa_states.MAX_WALKS = 1  # forgetting walks: every ask walks from the start again
    again = await talk(agent, "tiny-")
    walks = [len(d.__dict__[rasa_states._WALKS]) for d in domains.values()]
    print(json.dumps({**seen, "same answers": same and again == stock, "answers": len(answers),
                      "walks kept": walks}))
asyncio.run(main())
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="needs .venv-rasa (make setup)")
@pytest.mark.skipif(not MODEL.exists(), reason="needs a trained model (make train)")
def test_every_history_is_walked_as_rasa_walks_it() -> None:
    seen = json.loads(run_in_rasa(CONVERSATIONS, KEFU_MODEL=str(MODEL)))
    assert seen["same answers"] and seen["answers"] == 44
    assert seen["differ"] == 0
    assert seen["asks"] > 200 and seen["ignoring rule turns"] > 50
    # most asks resume a walk (both the first pass's and the forgetful pass's asks count)
    assert seen["resumed"] > seen["asks"] * 0.3
    assert seen["walks kept"] == [1]
