"""Fast checks on the NLU development set in ``tests/nlu_dev/`` (no Rasa, no model).

The development set is written from ``docs/nlu-guide.md`` and the demo catalogue only, by
someone who did not read the training data or the test set; ``tests/nlu_dev/README.md`` says
how. These tests keep it well-formed and honest: every file parses as Rasa 3 NLU YAML, only
intents the assistant's domain declares are used, each intent has enough Chinese and English
examples, the off-topic files have breadth, entities follow the guide, there are no duplicates,
and no example equals one of the training data (``nlu_data/nlu/``) or of the test set
(``tests/nlu/``) once entity markup, case, punctuation and spacing are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from tests.assistant.nlu_yaml import (  # noqa: E402  (after the yaml check)
    CJK_RE,
    ENTITY_RE,
    entities as _entities,
    examples as _examples,
    plain as _plain,
)

ROOT = Path(__file__).resolve().parents[2]
DEV_DIR = ROOT / "tests" / "nlu_dev"
TEST_DIR = ROOT / "tests" / "nlu"
TRAIN_DIR = ROOT / "nlu_data" / "nlu"
DOMAIN_DIR = ROOT / "bot" / "domain"

# One file per feature, grouped as in docs/nlu-guide.md, plus the two off-topic files.
FEATURE_FILES = {
    "basics.yml": {"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "help"},
    "orders.yml": {"track_order", "cancel_order", "change_shipping_address"},
    "delivery.yml": {"delivery_time", "shipping_problem"},
    "refunds.yml": {"request_refund", "refund_status", "refund_policy"},
    "products.yml": {"product_info", "product_stock", "restock_notice"},
    "payments.yml": {"payment_issue", "payment_methods"},
    "service.yml": {"complaint", "human_handoff", "ticket_status", "rate"},
}
OFF_TOPIC_FILES = {"off_topic.yml", "gibberish.yml"}
ENTITIES = {"order_id", "product", "amount", "csat_score"}
MIN_PER_LANGUAGE = 30
MIN_OFF_TOPIC_PER_LANGUAGE = 150
MIN_GIBBERISH = 40
MIN_OFF_TOPIC_DOMAINS = 20


def _key(raw: str) -> str:
    """What two examples must not share: the text without markup, case, punctuation or spaces.

    Symbols (emoji, '~') go too. A message made only of punctuation ("????", "。。。") keeps
    its characters, so that noise examples still compare by what was typed.
    """
    text = unicodedata.normalize("NFKC", _plain(raw)).casefold()
    key = "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZSC" and not ch.isspace())
    return key or "".join(text.split())


def _is_zh(raw: str) -> bool:
    return bool(CJK_RE.search(_plain(raw)))


def _nlu_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    files = []
    for p in sorted(directory.rglob("*.yml")):
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "nlu" in doc:
            files.append(p)
    return files


def _domain_intents() -> set[str]:
    intents: set[str] = set()
    for p in sorted(DOMAIN_DIR.glob("*.yml")):
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        for entry in doc.get("intents", []) or []:
            intents.add(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return intents


@pytest.fixture(scope="module")
def devset() -> dict[str, list[tuple[str, str]]]:
    files = {p.name: _examples(p) for p in sorted(DEV_DIR.glob("*.yml"))}
    assert files, "no examples found in tests/nlu_dev/*.yml"
    return files


def _pairs(devset, names) -> list[tuple[str, str]]:
    return [pair for name in sorted(names) for pair in devset.get(name, [])]


def test_files_parse_and_hold_only_intents() -> None:
    names = {p.name for p in DEV_DIR.glob("*.yml")}
    assert names == set(FEATURE_FILES) | OFF_TOPIC_FILES
    for path in sorted(DEV_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert str(doc.get("version")) == "3.1", path.name
        assert set(doc) == {"version", "nlu"}, f"{path.name}: only version and nlu"
        for item in doc["nlu"]:
            assert set(item) == {"intent", "examples"}, f"{path.name}: {item}"
            assert isinstance(item["examples"], str), f"{path.name}: {item['intent']}"
            for line in item["examples"].strip().splitlines():
                assert line.startswith("- ") and line[2:].strip(), f"{path.name}: {line!r}"


def test_only_known_intents_in_the_right_files(devset) -> None:
    known = _domain_intents()
    assert {"greet", "out_of_scope", "restock_notice"} <= known, "could not read bot/domain/*.yml"
    for name, wanted in FEATURE_FILES.items():
        used = {intent for intent, _ in devset[name]}
        assert used == wanted, f"{name}: {sorted(used ^ wanted)}"
        assert used <= known, f"{name}: unknown intents {sorted(used - known)}"
    for name in OFF_TOPIC_FILES:
        assert {intent for intent, _ in devset[name]} == {"out_of_scope"}, name


def test_enough_examples_per_intent_and_language(devset) -> None:
    pairs = _pairs(devset, FEATURE_FILES)
    zh = Counter(i for i, raw in pairs if _is_zh(raw))
    en = Counter(i for i, raw in pairs if not _is_zh(raw))
    wanted = set().union(*FEATURE_FILES.values())
    short = {i: (zh[i], en[i]) for i in sorted(wanted) if min(zh[i], en[i]) < MIN_PER_LANGUAGE}
    assert not short, f"intents with < {MIN_PER_LANGUAGE} zh or en examples (zh, en): {short}"


def test_off_topic_is_broad(devset) -> None:
    pairs = devset["off_topic.yml"]
    zh = sum(_is_zh(raw) for _, raw in pairs)
    assert zh >= MIN_OFF_TOPIC_PER_LANGUAGE and len(pairs) - zh >= MIN_OFF_TOPIC_PER_LANGUAGE, (zh, len(pairs) - zh)
    text = (DEV_DIR / "off_topic.yml").read_text(encoding="utf-8")
    domains = re.findall(r"^# domain: (.+)$", text, flags=re.MULTILINE)
    assert len(set(domains)) >= MIN_OFF_TOPIC_DOMAINS and len(domains) == len(set(domains)), domains
    assert not any(_entities(raw) for _, raw in pairs), "off-topic examples carry no entities"

    noise = devset["gibberish.yml"]
    assert len(noise) >= MIN_GIBBERISH
    assert any(_is_zh(raw) for _, raw in noise) and any(not _is_zh(raw) for _, raw in noise)
    assert not any(_entities(raw) for _, raw in noise)
    assert not any(re.search(r"\d{16}", re.sub(r"[ \-#]", "", raw)) for _, raw in noise), "noise, not order numbers"


def test_entities_follow_the_guide(devset) -> None:
    pairs = _pairs(devset, FEATURE_FILES)
    order_ids = Counter()
    for intent, raw in pairs:
        assert raw.count("[") == raw.count("]") and not re.search(r"\]\s+[({]", raw), raw
        for entity, text, value in _entities(raw):
            assert entity in ENTITIES, raw
            if entity == "order_id":
                digits = re.sub(r"[ \-]", "", text)
                assert digits.isdigit() and 16 <= len(digits) <= 19, raw
                assert text[0].isdigit() and text[-1].isdigit(), raw
                order_ids[digits] += 1
            elif entity == "amount":
                assert re.fullmatch(r"\d+(\.\d+)?", value or text), raw
            elif entity == "csat_score":
                assert (value or text) in {"1", "2", "3", "4", "5"}, raw
            elif entity == "product":
                assert text == text.strip() and value is None, raw
    assert sum(order_ids.values()) >= 50
    assert not [d for d, n in order_ids.items() if n > 1], "each order number is used once"
    # a long digit run outside an order_id annotation would be an unmarked order number
    for _, raw in pairs:
        bare = ENTITY_RE.sub("", raw)
        assert not re.search(r"\d[\d \-]{14,}\d", bare), raw


def test_no_duplicates_inside_the_set(devset) -> None:
    keys = Counter(_key(raw) for pairs in devset.values() for _, raw in pairs)
    dupes = sorted(k for k, n in keys.items() if n > 1)
    assert not dupes, f"examples that appear twice (normalised): {dupes}"


def test_no_overlap_with_training_or_test_data(devset) -> None:
    others = _nlu_files(TRAIN_DIR) + _nlu_files(TEST_DIR)
    if not others:
        pytest.skip("neither nlu_data/nlu/ nor tests/nlu/ holds NLU data yet")
    taken = {_key(raw) for path in others for _, raw in _examples(path)}
    shared = sorted({_plain(raw) for pairs in devset.values() for _, raw in pairs if _key(raw) in taken})
    assert not shared, f"{len(shared)} development examples also in the training or test data: {shared}"

    other_ids = {
        re.sub(r"[ \-]", "", t)
        for path in others for _, raw in _examples(path) for e, t, _ in _entities(raw) if e == "order_id"
    }
    dev_ids = {
        re.sub(r"[ \-]", "", t)
        for pairs in devset.values() for _, raw in pairs for e, t, _ in _entities(raw) if e == "order_id"
    }
    assert not (other_ids & dev_ids), "order numbers shared with the training or test data"
