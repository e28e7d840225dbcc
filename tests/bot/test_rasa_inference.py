"""bot/rasa_inference.py inside the real Rasa: the same parses and answers as Rasa's own code."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot import rasa_inference
from bot.assistant import RASA_PYTHON
from bot.rasa_config import ROOT
from tests.bot.in_rasa import run_in_rasa
from ticketing.core.i18n import language_of_text

MODEL = ROOT / "models" / "kefu.tar.gz"

needs_rasa = pytest.mark.skipif(not RASA_PYTHON.exists(), reason="needs .venv-rasa (make setup)")

SPARSE = r"""
import json
import numpy as np, scipy.sparse
from rasa.shared.nlu.training_data.features import Features
from bot import rasa_inference
rng = np.random.default_rng(7)
checked = 0
for rows, left_width, right_width in [(1, 5, 3), (4, 5000, 10000), (7, 1, 1), (3, 20, 0)]:
    for make, other in ((scipy.sparse.coo_matrix, scipy.sparse.coo_matrix),
                        (scipy.sparse.csr_matrix, scipy.sparse.coo_matrix),
                        (scipy.sparse.csr_matrix, scipy.sparse.csr_matrix)):
        left = make(rng.integers(0, 3, (rows, left_width)) * (rng.random((rows, left_width)) < .01))
        right = other(rng.integers(0, 3, (rows, right_width)).astype(np.float32))
        stock = Features(left.copy(), "sequence", "text", "a")
        stock.combine_with_features(Features(right.copy(), "sequence", "text", "b"))
        fast = Features(left.copy(), "sequence", "text", "a")
        rasa_inference.combine_sparse(fast, Features(right.copy(), "sequence", "text", "b"))
        assert fast.features.format == stock.features.format
        assert fast.features.dtype == stock.features.dtype
        assert fast.features.shape == stock.features.shape
        assert (fast.features.toarray() == stock.features.toarray()).all()
        checked += 1
try:
    rasa_inference.combine_sparse(Features(scipy.sparse.coo_matrix((2, 3)), "sequence", "text", "a"),
                                  Features(scipy.sparse.coo_matrix((3, 3)), "sequence", "text", "b"))
except ValueError:
    checked += 1
print(json.dumps(checked))
"""

CONVERSATIONS = r"""
import asyncio, json, logging, os
import numpy as np
logging.disable(logging.WARNING)
from rasa.utils.log_utils import configure_structlog
configure_structlog(logging.WARNING)
from rasa.core.agent import Agent
from bot import rasa_inference
lines = ["你好", "hello", "what is your return policy", "我要退货", "no", "where is my order",
         "6012", "转人工", "充电宝还有货吗", "thanks", "/affirm", "bye", "我的订单到哪了",
         "I want a refund for order 6012", "谢谢", "is the power bank in stock", "asdfgh jkl",
         "耳机坏了怎么办 order No.60123", "五星", "太慢了 two stars"]

async def talk(agent, prefix):
    parses, answers = [], []
    for line in lines:
        parses.append(json.dumps(await agent.parse_message(line), sort_keys=True, default=str))
    for sender in ("a", "b"):
        for line in (lines if sender == "a" else list(reversed(lines))):
            said = await agent.handle_text(line, sender_id=prefix + sender)
            answers.append(json.dumps([{k: v for k, v in one.items() if k != "recipient_id"}
                                       for one in said], sort_keys=True, default=str))
    return parses, answers

async def main():
    agent = Agent.load(os.environ["KEFU_MODEL"])
    stock = await talk(agent, "stock-")
    rasa_inference.install()
    ran = {"graphs": 0, "direct": 0, "handed back": 0}
    runner, inner = type(agent.processor.graph_runner), rasa_inference.run_in_order
    def counted(self, *args, **kwargs):
        ran["graphs"] += 1
        return inner(self, *args, **kwargs)
    runner.run = counted
    fast = await talk(agent, "fast-")
    assert fast[0] == stock[0], [(a, b) for a, b in zip(*fast[0:1], *stock[0:1]) if a != b][:2]
    assert fast[1] == stock[1], [(a, b) for a, b in zip(fast[1], stock[1]) if a != b][:2]
    diet = [node._component for node in agent.processor.graph_runner._instantiated_nodes.values()
            if type(node._component).__name__ == "DIETClassifier"][0].model
    ran["direct"] = int(rasa_inference._DIRECT in diet.__dict__)
    # a batch that does not fit the signature goes Rasa's own way
    function, shapes = diet.__dict__[rasa_inference._DIRECT]
    stock_predict = rasa_inference._STOCK["predict"]
    def sentinel(self, batch):
        ran["handed back"] += 1
        return {}
    rasa_inference._STOCK["predict"] = sentinel
    wrong = [np.zeros([1] * (rank or 1), dtype=np.float64) for _, rank, _ in shapes]
    assert rasa_inference.predict(diet, wrong) == {}
    assert rasa_inference.predict(diet, wrong[:-1]) == {}
    rasa_inference._STOCK["predict"] = stock_predict
    # a freshly loaded model is warm after the warm-up: DIET's direct path is ready
    fresh = Agent.load(os.environ["KEFU_MODEL"])
    await rasa_inference.warm_up(fresh)
    fresh_diet = [node._component for node in fresh.processor.graph_runner._instantiated_nodes.values()
                  if type(node._component).__name__ == "DIETClassifier"][0].model
    ran["warm"] = int(rasa_inference._DIRECT in fresh_diet.__dict__)
    print(json.dumps({**ran, "parses": len(fast[0]), "answers": len(fast[1])}))
asyncio.run(main())
"""


@needs_rasa
def test_sparse_features_side_by_side_are_scipys_hstack() -> None:
    assert json.loads(run_in_rasa(SPARSE)) == 13


@needs_rasa
@pytest.mark.skipif(not MODEL.exists(), reason="needs a trained model (make train)")
def test_the_fast_paths_parse_and_answer_as_rasa_does() -> None:
    ran = json.loads(run_in_rasa(CONVERSATIONS, KEFU_MODEL=str(MODEL)))
    assert ran["parses"] == 20 and ran["answers"] == 40
    assert ran["graphs"] > 100  # every parse and prediction went through run_in_order
    assert ran["direct"] == 1 and ran["handed back"] == 2
    assert ran["warm"] == 1


def test_a_starting_rasa_parses_a_line_in_each_language_before_it_listens(caplog) -> None:
    said: list[object] = []

    class Agent:
        processor = object()

        async def parse_message(self, line: str) -> None:
            said.append(line)
            if len(said) > 3:
                raise RuntimeError("broken model")

    agent = Agent()

    async def load(*args: object, **kwargs: object) -> Agent:
        said.append(("loaded", args, kwargs))
        return agent

    loader = rasa_inference.warmed(load)
    assert getattr(loader, "kefu_warmed", False)
    assert asyncio.run(loader("model", app="app")) is agent
    assert said == [("loaded", ("model",), {"app": "app"}), *rasa_inference.WARM_UP_LINES]
    assert {language_of_text(line) for line in rasa_inference.WARM_UP_LINES} == {"zh", "en"}
    # a warm-up that fails is logged and the server still starts; no model, no warm-up
    assert asyncio.run(loader("model")) is agent
    assert "warm-up parse failed" in caplog.text
    asyncio.run(rasa_inference.warm_up(None))
