"""Fast checks on the independent NLU test set in ``tests/nlu/`` (no Rasa needed).

The set is scored by ``scripts/eval_nlu.py``; these tests only keep it well-formed: it parses,
covers the 24 intents of ``docs/nlu-guide.md`` it was written for in both languages, annotates order numbers
the guide's way, and shares no example with the training data in ``nlu_data/nlu/``.
"""

from __future__ import annotations

import re
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
TEST_DIR = ROOT / "tests" / "nlu"
TRAIN_DIR = ROOT / "nlu_data" / "nlu"
GUIDE = ROOT / "docs" / "nlu-guide.md"

INTENTS = {
    "greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "help", "out_of_scope",
    "track_order", "cancel_order", "change_shipping_address", "request_refund", "refund_status",
    "refund_policy", "delivery_time", "shipping_problem", "product_info", "product_stock",
    "payment_issue", "payment_methods", "complaint", "human_handoff", "ticket_status", "rate",
}
ENTITIES = {"order_id", "product", "amount", "csat_score"}
MIN_PER_LANGUAGE = 10


def _normal(raw: str) -> str:
    return " ".join(_plain(raw).casefold().split())


def _test_files() -> list[Path]:
    return [p for p in sorted(TEST_DIR.glob("*.yml")) if "nlu" in (yaml.safe_load(p.read_text(encoding="utf-8")) or {})]


@pytest.fixture(scope="module")
def testset() -> list[tuple[str, str]]:
    pairs = [pair for path in _test_files() for pair in _examples(path)]
    assert pairs, "no examples found in tests/nlu/*.yml"
    return pairs


def test_files_parse_and_hold_only_intents() -> None:
    files = _test_files()
    assert len(files) >= 8
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert str(doc.get("version")) == "3.1", path.name
        assert set(doc) == {"version", "nlu"}, f"{path.name}: only version and nlu"
        for item in doc["nlu"]:
            assert set(item) == {"intent", "examples"}, f"{path.name}: {item}"
            for line in item["examples"].strip().splitlines():
                assert line.startswith("- "), f"{path.name}: {line!r}"


def test_intents_match_the_guide(testset) -> None:
    assert {intent for intent, _ in testset} == INTENTS
    guide = GUIDE.read_text(encoding="utf-8").split("## Entities")[0]
    in_guide = set(re.findall(r"^\| ([a-z_]+) \|", guide, flags=re.MULTILINE)) - {"intent"}
    # restock_notice came after this set was written: the development set (tests/nlu_dev) has it
    assert in_guide == INTENTS | {"restock_notice"}


def test_both_languages_per_intent(testset) -> None:
    zh = Counter(i for i, raw in testset if CJK_RE.search(_plain(raw)))
    en = Counter(i for i, raw in testset if not CJK_RE.search(_plain(raw)))
    short = {i: (zh[i], en[i]) for i in INTENTS if zh[i] < MIN_PER_LANGUAGE or en[i] < MIN_PER_LANGUAGE}
    assert not short, f"intents with < {MIN_PER_LANGUAGE} zh or en examples (zh, en): {short}"


def test_entities_follow_the_guide(testset) -> None:
    order_ids = 0
    for intent, raw in testset:
        for entity, text, value in _entities(raw):
            assert entity in ENTITIES, raw
            if entity == "order_id":
                order_ids += 1
                digits = re.sub(r"[ \-]", "", text)
                assert digits.isdigit() and 16 <= len(digits) <= 19, raw
                assert text[0].isdigit() and text[-1].isdigit(), raw
            elif entity == "amount":
                assert re.fullmatch(r"\d+(\.\d+)?", value or text), raw
            elif entity == "csat_score":
                assert (value or text) in {"1", "2", "3", "4", "5"}, raw
    assert order_ids >= 60


def test_no_duplicates_inside_the_set(testset) -> None:
    counts = Counter(_normal(raw) for _, raw in testset)
    assert not [t for t, n in counts.items() if n > 1]


def test_order_numbers_are_unique(testset) -> None:
    ids = [re.sub(r"[ \-]", "", t) for _, raw in testset for e, t, _ in _entities(raw) if e == "order_id"]
    assert len(ids) == len(set(ids))


def test_no_overlap_with_training_data(testset) -> None:
    train_files = sorted(TRAIN_DIR.rglob("*.yml")) if TRAIN_DIR.is_dir() else []
    if not train_files:
        pytest.skip("no training data in nlu_data/nlu/ yet")
    train = {_normal(raw) for path in train_files for _, raw in _examples(path)}
    shared = sorted({_plain(raw) for _, raw in testset if _normal(raw) in train})
    assert not shared, f"{len(shared)} test examples also in the training data: {shared}"

    train_ids = {
        re.sub(r"[ \-]", "", t)
        for path in train_files for _, raw in _examples(path) for e, t, _ in _entities(raw) if e == "order_id"
    }
    test_ids = {re.sub(r"[ \-]", "", t) for _, raw in testset for e, t, _ in _entities(raw) if e == "order_id"}
    assert not (train_ids & test_ids), "order numbers copied between training and test data"
