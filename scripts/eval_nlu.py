"""Score a trained Rasa model on the independent NLU test set in ``tests/nlu/`` (``make eval-nlu``),
on the development set in ``tests/nlu_dev/`` and on product substitution.

Run with the app venv; Rasa is only called as a program (``.venv-rasa/bin/rasa``)::

    .venv/bin/python scripts/eval_nlu.py                      # newest models/*.tar.gz
    .venv/bin/python scripts/eval_nlu.py --model models/x.tar.gz --baseline --gate

For each model it runs ``rasa test nlu --nlu tests/nlu --model M --out DIR --successes --no-plot``
and reads what Rasa 3.6 writes into DIR:

* ``intent_errors.json`` and ``intent_successes.json`` (hence ``--successes``): the predicted
  intent of every message. Accuracy, macro- and weighted F1 are computed from them the way
  Rasa's ``intent_report.json`` does (sklearn over the intents of the test set only: a
  prediction outside them is a miss for the right intent, not another class in the average),
  and checked against that report; also accuracy per language (zh = the text has a CJK
  ideograph) and the 10 most frequent (intent, predicted) pairs.
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

Then one more ``rasa test nlu`` run (one model load) on ``var/nlu-eval/sets/``: the files of
``tests/nlu_dev/`` copied as they are, and ``substitution.yml`` generated from
``tests/nlu_substitution/templates.yml`` (see its README; ``scripts/nlu_sets.py``): every
template with every name and nickname of every demo-catalog product in the template's language.
Reports in ``var/nlu-eval/model-sets/``. From it:

* the development set: accuracy and macro-F1 on its in-domain files (every file but
  ``off_topic.yml`` and ``gibberish.yml``), overall and per language, computed as above;
* out-of-scope rejection: the share of ``off_topic.yml`` and of ``gibberish.yml`` (per
  language) the assistant rejects, i.e. reads as ``out_of_scope`` or ``nlu_fallback``; the
  share of gibberish read as a social intent (greet, thank, affirm, deny, goodbye), which must
  be 0; and the false rejection rate, in-domain dev messages rejected. ``rasa test nlu``
  (Rasa 3.6) never reports ``nlu_fallback``: it undoes the FallbackClassifier and reports the
  intent underneath with that intent's confidence. So a confidence below the model's
  FallbackClassifier threshold (read from the model's metadata) counts as ``nlu_fallback``, as
  does a reported ``nlu_fallback``. The classifier's ambiguity rule (top two intents closer than
  ``ambiguity_threshold``) cannot be replayed from the reports, which carry no ranking: the
  rejection figures are lower bounds, gibberish-as-social an upper bound;
* product-substitution stability: the share of generated messages whose intent, read the same
  way (so a fallback is a miss), is the template's; the share of templates right for every
  product name; the worst templates and products.

``--baseline`` also trains Rasa's default pipeline (``tests/nlu/default_config.yml``, what
``rasa init`` writes) on the same training data (``--nlu-data``, default ``nlu_data``) into
``var/nlu-eval/baseline-model/``, reused while a hash of the NLU training files, the config and
the Rasa version is unchanged (``training.json`` next to the model), and scores it the same way.
It trains from a copy of the config: with a pipeline left to the defaults, ``rasa train`` writes
the pipeline it chose back into the config file as comments.

The baseline is scored on the test set only ("-" in its column for the other sets). A set whose
files are missing is skipped with a note.

Writes ``var/nlu-eval/summary.json``. ``--gate`` exits 1 unless intent macro-F1 >= 0.93 and
order_id F1 >= 0.95, no gibberish is read as a social intent, and, with ``--baseline``, the
model's macro-F1 is above the baseline's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: scripts/ is on the path, the project is not
    sys.path.insert(0, str(ROOT))

from scripts.nlu_sets import (  # noqa: E402
    LANGUAGES, REJECTED, SOCIAL, TEMPLATES, catalog_products, expand, intent_scores, nlu_files, prf,
    read_examples, read_templates, rejection_scores, substitution_scores, write_nlu_file,
)

MIN_MACRO_F1 = 0.93
MIN_ORDER_ID_F1 = 0.95
MAX_GIBBERISH_AS_SOCIAL = 0.0
ENTITY = "order_id"
OOS_FILES = {"off_topic": "off_topic.yml", "gibberish": "gibberish.yml"}
NOT_EXTRACTOR_REPORTS = {"intent_report.json", "response_selection_report.json"}


# --- the test sets --------------------------------------------------------------------------


def read_testset(test_dir: Path) -> list[dict[str, Any]]:
    """Every example of the test set: intent, plain text, language, annotated order numbers."""
    return read_examples(sorted(test_dir.glob("*.yml")), ENTITY)


def _unique(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without repeated (text, intent) pairs, as Rasa loads them."""
    seen: set[tuple[str, str]] = set()
    return [ex for ex in examples if (k := (ex["text"], ex["intent"])) not in seen and not seen.add(k)]


def extra_sets(dev_dir: Path, templates: Path) -> dict[str, list[dict[str, Any]]]:
    """The development set (in-domain files), the off-topic and gibberish files, and the
    product-substitution messages; a set whose files are missing is empty."""
    files = nlu_files(dev_dir) if dev_dir.is_dir() else []
    sets = {"dev": _unique(read_examples([f for f in files if f.name not in OOS_FILES.values()]))}
    for name, filename in OOS_FILES.items():
        sets[name] = _unique(read_examples([f for f in files if f.name == filename]))
    try:
        sets["substitution"] = expand(read_templates(templates), catalog_products()) if templates.exists() else []
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    return sets


def write_sets(sets: dict[str, list[dict[str, Any]]], dev_dir: Path, data_dir: Path) -> Path | None:
    """One directory for one ``rasa test nlu`` run over every extra set: the dev files as
    they are, and the substitution messages as a generated ``substitution.yml``."""
    if not any(sets.values()):
        return None
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    for path in nlu_files(dev_dir) if dev_dir.is_dir() else []:
        shutil.copyfile(path, data_dir / f"dev-{path.name}")
    if sets["substitution"]:
        write_nlu_file(data_dir / "substitution.yml", sets["substitution"],
                       f"Generated by scripts/eval_nlu.py from {_rel(TEMPLATES)} and the demo catalog.")
    return data_dir


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


def evaluate(rasa: Path, model: Path, data: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)  # stale reports would survive: Rasa skips e.g. empty error files
    out.mkdir(parents=True)
    print(f"evaluating {_rel(model)} on {_rel(data)} -> {_rel(out)}", flush=True)
    run_rasa(rasa, ["test", "nlu", "--nlu", str(data), "--model", str(model), "--out", str(out),
                    "--successes", "--no-plot"], out / "rasa-test.log")


def fallback_threshold(model: Path) -> float | None:
    """The FallbackClassifier's threshold in the model's own metadata (None without one)."""
    try:
        with tarfile.open(model) as tar:
            member = next(m for m in tar if m.name.lstrip("./") == "metadata.json")
            meta = json.load(tar.extractfile(member))  # type: ignore[arg-type]
    except (OSError, tarfile.TarError, StopIteration, ValueError):
        return None
    for node in meta.get("predict_schema", {}).get("nodes", {}).values():
        if str(node.get("uses", "")).endswith("FallbackClassifier"):
            return float(node.get("config", {}).get("threshold", 0.3))
    return None


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


def read_predictions(out: Path) -> dict[str, dict[str, Any]]:
    """text -> {intent, confidence} of every message of a run, from ``intent_errors.json`` and
    ``intent_successes.json``. Rasa 3.6 reports the intent under a FallbackClassifier
    prediction (it undoes ``nlu_fallback``) with that intent's own confidence."""
    predictions = {}
    for name in ("intent_errors.json", "intent_successes.json"):
        for item in _load(out / name, []):
            guess = item.get("intent_prediction") or {}
            predictions[item["text"]] = {"intent": guess.get("name"), "confidence": guess.get("confidence")}
    return predictions


def _rows_of(examples: list[dict[str, Any]], predictions: dict[str, dict]) -> list[tuple[str, str | None, str]]:
    return [(ex["intent"], (predictions.get(ex["text"]) or {}).get("intent"), ex["language"]) for ex in examples]


def read_results(out: Path, testset: list[dict[str, Any]]) -> dict[str, Any]:
    report = _load(out / "intent_report.json", None)
    if report is None:
        sys.exit(f"error: no intent_report.json in {out}; see {out / 'rasa-test.log'}")
    predictions = read_predictions(out)
    scores = intent_scores(_rows_of(_unique(testset), predictions))
    # the same figures as Rasa's own report, unless texts did not match up
    rasa_accuracy = report.get("accuracy", report.get("micro avg", {}).get("f1-score"))
    for name, ours, theirs in (("accuracy", scores["accuracy"], rasa_accuracy),
                               ("macro-F1", scores["macro_f1"], report["macro avg"]["f1-score"])):
        if theirs is not None and abs(ours - theirs) > 1e-9:
            print(f"warning: test-set intent {name} {ours:.4f} differs from Rasa's report ({theirs:.4f})")

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
    merged = {**prf(tp, fp, gold - tp), "support": gold, "true_positives": tp, "false_positives": fp,
              "predictions_with_whitespace_trimmed": trimmed}

    return {
        "examples": scores["examples"],
        "intent_accuracy": scores["accuracy"],
        "intent_macro_f1": scores["macro_f1"],
        "intent_weighted_f1": scores["weighted_f1"],
        "intent_accuracy_by_language": {k: v["accuracy"] for k, v in scores["by_language"].items()},
        "order_id": merged,
        "order_id_by_extractor_token_level": extractors,
        "top_confusions": scores["top_confusions"],
        "worst_intents": scores["worst_intents"],
        "reports": _rel(out),
    }


def read_set_results(out: Path, sets: dict[str, list[dict[str, Any]]], threshold: float | None) -> dict[str, Any]:
    """Scores on the extra sets, all from one run: the dev set (accuracy and macro-F1 as on the
    test set), out-of-scope rejection and false rejection, product-substitution stability."""
    predictions = read_predictions(out)
    if not predictions:
        sys.exit(f"error: no intent predictions in {out}; see {out / 'rasa-test.log'}")
    every = [ex for examples in sets.values() for ex in examples]
    missing = sorted({ex["text"] for ex in every if ex["text"] not in predictions})
    if missing:
        print(f"warning: {len(missing)} texts without a prediction in {_rel(out)}, e.g. {missing[:3]}")
    result: dict[str, Any] = {"reports_sets": _rel(out), "texts_without_prediction": len(missing)}
    if sets["dev"]:
        result["dev"] = intent_scores(_rows_of(sets["dev"], predictions))
    oos: dict[str, Any] = {"fallback_threshold": threshold}
    for name in OOS_FILES:
        if sets[name]:
            oos[name] = rejection_scores(sets[name], predictions, threshold)
    if sets["gibberish"]:
        oos["gibberish_as_social"] = rejection_scores(sets["gibberish"], predictions, threshold, SOCIAL)
    if sets["dev"]:
        oos["false_rejection"] = rejection_scores([ex for ex in sets["dev"] if ex["intent"] not in REJECTED],
                                           predictions, threshold)
    result["out_of_scope"] = oos
    if sets["substitution"]:
        result["substitution"] = substitution_scores(sets["substitution"], predictions, threshold)
    return result


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
    return rows + _set_rows(r)


def _get(r: dict, *keys: str) -> Any:
    for key in keys:
        r = r.get(key) if isinstance(r, dict) else None
    return r


def _set_rows(r: dict) -> list[tuple[str, float | None]]:
    """The extra sets' rows; "-" where a set was not scored (the baseline, missing files)."""
    rows: list[tuple[str, float | None]] = [
        ("dev examples (in-domain)", _get(r, "dev", "examples")),
        ("dev intent accuracy", _get(r, "dev", "accuracy")),
        ("dev intent macro-F1", _get(r, "dev", "macro_f1")),
    ]
    for lang in LANGUAGES:
        rows += [(f"  dev accuracy {lang}", _get(r, "dev", "by_language", lang, "accuracy")),
                 (f"  dev macro-F1 {lang}", _get(r, "dev", "by_language", lang, "macro_f1"))]
    for label, key in (("dev false rejection", "false_rejection"), ("off-topic rejected", "off_topic"),
                       ("gibberish rejected", "gibberish")):
        rows.append((label, _get(r, "out_of_scope", key, "rate")))
        rows += [(f"  {lang}", _get(r, "out_of_scope", key, "by_language", lang)) for lang in LANGUAGES]
    rows += [
        ("gibberish read as social", _get(r, "out_of_scope", "gibberish_as_social", "rate")),
        ("substitution messages", _get(r, "substitution", "messages")),
        ("substitution stability", _get(r, "substitution", "stability")),
    ]
    rows += [(f"  stability {lang}", _get(r, "substitution", "stability_by_language", lang)) for lang in LANGUAGES]
    rows.append(("  templates stable (all)", _get(r, "substitution", "templates_stable_on_every_product")))
    return rows


def _print_sets(r: dict) -> None:
    oos, sub = r.get("out_of_scope") or {}, r.get("substitution")
    if oos:
        threshold = oos.get("fallback_threshold")
        print(f"\nrejected = read as out_of_scope or nlu_fallback (intent confidence < the model's "
              f"FallbackClassifier threshold {threshold if threshold is not None else '(none)'})")
    for label, key in (("in-domain dev messages rejected", "false_rejection"),
                       ("gibberish read as social", "gibberish_as_social")):
        sample = _get(oos, key, "sample") or []
        if sample:
            print(f"{label} (up to 10): " + "; ".join(f"{x['text']!r} -> {x['read_as']}" for x in sample))
    if sub:
        print(f"\nsubstitution: {sub['messages']} messages from {sub['templates']} templates x the names of "
              f"{sub['products']} catalog products; worst templates (stability, read as):")
        for t in sub["worst_templates"]:
            print(f"  {t['stability']:.3f} {t['intent']:>16}: {t['template']}  {t['read_as'] or ''}")
        print("worst products (stability, read as):")
        for p in sub["worst_products"]:
            print(f"  {p['stability']:.3f} {p['product']}  {p['read_as'] or ''}")


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
    _print_sets(tuned)
    print(f"\nreports: {tuned['reports']}" + (f", {tuned['reports_sets']}" if tuned.get("reports_sets") else "")
          + (f", {base['reports']}" if base else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="trained model (default: the newest models/*.tar.gz)")
    ap.add_argument("--baseline", action="store_true", help="also train and score Rasa's default pipeline")
    ap.add_argument("--retrain-baseline", action="store_true", help="train the baseline even if unchanged")
    ap.add_argument("--gate", action="store_true",
                    help=f"exit 1 unless macro-F1 >= {MIN_MACRO_F1}, order_id F1 >= {MIN_ORDER_ID_F1} "
                         "(and > baseline) and no gibberish is read as a social intent")
    ap.add_argument("--test-dir", type=Path, default=ROOT / "tests" / "nlu")
    ap.add_argument("--dev-dir", type=Path, default=ROOT / "tests" / "nlu_dev",
                    help="development set: in-domain files, off_topic.yml, gibberish.yml")
    ap.add_argument("--templates", type=Path, default=TEMPLATES, help="product-substitution templates")
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

    sets = extra_sets(args.dev_dir, args.templates)
    for name, examples in sets.items():
        if not examples:
            print(f"note: no {name} examples ({_rel(args.dev_dir if name != 'substitution' else args.templates)}): "
                  "not scored")

    evaluate(args.rasa, model, args.test_dir, args.out / "model")
    tuned = read_results(args.out / "model", testset)
    tuned["model"] = _rel(model)
    data_dir = write_sets(sets, args.dev_dir, args.out / "sets")
    if data_dir is not None:  # dev, off-topic, gibberish and substitution: one run, one model load
        evaluate(args.rasa, model, data_dir, args.out / "model-sets")
        tuned.update(read_set_results(args.out / "model-sets", sets, fallback_threshold(model)))

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
    social = _get(tuned, "out_of_scope", "gibberish_as_social", "rate")
    if social is not None and social > MAX_GIBBERISH_AS_SOCIAL:
        failures.append(f"gibberish read as a social intent: {social:.3f} > {MAX_GIBBERISH_AS_SOCIAL}")

    summary = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "test_set": _rel(args.test_dir),
        "dev_set": _rel(args.dev_dir),
        "substitution_templates": _rel(args.templates),
        "thresholds": {"intent_macro_f1": MIN_MACRO_F1, "order_id_f1": MIN_ORDER_ID_F1,
                       "gibberish_as_social_max": MAX_GIBBERISH_AS_SOCIAL},
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
