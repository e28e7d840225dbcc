"""The NLU evaluation sets and how predictions on them are scored.

The sets: Rasa NLU YAML test files, and the product-substitution set built from
``tests/nlu_substitution/templates.yml`` and the demo catalog. The scores, from text ->
{intent, confidence} predictions: intent accuracy and macro-F1 (as Rasa's report computes them),
rejection (read as ``out_of_scope`` or ``nlu_fallback``) and substitution stability.

Pure helpers (PyYAML and ``ticketing.demo.catalog`` only, no Rasa), shared by
``scripts/eval_nlu.py`` and ``tests/assistant/test_nlu_substitution.py``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "tests" / "nlu_substitution" / "templates.yml"
PLACEHOLDER = "{product}"
LANGUAGES = ("zh", "en")

# The entity markup Rasa 3 reads: [text](entity), [text](entity:value), [text]{"entity": ...}
ENTITY_RE = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)|\{(?P<dict>[^}]+?)\}|\[(?P<list>.*?)\])"
)
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def language(text: str) -> str:
    """zh when the text has a CJK ideograph (mixed zh/en counts as zh), else en."""
    return "zh" if CJK_RE.search(text) else "en"


# --- Rasa NLU YAML files ------------------------------------------------------------------------


def _entity_names(match: re.Match) -> list[str]:
    if match.group("entity"):
        return [match.group("entity")]
    if match.group("dict"):
        return [json.loads("{" + match.group("dict") + "}")["entity"]]
    return [d["entity"] for d in json.loads("[" + match.group("list") + "]")]


def _example_lines(block: str) -> list[str]:
    lines = (line.strip() for line in block.splitlines())
    return [line[2:].strip() for line in lines if line.startswith("- ") and line[2:].strip()]


def read_examples(paths: Iterable[Path], entity: str = "order_id") -> list[dict[str, Any]]:
    """Every example of these Rasa NLU YAML files: intent, plain text, language, file name and
    the number of annotated ``entity`` values."""
    examples = []
    for path in paths:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in doc.get("nlu", []) or []:
            if "intent" not in item or not isinstance(item.get("examples"), str):
                continue
            for raw in _example_lines(item["examples"]):
                matches = list(ENTITY_RE.finditer(raw))
                text = ENTITY_RE.sub(lambda m: m.group("text"), raw)
                examples.append({
                    "intent": item["intent"], "text": text, "language": language(text),
                    "file": path.name, entity + "s": sum(_entity_names(m).count(entity) for m in matches),
                })
    return examples


def nlu_files(directory: Path) -> list[Path]:
    """The YAML files of a directory that hold NLU data (an ``nlu`` key), sorted."""
    found = []
    for path in sorted(directory.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "nlu" in doc:
            found.append(path)
    return found


def write_nlu_file(path: Path, examples: Iterable[dict[str, Any]], comment: str = "") -> int:
    """Write ``examples`` (intent, text) as a Rasa NLU YAML file; returns the number of unique
    examples written. Texts are plain (no entity markup); a text is written once per intent."""
    by_intent: dict[str, list[str]] = {}
    for ex in examples:
        texts = by_intent.setdefault(ex["intent"], [])
        if ex["text"] not in texts:
            texts.append(ex["text"])
    lines = ['version: "3.1"'] + [f"# {line}" for line in comment.splitlines()] + ["nlu:"]
    for intent, texts in by_intent.items():
        lines += [f"- intent: {intent}", "  examples: |"] + [f"    - {t}" for t in texts]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(len(t) for t in by_intent.values())


# --- the product-substitution set ---------------------------------------------------------------


def read_templates(path: Path = TEMPLATES) -> list[dict[str, str]]:
    """The templates: ``{"language", "intent", "template"}`` each; ValueError when malformed
    (a language other than zh/en, not exactly one placeholder, the wrong language, a repeat)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a mapping")
    unknown = set(doc) - {"version", *LANGUAGES}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}")
    templates, seen = [], set()
    for lang in LANGUAGES:
        section = doc.get(lang) or {}
        if not isinstance(section, dict):
            raise ValueError(f"{path}: {lang} must map intent -> '- template' lines")
        for intent, block in section.items():
            if not isinstance(block, str):
                raise ValueError(f"{path}: {lang}/{intent} must be a block of '- template' lines")
            for line in block.strip().splitlines():
                if not line.strip().startswith("- "):
                    raise ValueError(f"{path}: {lang}/{intent}: {line!r} is not a '- ' line")
            for text in _example_lines(block):
                if text.count(PLACEHOLDER) != 1 or re.search(r"[{}]", text.replace(PLACEHOLDER, "")):
                    raise ValueError(f"{path}: {text!r} needs exactly one {PLACEHOLDER} and no other braces")
                if language(text.replace(PLACEHOLDER, "")) != lang:
                    raise ValueError(f"{path}: {text!r} is not {lang}")
                if text in seen:
                    raise ValueError(f"{path}: {text!r} twice")
                seen.add(text)
                templates.append({"language": lang, "intent": str(intent), "template": text})
    return templates


def catalog_products() -> list[dict[str, Any]]:
    """Every demo-catalog product with its names and nicknames by language (zh = has a CJK
    ideograph, so "T恤" is a Chinese name and "airpods" an English one), without repeats."""
    from ticketing.demo.catalog import PRODUCTS  # the demo shop's fixed table

    products = []
    for p in PRODUCTS:
        names: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        for name in (p.name_zh, p.name_en, *p.aliases):
            bucket = names[language(name)]
            if name not in bucket:
                bucket.append(name)
        products.append({"product": p.name_en, "name_zh": p.name_zh, "names": names})
    return products


def expand(templates: list[dict[str, str]], products: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One message per (template, name of a product in the template's language)."""
    messages = []
    for t in templates:
        for p in products:
            for name in p["names"][t["language"]]:
                messages.append({**t, "product": p["product"], "name": name,
                                 "text": t["template"].replace(PLACEHOLDER, name)})
    return messages


def sample(messages: list[dict[str, str]], step: int = 2) -> list[dict[str, str]]:
    """A smaller, deterministic cut of :func:`expand`'s messages for the test suite: template
    number t takes product number p when ``(t + p) % step == 0`` (with ``step`` 2 every template
    gets every other product and every product half of the templates), one message per pair,
    each product's names in turn. With a product in at least as many pairs as it has names,
    every template, product and name is used."""
    pairs: dict[tuple[str, str], list[dict[str, str]]] = {}
    for m in messages:
        pairs.setdefault((m["template"], m["product"]), []).append(m)
    templates = {t: i for i, t in enumerate(dict.fromkeys(t for t, _ in pairs))}
    products = {p: i for i, p in enumerate(dict.fromkeys(p for _, p in pairs))}
    turn: Counter = Counter()
    chosen = []
    for (template, product), options in pairs.items():
        if (templates[template] + products[product]) % step == 0:
            key = (product, options[0]["language"])
            chosen.append(options[turn[key] % len(options)])
            turn[key] += 1
    return chosen


# --- scoring: intents, rejection, substitution ------------------------------------------------

FALLBACK = "nlu_fallback"  # the FallbackClassifier's label
REJECTED = {"out_of_scope", FALLBACK}
SOCIAL = {"greet", "thank", "affirm", "deny", "goodbye"}


def served(prediction: dict[str, Any] | None, threshold: float | None = None) -> str | None:
    """The intent the assistant acts on. ``rasa test nlu`` undoes the FallbackClassifier (it
    reports the intent under ``nlu_fallback``, with that intent's confidence), so with the
    model's ``threshold`` a confidence below it is read back as ``nlu_fallback``, as
    ``FallbackClassifier`` does. A parse result already saying ``nlu_fallback`` stays so."""
    if not prediction or not prediction.get("intent"):
        return None
    confidence = prediction.get("confidence")
    if threshold is not None and confidence is not None and confidence < threshold:
        return FALLBACK
    return prediction["intent"]


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def intent_scores(rows: list[tuple[str, str | None, str]], by_language: bool = True) -> dict[str, Any]:
    """Accuracy, macro- and weighted F1 of (target, predicted, language) rows the way Rasa's
    report computes them (sklearn over the intents of the targets only: a prediction outside
    them, e.g. ``nlu_fallback``, is a miss, not another class), per language, the most frequent
    confusions and the worst intents."""
    n = len(rows)
    per_intent = {}
    for label in sorted({t for t, _, _ in rows}):
        tp = sum(t == label and p == label for t, p, _ in rows)
        fp = sum(t != label and p == label for t, p, _ in rows)
        fn = sum(t == label and p != label for t, p, _ in rows)
        per_intent[label] = {**prf(tp, fp, fn), "support": tp + fn}
    f1s = [v["f1"] for v in per_intent.values()]
    scores: dict[str, Any] = {
        "examples": n,
        "accuracy": sum(t == p for t, p, _ in rows) / n if n else None,
        "macro_f1": sum(f1s) / len(f1s) if f1s else None,
        "weighted_f1": sum(v["f1"] * v["support"] for v in per_intent.values()) / n if n else None,
    }
    if by_language:
        scores["by_language"] = {
            lang: intent_scores([r for r in rows if r[2] == lang], by_language=False)
            for lang in LANGUAGES if any(r[2] == lang for r in rows)}
        confusions = Counter((t, p) for t, p, _ in rows if t != p)
        scores["top_confusions"] = [{"intent": a, "predicted": b, "count": c}
                                    for (a, b), c in confusions.most_common(10)]
        scores["worst_intents"] = sorted(({"intent": k, "f1": v["f1"]} for k, v in per_intent.items()),
                                         key=lambda r: r["f1"])[:5]
    return scores


def rejection_scores(examples: list[dict[str, Any]], predictions: dict[str, dict], threshold: float | None,
              intents: set[str] = REJECTED) -> dict[str, Any]:
    """The share of ``examples`` the assistant would read as one of ``intents``, overall and per
    language, with up to 10 of them."""
    hits = [ex for ex in examples if served(predictions.get(ex["text"]), threshold) in intents]
    return {
        "examples": len(examples),
        "rate": len(hits) / len(examples) if examples else None,
        "by_language": {lang: sum(ex["language"] == lang for ex in hits) / total
                        for lang in LANGUAGES if (total := sum(ex["language"] == lang for ex in examples))},
        "sample": [{"text": ex["text"], "read_as": served(predictions.get(ex["text"]), threshold)} for ex in hits[:10]],
    }


def _share(hits: int, n: int) -> float | None:
    return hits / n if n else None


def substitution_scores(messages: list[dict[str, str]], predictions: dict[str, dict],
                        threshold: float | None = None, worst: int = 5) -> dict[str, Any]:
    """Stability: the share of expanded messages whose served intent is the template's; the
    share of templates right for every product name; per language; the worst templates and
    products (with what they were read as). ``predictions`` maps text -> {intent, confidence}."""
    rows = []
    for m in messages:
        got = served(predictions.get(m["text"]), threshold)
        rows.append({**m, "predicted": got, "ok": got == m["intent"]})
    missing = sum(r["predicted"] is None for r in rows)

    def group(key: str) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            g = out.setdefault(r[key], {key: r[key], "intent": r["intent"] if key == "template" else None,
                                        "n": 0, "ok": 0, "read_as": Counter()})
            g["n"] += 1
            g["ok"] += r["ok"]
            if not r["ok"]:
                g["read_as"][r["predicted"]] += 1
        result = []
        for g in out.values():
            item = {key: g[key], "stability": g["ok"] / g["n"], "n": g["n"],
                    "read_as": dict(g["read_as"].most_common(3))}
            if key == "template":
                item["intent"] = g["intent"]
            result.append(item)
        return sorted(result, key=lambda g: (g["stability"], g[key]))

    templates, products = group("template"), group("product")
    return {
        "messages": len(rows),
        "templates": len(templates),
        "products": len(products),
        "missing_predictions": missing,
        "stability": _share(sum(r["ok"] for r in rows), len(rows)),
        "stability_by_language": {
            lang: _share(sum(r["ok"] for r in rows if r["language"] == lang),
                         sum(r["language"] == lang for r in rows))
            for lang in LANGUAGES if any(r["language"] == lang for r in rows)},
        "templates_stable_on_every_product": _share(sum(t["stability"] == 1 for t in templates),
                                                    len(templates)),
        "worst_templates": templates[:worst],
        "worst_products": products[:worst],
    }
