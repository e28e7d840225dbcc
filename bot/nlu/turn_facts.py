"""Who is talking and in which language, read inside Rasa on every message: no action call.

The ``language``, ``verified`` and ``fallback_count`` slots used to be filled by a custom
slot mapping, ``action_identify_customer``: an HTTP call to the action server and a database
read on every turn (about a fifth of Rasa's and the action server's work per turn,
docs/performance.md). The gateway already knows both facts when it stores the message, so it
sends them as message metadata (``{"kefu": {"language": ..., "verified": ...}}``, see
``bot.rasa_client``); this component turns them into two entities, ``language`` and
``verified``, that the slots map from (``bot/domain/core.yml``; ``fallback_count`` resets by
an intent mapping):

- ``language``: the language of the message (``ticketing.core.i18n.language_of_text``) with
  the product names NLU found taken out first (a Chinese question naming "Smart Watch Ultra
  Pro Max" is Chinese); a message with no language of its own (an order number, an emoji, a
  button) takes the language the gateway has stored for the customer, which is the
  conversation's language so far; without either, no entity and the slot keeps its value;
- ``verified``: the gateway's word, a boolean; without metadata (a caller that is not the
  gateway), no entity: the slot keeps its value, and a new conversation is not verified.

Only the gateway (and the desk) hold Rasa's auth token, so metadata is the gateway's say, not
a customer's. Runs after the entity extractors (it needs the product spans); the values are
worked out in ``bot.nlu.speaker`` (pure Python, tested without Rasa).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, METADATA, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.speaker import LANGUAGE, VERIFIED, turn_facts


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class TurnFacts(GraphComponent, EntityExtractorMixin):
    """``language`` and ``verified`` entities from the message and the gateway's metadata."""

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "TurnFacts":
        return cls(config)

    def __init__(self, config: Optional[Dict[Text, Any]] = None) -> None:
        self._config = config or {}

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            facts = turn_facts(message.get(TEXT), message.get(ENTITIES) or [],
                               message.get(METADATA))
            if not facts:
                continue
            others = [e for e in message.get(ENTITIES, [])
                      if e.get("entity") not in (LANGUAGE, VERIFIED)]
            found = [{"entity": name, "value": value, "start": 0, "end": 0, "confidence": 1.0}
                     for name, value in facts.items()]
            message.set(ENTITIES, others + self.add_extractor_name(found), add_to_output=True)
        return messages
