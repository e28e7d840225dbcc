"""The values of the ``language`` and ``verified`` entities of a message (``turn_facts.py``
is the Rasa component around this; pure Python, so the tests need no Rasa)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ticketing.core.i18n import language_of_text

METADATA_KEY = "kefu"  # the gateway's part of a message's metadata
LANGUAGE, VERIFIED = "language", "verified"  # the entities (and the slots they fill)
LANGUAGES = ("zh", "en")


def turn_facts(text: Optional[str], entities: List[Dict[str, Any]],
               metadata: Any) -> Dict[str, Any]:
    """The entities' values: ``{"language": "zh"|"en", "verified": bool}``, each only when
    known (see the module's docstring)."""
    ours = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    ours = ours if isinstance(ours, dict) else {}
    external = bool(isinstance(metadata, dict) and metadata.get("is_external")) or \
        str(text or "").startswith("EXTERNAL: ")
    facts: Dict[str, Any] = {}
    # a triggered intent's text ("EXTERNAL: <name>") says nothing about the language
    language = None if external else language_of_text(text, names=_product_spans(text, entities))
    stored = ours.get(LANGUAGE)
    language = language or (stored if stored in LANGUAGES else None)
    if language:
        facts[LANGUAGE] = language
    if isinstance(ours.get(VERIFIED), bool):
        facts[VERIFIED] = ours[VERIFIED]
    return facts


def _product_spans(text: Optional[str], entities: List[Dict[str, Any]]) -> List[str]:
    """The product names NLU found in the message, as written."""
    text = str(text or "")
    spans = []
    for entity in entities:
        if entity.get("entity") != "product":
            continue
        start, end = entity.get("start"), entity.get("end")
        found = text[start:end] if isinstance(start, int) and isinstance(end, int) else None
        spans.append(found or str(entity.get("value") or ""))
    return spans
