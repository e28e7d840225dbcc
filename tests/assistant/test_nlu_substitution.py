"""Product substitution: what a customer wants must not depend on which product they name.

``tests/nlu_substitution/templates.yml`` holds Chinese and English messages with a ``{product}``
placeholder, each under its intent; ``scripts/nlu_sets.py`` fills in every name and nickname of
every demo-catalog product in the template's language. ``make eval-nlu`` scores that whole
expansion (about 7,000 messages). Here, to stay under a minute (loading the model alone takes
some 30 s of CPU: Rasa builds DIET by tracing a training step), the trained model is loaded
once in the Rasa venv and parses a deterministic cut of about 900 messages: every template with
every third product, every product with a third of the templates, one name per pair and each
product's names in turn, so every template, every product and every name is used
(``nlu_sets.sample``, ``SAMPLE_STEP``). The intent counted is the one the assistant acts on:
a FallbackClassifier answer (``nlu_fallback``) is a miss.

The structure checks need no model; the model test fails (does not skip) without one.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.assistant import RASA_BIN, rasa_env
from scripts.nlu_sets import (
    LANGUAGES, PLACEHOLDER, TEMPLATES, catalog_products, expand, read_templates, sample,
    substitution_scores,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "kefu.tar.gz"
DOMAIN = ROOT / "bot" / "domain"
MIN_TEMPLATES_PER_LANGUAGE = 25
MIN_STABILITY = 0.95
SAMPLE_STEP = 3  # template t with product p when (t + p) % 3 == 0: about 900 of the 7,000 messages

# Runs in .venv-rasa: loads the model once and parses every text of a JSON list, writing
# [{intent, confidence}] (the intent after the FallbackClassifier, as the assistant sees it).
PARSE = r"""
import asyncio, json, logging, sys
logging.disable(logging.WARNING)
import structlog  # Rasa logs every parse at debug level through structlog otherwise
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage

async def main(model, texts_file, out_file):
    agent = Agent.load(model)
    texts = json.load(open(texts_file, encoding="utf-8"))
    out = []
    for text in texts:
        result = await agent.processor.parse_message(UserMessage(text))
        intent = result.get("intent") or {}
        out.append({"intent": intent.get("name"), "confidence": intent.get("confidence")})
    json.dump(out, open(out_file, "w", encoding="utf-8"), ensure_ascii=False)

asyncio.run(main(*sys.argv[1:4]))
"""


def _domain_intents() -> set[str]:
    intents = set()
    for path in DOMAIN.glob("*.yml"):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents", []) or []:
            intents.add(next(iter(item)) if isinstance(item, dict) else str(item))
    return {i for i in intents if not i.startswith("EXTERNAL_")}  # triggered from outside, never typed


# --- no model needed ----------------------------------------------------------------------------


def test_templates_are_readable_with_one_placeholder_and_known_intents() -> None:
    doc = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))
    assert set(doc) <= {"version", *LANGUAGES}
    templates = read_templates()  # raises on a malformed line, a second placeholder, a repeat
    counts = Counter(t["language"] for t in templates)
    assert all(counts[lang] >= MIN_TEMPLATES_PER_LANGUAGE for lang in LANGUAGES), counts
    assert all(t["template"].count(PLACEHOLDER) == 1 for t in templates)
    unknown = {t["intent"] for t in templates} - _domain_intents()
    assert not unknown, f"intents the assistant does not know: {unknown}"
    # every template line of the file was read (none silently dropped)
    lines = [ln for lang in LANGUAGES for block in (doc.get(lang) or {}).values()
             for ln in str(block).splitlines() if ln.strip()]
    assert len(lines) == len(templates)


def test_the_sample_uses_every_template_product_and_name() -> None:
    templates, products = read_templates(), catalog_products()
    assert all(p["names"][lang] for p in products for lang in LANGUAGES), "a product lacks zh or en names"
    messages = expand(templates, products)
    cut = sample(messages, SAMPLE_STEP)
    assert {m["template"] for m in cut} == {t["template"] for t in templates}
    for lang in LANGUAGES:
        assert {m["product"] for m in cut if m["language"] == lang} == {p["product"] for p in products}
    assert {(m["product"], m["name"]) for m in cut} == {(m["product"], m["name"]) for m in messages}
    per_template = Counter(m["template"] for m in cut)
    assert min(per_template.values()) >= len(products) // SAMPLE_STEP, per_template
    assert len({(m["template"], m["product"]) for m in cut}) == len(cut)  # one name per pair


# --- the trained model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict[str, dict], float]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does it first)")
    messages = sample(expand(read_templates(), catalog_products()), SAMPLE_STEP)
    texts = sorted({m["text"] for m in messages})
    work = tmp_path_factory.mktemp("substitution")
    (work / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    start = time.monotonic()
    result = subprocess.run(
        [str(RASA_BIN.parent / "python"), "-c", PARSE, str(MODEL), str(work / "texts.json"),
         str(work / "parsed.json")], cwd=ROOT, env=rasa_env(), text=True, capture_output=True,
        timeout=240)
    seconds = time.monotonic() - start
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    answers = json.loads((work / "parsed.json").read_text(encoding="utf-8"))
    return messages, dict(zip(texts, answers)), seconds


def test_intent_is_stable_when_the_product_changes(parsed) -> None:
    messages, predictions, seconds = parsed
    scores = substitution_scores(messages, predictions)
    assert scores["missing_predictions"] == 0
    assert scores["templates"] == len(read_templates())
    assert scores["products"] == len(catalog_products())
    worst = "\n".join(f"  {t['stability']:.2f} {t['intent']}: {t['template']} read as {t['read_as']}"
                      for t in scores["worst_templates"])
    worst += "\n" + "\n".join(f"  {p['stability']:.2f} {p['product']} read as {p['read_as']}"
                              for p in scores["worst_products"])
    assert scores["stability"] >= MIN_STABILITY, (
        f"stability {scores['stability']:.3f} < {MIN_STABILITY} over {scores['messages']} messages "
        f"(parsed in {seconds:.0f} s); worst templates and products:\n{worst}")
