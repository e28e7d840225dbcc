"""Score a trained Rasa model on the independent NLU test set in ``tests/nlu/`` (``make eval-nlu``).

Run with the app venv; Rasa is only called as a program (``.venv-rasa/bin/rasa``)::

    .venv/bin/python scripts/eval_nlu.py                      # newest models/*.tar.gz
    .venv/bin/python scripts/eval_nlu.py --model models/x.tar.gz --baseline --gate

For each model it runs ``rasa test nlu --nlu tests/nlu --model M --out DIR --successes --no-plot``
and reads what Rasa 3.6 writes into DIR:

* ``intent_report.json``: ``accuracy`` and the ``macro avg`` f1-score. Rasa builds the report
  over the intents of the test set only, so a prediction such as ``nlu_fallback`` counts as a
  miss for the right intent but is not a 25th class in the average.
* ``intent_errors.json``: the misclassified messages; the 10 most frequent (intent, predicted)
  pairs are printed, and accuracy per language (zh = the text has a CJK ideograph).
* ``<Extractor>_report.json``, one per entity extractor (e.g. ``DIETClassifier_report.json``,
  ``RegexEntityExtractor_report.json``). These are **token-level** scores of each extractor on
  its own; Rasa 3.6 writes no combined entity report. They are shown for reference
  ("order_id F1 by extractor", the best one in the table).

The order_id figures in the table and the gate are instead the **merged, entity-level** score:
what the assistant actually receives is the union of the entities of all extractors, so for each
test message the predicted order_id spans of every extractor are pooled (the same span from two
extractors counts once), and a prediction counts only if its span is exactly the annotated one
(first to last digit, '#', 'No.' and '订单号' outside, see docs/nlu-guide.md). A partial span from
one extractor next to a correct span from another is a false positive, as it would be for the
bot. The one leniency: whitespace around a predicted span is trimmed before comparing, and a
whitespace-only prediction is dropped (tokenizers that keep spaces as tokens, e.g. Jieba, let
DIET tag them; any action strips them), counted in ``predictions_with_whitespace_trimmed``.
The predictions come from ``<Extractor>_errors.json`` and ``<Extractor>_successes.json`` (hence
``--successes``): every message with an annotated or a predicted entity is in one of
them, with all the predicted entities of the message; the number of annotated order numbers
(the recall denominator) is read from the test set itself.

``--baseline`` also trains Rasa's default pipeline (``tests/nlu/default_config.yml``, what
``rasa init`` writes) on the same training data (``--nlu-data``, default ``nlu_data``) into
``var/nlu-eval/baseline-model/``, reused while a hash of the NLU training files, the config and
the Rasa version is unchanged (``training.json`` next to the model), and scores it the same way.
It trains from a copy of the config: with a pipeline left to the defaults, ``rasa train`` writes
the pipeline it chose back into the config file as comments.

Writes ``var/nlu-eval/summary.json``. ``--gate`` exits 1 unless intent macro-F1 >= 0.93 and
order_id F1 >= 0.95, and, with ``--baseline``, the model's macro-F1 is above the baseline's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MIN_MACRO_F1 = 0.93
MIN_ORDER_ID_F1 = 0.95
ENTITY = "order_id"

# The entity markup Rasa 3 reads: [text](entity), [text](entity:value), [text]{"entity": ...}
ENTITY_RE = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)|\{(?P<dict>[^}]+?)\}|\[(?P<list>.*?)\])"
)
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
NOT_EXTRACTOR_REPORTS = {"intent_report.json", "response_selection_report.json"}


# --- the test set ---------------------------------------------------------------------------


def _entity_names(match: re.Match) -> list[str]:
    if match.group("entity"):
        return [match.group("entity")]
    if match.group("dict"):
        return [json.loads("{" + match.group("dict") + "}")["entity"]]
    return [d["entity"] for d in json.loads("[" + match.group("list") + "]")]


def read_testset(test_dir: Path) -> list[dict[str, Any]]:
    """Every example of the test set: intent, plain text, number of annotated order numbers."""
    examples = []
    for path in sorted(test_dir.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in doc.get("nlu", []) or []:
            if "intent" not in item or not isinstance(item.get("examples"), str):
                continue
            for line in item["examples"].splitlines():
                raw = line.strip()[2:].strip() if line.strip().startswith("- ") else ""
                if not raw:
                    continue
                matches = list(ENTITY_RE.finditer(raw))
                examples.append({
                    "intent": item["intent"],
                    "text": ENTITY_RE.sub(lambda m: m.group("text"), raw),
                    "order_ids": sum(_entity_names(m).count(ENTITY) for m in matches),
                })
    return examples


# --- running Rasa ---------------------------------------------------------------------------


def _rasa_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_rasa(rasa: Path, args: list[str], log: Path) -> tuple[float, float]:
    """Run the Rasa CLI, output to ``log``; returns (wall, CPU) seconds, exits on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.monotonic(), _children_cpu()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.run([str(rasa), *args], check=False, cwd=ROOT, env=_rasa_env(),
                              stdout=out, stderr=subprocess.STDOUT)
    seconds, cpu = time.monotonic() - start, _children_cpu() - cpu_start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        sys.exit(f"error: rasa {' '.join(args)} failed ({proc.returncode}); end of {log}:\n" + "\n".join(tail))
    return seconds, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def evaluate(rasa: Path, model: Path, test_dir: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)  # stale reports would survive: Rasa skips e.g. empty error files
    out.mkdir(parents=True)
    print(f"evaluating {_rel(model)} on {_rel(test_dir)} -> {_rel(out)}", flush=True)
    run_rasa(rasa, ["test", "nlu", "--nlu", str(test_dir), "--model", str(model), "--out", str(out),
                    "--successes", "--no-plot"], out / "rasa-test.log")


def _rasa_version(rasa: Path) -> str:
    found = sorted(rasa.resolve().parent.parent.glob("lib/python*/site-packages/rasa-*.dist-info"))
    return found[-1].name if found else "unknown"


def _is_nlu_file(path: Path) -> bool:
    """What ``rasa train nlu --nlu DIR`` reads: YAML with an ``nlu`` key (or Rasa's JSON format)."""
    if path.suffix == ".json":
        return True
    if path.suffix not in (".yml", ".yaml"):
        return False
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return True  # let Rasa complain; a broken file must change the hash anyway
    return isinstance(doc, dict) and "nlu" in doc


def training_hash(nlu_data: Path, config: Path, rasa: Path) -> str:
    """Hash of the NLU training files (rules, stories and READMEs do not count), the config
    and the Rasa version."""
    h = hashlib.sha256()
    files = [nlu_data] if nlu_data.is_file() else sorted(p for p in nlu_data.rglob("*") if p.is_file())
    for path in filter(_is_nlu_file, files):
        h.update(str(path.relative_to(nlu_data) if path != nlu_data else path.name).encode())
        h.update(b"\0" + path.read_bytes() + b"\0")
    h.update(b"config\0" + config.read_bytes() + b"\0" + _rasa_version(rasa).encode())
    return h.hexdigest()


def baseline_model(rasa: Path, nlu_data: Path, config: Path, out_dir: Path, retrain: bool) -> tuple[Path, dict]:
    """The default-pipeline model, trained again only when its inputs changed."""
    model, meta_file = out_dir / "baseline.tar.gz", out_dir / "training.json"
    digest = training_hash(nlu_data, config, rasa)
    if not retrain and model.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("hash") == digest:
            print(f"baseline: reusing {_rel(model)} (training data and config unchanged; "
                  f"trained in {meta.get('train_seconds', 0):.0f} s)", flush=True)
            return model, {**meta, "reused": True}
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    # Rasa writes the default pipeline it picked back into the config file as comments: train
    # from a copy so the committed file (and so the hash) stays as it is.
    config_copy = out_dir / "config.yml"
    shutil.copyfile(config, config_copy)
    print(f"baseline: training {_rel(config)} on {_rel(nlu_data)} (a few minutes) ...", flush=True)
    seconds, cpu = run_rasa(rasa, ["train", "nlu", "--nlu", str(nlu_data), "--config", str(config_copy),
                                   "--out", str(out_dir), "--fixed-model-name", "baseline"],
                            out_dir / "rasa-train.log")
    if not model.exists():
        sys.exit(f"error: rasa train wrote no {model}")
    meta = {"hash": digest, "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "nlu_data": _rel(nlu_data),
            "config": _rel(config), "rasa": _rasa_version(rasa)}
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"baseline: trained in {seconds:.0f} s ({cpu:.0f} s CPU)", flush=True)
    return model, {**meta, "reused": False}


# --- reading Rasa's reports -----------------------------------------------------------------


def _load(path: Path, default: Any) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _spans(entities: list[dict]) -> set[tuple[int, int]]:
    return {(e["start"], e["end"]) for e in entities if e.get("entity") == ENTITY}


def _trimmed_spans(text: str, entities: list[dict]) -> tuple[set[tuple[int, int]], int]:
    """Predicted order_id spans without surrounding whitespace (whitespace-only ones dropped),
    and how many needed trimming."""
    spans, trimmed = set(), 0
    for start, end in _spans(entities):
        piece = text[start:end]
        if not piece.strip():
            trimmed += 1
            continue
        new = (start + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip())))
        trimmed += new != (start, end)
        spans.add(new)
    return spans, trimmed


def read_results(out: Path, testset: list[dict[str, Any]]) -> dict[str, Any]:
    report = _load(out / "intent_report.json", None)
    if report is None:
        sys.exit(f"error: no intent_report.json in {out}; see {out / 'rasa-test.log'}")
    errors = _load(out / "intent_errors.json", [])
    n = int(report["macro avg"]["support"])
    accuracy = report.get("accuracy")
    if accuracy is None:  # sklearn writes "micro avg" instead when predictions add a label
        accuracy = 1 - len(errors) / n if n else 0.0

    # accuracy per language, from the error list and the test set's own texts
    language = {ex["text"]: "zh" if CJK_RE.search(ex["text"]) else "en" for ex in testset}
    total = Counter(language.values())
    wrong = Counter(language.get(e["text"], "zh" if CJK_RE.search(e["text"]) else "en") for e in errors)
    by_language = {lang: 1 - wrong[lang] / total[lang] for lang in sorted(total) if total[lang]}

    confusions = Counter((e["intent"], e["intent_prediction"]["name"]) for e in errors)

    # token-level per extractor, as Rasa reports it
    extractors: dict[str, dict] = {}
    for path in sorted(out.glob("*_report.json")):
        if path.name in NOT_EXTRACTOR_REPORTS:
            continue
        row = _load(path, {}).get(ENTITY)
        if row:
            extractors[path.name[: -len("_report.json")]] = {
                "precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"],
                "support": row["support"]}

    # merged, entity-level: pool every extractor's order_id spans per message
    messages: dict[str, dict] = {}
    for path in sorted(out.glob("*_errors.json")) + sorted(out.glob("*_successes.json")):
        if path.name.startswith(("intent_", "response_selection_")):
            continue
        for item in _load(path, []):
            if "predicted_entities" in item:
                messages[item["text"]] = item
    gold = sum(ex["order_ids"] for ex in testset)
    tp = fp = trimmed = 0
    for text, item in messages.items():
        target = _spans(item.get("entities", []))
        predicted, n_trimmed = _trimmed_spans(text, item["predicted_entities"])
        tp += len(target & predicted)
        fp += len(predicted - target)
        trimmed += n_trimmed
    merged = {**_prf(tp, fp, gold - tp), "support": gold, "true_positives": tp, "false_positives": fp,
              "predictions_with_whitespace_trimmed": trimmed}

    return {
        "examples": n,
        "intent_accuracy": accuracy,
        "intent_macro_f1": report["macro avg"]["f1-score"],
        "intent_weighted_f1": report.get("weighted avg", {}).get("f1-score"),
        "intent_accuracy_by_language": by_language,
        "order_id": merged,
        "order_id_by_extractor_token_level": extractors,
        "top_confusions": [{"intent": a, "predicted": b, "count": c} for (a, b), c in confusions.most_common(10)],
        "worst_intents": sorted(
            ({"intent": k, "f1": v["f1-score"]} for k, v in report.items()
             if isinstance(v, dict) and k not in ("macro avg", "weighted avg", "micro avg")),
            key=lambda r: r["f1"])[:5],
        "reports": _rel(out),
    }


# --- output ---------------------------------------------------------------------------------


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _rows(r: dict) -> list[tuple[str, float | None]]:
    best = max(r["order_id_by_extractor_token_level"].items(), key=lambda kv: kv[1]["f1"], default=None)
    rows: list[tuple[str, float | None]] = [
        ("test examples", r["examples"]),
        ("intent accuracy", r["intent_accuracy"]),
        ("intent macro-F1", r["intent_macro_f1"]),
    ]
    rows += [(f"  accuracy {lang}", acc) for lang, acc in r["intent_accuracy_by_language"].items()]
    rows += [
        ("order_id precision", r["order_id"]["precision"]),
        ("order_id recall", r["order_id"]["recall"]),
        ("order_id F1", r["order_id"]["f1"]),
        ("  preds whitespace-trimmed", r["order_id"].get("predictions_with_whitespace_trimmed")),
        ("  best extractor F1 (token)", best[1]["f1"] if best else None),
    ]
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.3f}"


def print_table(tuned: dict, base: dict | None) -> None:
    rows = _rows(tuned)
    print()
    if base is None:
        print(f"{'':28} {'model':>8}")
        for name, v in rows:
            print(f"{name:28} {_fmt(v):>8}")
    else:
        print(f"{'':28} {'model':>8} {'baseline':>9} {'diff':>8}")
        for (name, v), (_, b) in zip(rows, _rows(base)):
            diff = "" if v is None or b is None or isinstance(v, int) else f"{v - b:+.3f}"
            print(f"{name:28} {_fmt(v):>8} {_fmt(b):>9} {diff:>8}")
    print()
    for label, r in (("model", tuned), ("baseline", base)):
        if r is None:
            continue
        extractors = ", ".join(f"{k} {v['f1']:.3f}" for k, v in r["order_id_by_extractor_token_level"].items())
        print(f"{label}: order_id F1 by extractor (token-level, Rasa's reports): {extractors or 'none'}")
    print("\nmost frequent confusions of the model (intent -> predicted: count):")
    for c in tuned["top_confusions"] or [{"intent": "none", "predicted": "-", "count": 0}]:
        print(f"  {c['intent']} -> {c['predicted']}: {c['count']}")
    print(f"\nreports: {tuned['reports']}" + (f", {base['reports']}" if base else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="trained model (default: the newest models/*.tar.gz)")
    ap.add_argument("--baseline", action="store_true", help="also train and score Rasa's default pipeline")
    ap.add_argument("--retrain-baseline", action="store_true", help="train the baseline even if unchanged")
    ap.add_argument("--gate", action="store_true",
                    help=f"exit 1 unless macro-F1 >= {MIN_MACRO_F1}, order_id F1 >= {MIN_ORDER_ID_F1} (and > baseline)")
    ap.add_argument("--test-dir", type=Path, default=ROOT / "tests" / "nlu")
    ap.add_argument("--nlu-data", type=Path, default=ROOT / "nlu_data", help="training data for the baseline")
    ap.add_argument("--baseline-config", type=Path, default=ROOT / "tests" / "nlu" / "default_config.yml")
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "nlu-eval")
    ap.add_argument("--rasa", type=Path, default=ROOT / ".venv-rasa" / "bin" / "rasa")
    args = ap.parse_args(argv)

    if not args.rasa.exists():
        sys.exit(f"error: no Rasa CLI at {args.rasa} (make setup)")
    model = args.model
    if model is None:
        found = sorted((ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
        if not found:
            sys.exit("error: no models/*.tar.gz; train one or pass --model")
        model = found[-1]
    if not model.exists():
        sys.exit(f"error: no model at {model}")

    testset = read_testset(args.test_dir)
    if not testset:
        sys.exit(f"error: no test examples in {args.test_dir}")

    evaluate(args.rasa, model, args.test_dir, args.out / "model")
    tuned = read_results(args.out / "model", testset)
    tuned["model"] = _rel(model)

    base = training = None
    if args.baseline:
        base_model, training = baseline_model(args.rasa, args.nlu_data, args.baseline_config,
                                              args.out / "baseline-model", args.retrain_baseline)
        evaluate(args.rasa, base_model, args.test_dir, args.out / "baseline")
        base = read_results(args.out / "baseline", testset)
        base["model"] = _rel(base_model)
        base["training"] = training

    print_table(tuned, base)

    failures = []
    if tuned["intent_macro_f1"] < MIN_MACRO_F1:
        failures.append(f"intent macro-F1 {tuned['intent_macro_f1']:.3f} < {MIN_MACRO_F1}")
    if tuned["order_id"]["f1"] < MIN_ORDER_ID_F1:
        failures.append(f"order_id F1 {tuned['order_id']['f1']:.3f} < {MIN_ORDER_ID_F1}")
    if base is not None and tuned["intent_macro_f1"] <= base["intent_macro_f1"]:
        failures.append(f"intent macro-F1 {tuned['intent_macro_f1']:.3f} not above the baseline's "
                        f"{base['intent_macro_f1']:.3f}")

    summary = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "test_set": _rel(args.test_dir),
        "thresholds": {"intent_macro_f1": MIN_MACRO_F1, "order_id_f1": MIN_ORDER_ID_F1},
        "model": tuned,
        "baseline": base,
        "gate_failures": failures,
        "passed": not failures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"summary: {_rel(args.out / 'summary.json')}")

    if failures:
        print(("GATE FAILED: " if args.gate else "below the gate: ") + "; ".join(failures))
        return 1 if args.gate else 0
    print("gate passed" if args.gate else "within the gate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
