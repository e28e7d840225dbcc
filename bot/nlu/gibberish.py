"""Keyboard noise is not a message: it goes to the fallback, not to the nearest intent.

DIET must pick one of the intents for any text, and for random letters ("asdkjh", "qwerty")
the nearest were the short social ones, mostly ``thank`` — so noise got a "you're welcome" and
even reset the "two fallbacks, then a human" count. This component runs after DIETClassifier
and before FallbackClassifier; when the message is keyboard noise it sets the intent to
``nlu_fallback`` with confidence 1.0, and the assistant's fallback rule answers (and counts).

The decision lives in ``bot/nlu/gibberish_rules.py`` (stdlib only, unit-tested without Rasa),
which is conservative: a message with any CJK text, digit (order numbers, amounts, models like
X200), emoji or non-ASCII letter is never noise, nor is one with any word the vocabulary knows
or any token of one or two letters (ok, kk, hi, kf, qs). The component is trainable only in
that it learns the vocabulary: every Latin token of the NLU training examples (out_of_scope
examples only where they are not noise themselves) and of the lookup tables (product names),
persisted as JSON in the model; the built-in list covers the rest.

The intent ranking becomes ``nlu_fallback`` (1.0) then ``out_of_scope`` (0.0), which is what
the guide calls such messages: FallbackClassifier sees a clear winner and leaves it, and
``rasa test nlu``, which reads the ranking's second entry when the first is the fallback,
scores the message as out_of_scope. The intent DIET had chosen is logged at debug level.
Loaded by Rasa from ``config.yml`` (Rasa puts the working directory on ``sys.path``); it
imports nothing outside Rasa and the standard library.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.gibberish_rules import GibberishDetector
from bot.nlu.noise_shapes import is_noise_shape

logger = logging.getLogger(__name__)
FILE_NAME = "gibberish_vocabulary.json"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class GibberishGuard(GraphComponent, IntentClassifier):
    """Sets ``nlu_fallback`` (confidence 1.0) for keyboard noise; other messages pass as they are."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # the intent the ranking puts second, under the fallback (None: nothing)
            "noise_intent": "out_of_scope",
            # examples of these intents teach the vocabulary only their non-noise tokens
            "noise_intents": ["out_of_scope", "nlu_fallback"],
        }

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "GibberishGuard":
        return cls(config, model_storage, resource)

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 detector: Optional[GibberishDetector] = None) -> None:
        self._config = {**self.get_default_config(), **(config or {})}
        self._model_storage = model_storage
        self._resource = resource
        self._detector = detector or GibberishDetector(noise_intents=self._config["noise_intents"])

    def train(self, training_data: TrainingData) -> Resource:
        detector = GibberishDetector(noise_intents=self._config["noise_intents"])
        detector.learn((ex.get(TEXT) or "", ex.get(INTENT)) for ex in training_data.intent_examples)
        detector.learn_words(
            str(element) for table in training_data.lookup_tables for element in table.get("elements", [])
            if isinstance(element, str)
        )
        self._detector = detector
        with self._model_storage.write_to(self._resource) as model_dir:
            (model_dir / FILE_NAME).write_text(json.dumps(detector.to_dict(), ensure_ascii=False), encoding="utf-8")
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "GibberishGuard":
        try:
            with model_storage.read_from(resource) as model_dir:
                data = json.loads((model_dir / FILE_NAME).read_text(encoding="utf-8"))
            detector = GibberishDetector.from_dict(data)
        except (ValueError, OSError):
            logger.warning("GibberishGuard: no trained vocabulary in the model, using the built-in list")
            detector = None
        return cls(config, model_storage, resource, detector)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            noise = self._detector.noise_tokens(text) or is_noise_shape(text)
            if not noise:
                continue
            logger.debug("GibberishGuard: %r is keyboard noise (was %s)", message.get(TEXT), message.get(INTENT))
            fallback = {INTENT_NAME_KEY: DEFAULT_NLU_FALLBACK_INTENT_NAME, PREDICTED_CONFIDENCE_KEY: 1.0}
            ranking = [dict(fallback)]
            if self._config.get("noise_intent"):
                ranking.append({INTENT_NAME_KEY: self._config["noise_intent"], PREDICTED_CONFIDENCE_KEY: 0.0})
            message.set(INTENT, fallback, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
