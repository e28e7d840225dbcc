"""The language and verified entities Rasa's TurnFacts adds to every message
(bot/nlu/speaker.py), and the metadata the gateway's Rasa client sends for them."""

from __future__ import annotations

import pytest

from bot.nlu.speaker import turn_facts
from bot.rasa_client import _message, speaker_metadata


def facts(text, *, language=None, verified=None, entities=(), external=False):
    metadata = speaker_metadata(language, verified)
    if external:
        metadata["is_external"] = True
    return turn_facts(text, list(entities), metadata or None)


@pytest.mark.parametrize(("text", "language"), [
    ("你好", "zh"),
    ("where is my order", "en"),
    ("我的order还没到", "zh"),
    ("退款 refund 多久到账", "zh"),
    ("hi客服", "zh"),
])
def test_each_message_says_its_own_language(text, language) -> None:
    assert facts(text, language="en" if language == "zh" else "zh")["language"] == language


@pytest.mark.parametrize("neutral", ["2026 1125 0000 0123 4567", "👍", '/rate{"csat_score": 5}',
                                     "", None])
def test_a_message_without_words_takes_the_stored_language(neutral) -> None:
    assert facts(neutral, language="en")["language"] == "en"
    assert "language" not in facts(neutral)  # nothing known: the slot keeps its value


def test_a_product_name_does_not_decide_the_language() -> None:
    """A long English product name in a short Chinese question is a Chinese question."""
    text = "Smart Watch Ultra Pro Max 有吗"
    entities = [{"entity": "product", "start": 0, "end": 25, "value": "smart watch ultra"}]
    assert facts(text)["language"] == "en"  # without the entity, five Latin words win
    assert facts(text, entities=entities)["language"] == "zh"
    only_the_name = [{"entity": "product", "start": 0, "end": 4, "value": "小米手环"}]
    assert "language" not in facts("小米手环", entities=only_the_name)  # the slot keeps its own


def test_an_external_intent_keeps_the_language() -> None:
    assert "language" not in facts("EXTERNAL: EXTERNAL_csat_request")
    assert "language" not in facts("customer asked", external=True)


def test_verified_is_the_gateways_word_and_only_a_boolean() -> None:
    assert facts("你好", verified=True)["verified"] is True
    assert facts("你好", verified=False)["verified"] is False
    assert "verified" not in facts("你好")  # no metadata: the slot keeps its value
    assert "verified" not in turn_facts("你好", [], {"kefu": {"verified": "yes"}})
    assert "language" not in turn_facts("👍", [], {"kefu": {"language": "fr"}})
    assert turn_facts("👍", [], "not a dict") == {}


def test_the_rest_body_carries_metadata_only_when_something_is_known() -> None:
    assert _message("widget:v-1", "hi", None, None) == {"sender": "widget:v-1", "message": "hi"}
    assert _message("widget:v-1", "👍", "en", True)["metadata"] == {
        "kefu": {"language": "en", "verified": True}}
