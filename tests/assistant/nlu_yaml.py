"""Reading Rasa 3 NLU YAML the way the NLU set tests need it (no Rasa): examples, entities.

Shared by the structure tests of the test set (``test_nlu_testset.py``) and of the
development set (``test_nlu_devset.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

# The entity markup Rasa 3 reads: [text](entity), [text](entity:value), [text]{"entity": ...}
ENTITY_RE = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)|\{(?P<dict>[^}]+?)\}|\[(?P<list>.*?)\])"
)
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def examples(path: Path) -> list[tuple[str, str]]:
    """(intent, raw example) pairs of one Rasa NLU YAML file; [] when it holds no NLU data."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    pairs = []
    for item in doc.get("nlu", []) or []:
        if not isinstance(item, dict) or "intent" not in item:
            continue
        found = item.get("examples", "")
        if isinstance(found, str):
            lines = [ln.strip() for ln in found.splitlines() if ln.strip()]
            texts = [ln[2:].strip() if ln.startswith("- ") else ln for ln in lines]
        else:  # the long form: a list of {text: ...}
            texts = [e["text"] if isinstance(e, dict) else str(e) for e in found]
        pairs.extend((item["intent"], t) for t in texts)
    return pairs


def entities(raw: str) -> list[tuple[str, str, str | None]]:
    """(entity, text, value) of each annotation in a raw example."""
    found = []
    for m in ENTITY_RE.finditer(raw):
        if m.group("entity"):
            found.append((m.group("entity"), m.group("text"), m.group("value")))
        elif m.group("dict"):
            d = json.loads("{" + m.group("dict") + "}")
            found.append((d["entity"], m.group("text"), d.get("value")))
        else:
            for d in json.loads("[" + m.group("list") + "]"):
                found.append((d["entity"], m.group("text"), d.get("value")))
    return found


def plain(raw: str) -> str:
    """The example as typed: the entity markup replaced by its text."""
    return ENTITY_RE.sub(lambda m: m.group("text"), raw)
