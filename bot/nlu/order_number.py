"""Order numbers are structured data: a pattern finds them exactly, a neural tagger doesn't.

DIET tags order numbers well token by token, but with jieba the spans it returns may carry
stray spaces, split a number written in groups, or mark an amount or a house number. This
component runs after DIET and makes the pattern authoritative for ``order_id``: every run of
16–19 digits (optionally grouped with spaces or dashes, half- or full-width) becomes one
``order_id`` entity spanning first to last digit, and other extractors' ``order_id``
guesses are dropped. Other entities are left alone. ``ticketing.shop.orders.parse_order_number``
normalises the value later. Loaded by Rasa from ``config.yml`` (Rasa puts the working
directory on ``sys.path``); it imports nothing outside Rasa.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.order_pattern import ENTITY, find_order_numbers


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class OrderNumberExtractor(GraphComponent, EntityExtractorMixin):
    """Pattern-based ``order_id`` extraction that overrides other extractors' guesses."""

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "OrderNumberExtractor":
        return cls(config)

    def __init__(self, config: Optional[Dict[Text, Any]] = None) -> None:
        self._config = config or {}

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            found = find_order_numbers(message.get(TEXT) or "")
            others = [e for e in message.get(ENTITIES, []) if e.get("entity") != ENTITY]
            message.set(ENTITIES, others + self.add_extractor_name(found), add_to_output=True)
        return messages
