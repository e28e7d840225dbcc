"""Choose the FallbackClassifier's thresholds on held-out data, not by feel.

Run with the Rasa venv (it loads the model in this process)::

    .venv-rasa/bin/python scripts/calibrate_fallback.py [--model models/kefu.tar.gz]
        [--in-domain tests/nlu_dev] [--off-topic tests/nlu_dev/off_topic.yml ...]

Every message of the in-domain files (every intent but ``out_of_scope``) and of the off-topic
files is parsed once; the classifier's own ranking (what DIET said before the fallback replaced
it) is kept, so each candidate pair (threshold, ambiguity threshold) is scored without
retraining: a message is *rejected* when its top confidence is below the threshold or the top
two are closer than the ambiguity threshold, or when its top intent is ``out_of_scope``, or when
a guard before the fallback already said ``nlu_fallback`` (confidence 1). Printed per pair:
in-domain accuracy (right intent and not rejected), in-domain false rejections, off-topic
rejection per language. The pair to pick is the one with the most off-topic rejected while the
in-domain accuracy stays within a point of its best; the script marks it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the model names the project's own components (bot.nlu.*)
MARKUP = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
THRESHOLDS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
AMBIGUITIES = (0.0, 0.05, 0.1, 0.15)
OUT = "out_of_scope"


@dataclass
class Parsed:
    text: str
    intent: str  # the annotated intent
    ranking: list[tuple[str, float]]  # the classifier's, without the fallback's own entry
    guarded: bool  # a component before the fallback already rejected it

    @property
    def language(self) -> str:
        return "zh" if CJK.search(self.text) else "en"


def examples(path: Path) -> list[tuple[str, str]]:
    """(intent, plain text) of a Rasa NLU YAML file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    found = []
    for item in doc.get("nlu") or []:
        if "intent" not in item:
            continue
        for line in str(item.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                found.append((item["intent"], MARKUP.sub(r"\1", line[2:].strip())))
    return found


def rejected(p: Parsed, threshold: float, ambiguity: float) -> bool:
    if p.guarded or not p.ranking:
        return True
    top = p.ranking[0]
    second = p.ranking[1][1] if len(p.ranking) > 1 else 0.0
    return top[0] == OUT or top[1] < threshold or top[1] - second < ambiguity


def parse_all(model: Path, pairs: list[tuple[str, str]]) -> list[Parsed]:
    from rasa.core.agent import Agent  # the Rasa venv only

    agent = Agent.load(str(model))

    async def run() -> list[Parsed]:
        out = []
        for intent, text in pairs:
            result = await agent.parse_message(text)
            ranking = [(r["name"], float(r["confidence"])) for r in result.get("intent_ranking", [])]
            guarded = bool(ranking) and ranking[0][0] == "nlu_fallback" and ranking[0][1] >= 0.999
            ranking = [r for r in ranking if r[0] != "nlu_fallback"]
            out.append(Parsed(text, intent, ranking, guarded))
        return out

    return asyncio.run(run())


def score(parsed: list[Parsed], threshold: float, ambiguity: float) -> dict[str, float]:
    inside = [p for p in parsed if p.intent != OUT]
    outside = [p for p in parsed if p.intent == OUT]
    right = sum(1 for p in inside if not rejected(p, threshold, ambiguity)
                and p.ranking[0][0] == p.intent)
    false_rej = sum(1 for p in inside if rejected(p, threshold, ambiguity))
    row = {"accuracy": right / max(len(inside), 1),
           "false_rejection": false_rej / max(len(inside), 1)}
    for lang in ("zh", "en"):
        group = [p for p in outside if p.language == lang]
        row[f"rejected_{lang}"] = (sum(1 for p in group if rejected(p, threshold, ambiguity))
                                   / max(len(group), 1))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "kefu.tar.gz")
    parser.add_argument("--in-domain", type=Path, default=ROOT / "tests" / "nlu_dev")
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args(argv)
    pairs = [pair for path in sorted(args.in_domain.glob("*.yml")) for pair in examples(path)]
    if not pairs:
        print(f"no examples under {args.in_domain}", file=sys.stderr)
        return 2
    parsed = parse_all(args.model, pairs)
    rows = [(t, a, score(parsed, t, a)) for t in THRESHOLDS for a in AMBIGUITIES]
    best_accuracy = max(r["accuracy"] for _, _, r in rows)
    eligible = [x for x in rows if x[2]["accuracy"] >= best_accuracy - 0.01]
    pick = max(eligible, key=lambda x: (x[2]["rejected_zh"] + x[2]["rejected_en"],
                                        x[2]["accuracy"]))
    n_in = sum(1 for p in parsed if p.intent != OUT)
    print(f"{len(parsed)} messages: {n_in} in-domain, {len(parsed) - n_in} off-topic")
    print(f"{'thr':>5} {'amb':>5} {'in-acc':>7} {'false-rej':>9} {'oos-zh':>7} {'oos-en':>7}")
    for t, a, r in rows:
        mark = "  <- pick" if (t, a) == pick[:2] else ""
        print(f"{t:5.2f} {a:5.2f} {r['accuracy']:7.3f} {r['false_rejection']:9.3f} "
              f"{r['rejected_zh']:7.3f} {r['rejected_en']:7.3f}{mark}")
    if args.json:
        args.json.write_text(json.dumps([{"threshold": t, "ambiguity": a, **r}
                                         for t, a, r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
