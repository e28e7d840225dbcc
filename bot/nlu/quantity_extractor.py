"""Money amounts and star ratings are structured data: patterns find them, a tagger guesses.

DIET told the 5 of "5星" from the 5 of "5天" only with a transformer layer and many epochs,
which made training four times slower; with the fast pipeline it found about a third of them.
This component runs after DIET and makes ``bot/nlu/quantities.py`` authoritative for
``amount`` and ``csat_score``: DIET's guesses for those two are dropped and the patterns'
spans added. One more case needs the intent: a lone score ("4", "five") in a message read as
``rate`` is that score. Loaded by Rasa from ``config.yml``; it imports nothing outside Rasa.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.quantities import find_quantities, score_value

OWNED = frozenset({"amount", "csat_score"})
LONE_SCORE = re.compile(r"^\s*([1-5]|one|two|three|four|five|[一二两三四五])\s*[.!。！]?\s*$", re.I)


def _lone_score(text: str) -> Optional[Dict[Text, Any]]:
    match = LONE_SCORE.match(text)
    if match is None:
        return None
    value = score_value(match.group(1))
    if value is None:
        return None
    return {"entity": "csat_score", "start": match.start(1), "end": match.end(1),
            "value": value, "confidence_entity": 1.0}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class QuantityExtractor(GraphComponent, EntityExtractorMixin):
    """Pattern-based ``amount`` and ``csat_score`` that override other extractors' guesses."""

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "QuantityExtractor":
        return cls(config)

    def __init__(self, config: Optional[Dict[Text, Any]] = None) -> None:
        self._config = config or {}

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            found = [{"entity": f.entity, "start": f.start, "end": f.end, "value": f.value,
                      "confidence_entity": 1.0} for f in find_quantities(text)]
            intent = (message.get(INTENT) or {}).get("name")
            if not found and intent == "rate":
                lone = _lone_score(text)
                found = [lone] if lone else []
            others = [e for e in message.get(ENTITIES, []) if e.get("entity") not in OWNED]
            message.set(ENTITIES, others + self.add_extractor_name(found), add_to_output=True)
        return messages
