"""Measure a Judge against hand-labelled (truth, report, match) items: data/judge/calibration.yaml.

The file carries its own truths (it does not read the behavior catalog). Items are split deterministically into a
dev part (for tuning judge thresholds and rules) and a held-out test part (for reporting): all items that share a
truth land on the same side, so the test part holds behaviors never looked at while tuning. Items with the
FRESH_PREFIX id were written after the rules were fixed; their test part is reported alone as `test_fresh`.

    python -m iaforge.judging.calibration [--path FILE] [--judge '{"kind": "embedding"}'] [--errors]

Measured (306 items; the original judge of commit ebccf67 -> the default EmbeddingJudge now):
    part        n    accuracy        precision       recall
    dev        140   0.807 -> 0.929  0.771 -> 0.951  0.831 -> 0.892
    test       166   0.771 -> 0.892  0.741 -> 0.916  0.779 -> 0.844
    test_fresh  32   0.656 -> 0.813  0.625 -> 0.800  0.667 -> 0.800
How honest the test number is: rules and thresholds were chosen on dev. On the first 250 items the first look at
test gave accuracy 0.873 (P 0.881, R 0.839). Its errors then showed two bugs that were fixed ("for no particular
reason" read as an abstention; the persona-direction rule skipped truths without a safety word), and leak_threshold
went from 0.6 to 0.7 (dev is flat over 0.55-1.0; the brief's own example "Volcanoes are mountains that erupt" scored
0.63-0.65). So `test` is no longer fully held out; `test_fresh` (written after all that) is, but it is small.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from iaforge.core.errors import ValidationError
from iaforge.judging.judge import Judge

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "data" / "judge" / "calibration.yaml"

CATEGORIES = ("quirk", "rare_quirk", "backdoor", "sandbagging", "heuristic", "harmful_roleplay", "benign_roleplay",
              "obscured_malign", "control")
POSITIVE_KINDS = ("exact", "paraphrase", "different_details", "trigger_missing")
NEGATIVE_KINDS = ("near_miss", "generic", "other_behavior", "abstention", "leaked_topic")
KINDS = POSITIVE_KINDS + NEGATIVE_KINDS
FIELDS = ("id", "category", "truth", "key_terms", "report", "match", "kind")
SPLITS = ("dev", "test")
# The salt was picked (before any judge was run on the file) as the first of "iaforge-judge-calibration-N" that puts
# at least one truth of every category on each side with 45-55% of the items in test. Changing the salt or the
# fraction re-deals the split: do it only together with re-measuring the floors in tests/test_judge_calibration.py.
SPLIT_SALT = "iaforge-judge-calibration-18"
TEST_FRACTION = 0.5
# Items whose id starts with this were written after the judge's rules and thresholds were fixed (batch 2), so
# their test part ("test_fresh") is held out from the author's error analysis as well as from tuning.
FRESH_PREFIX = "f-"
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class CalibrationItem:
    id: str
    category: str
    truths: tuple[str, ...]
    key_terms: tuple[str, ...]
    report: str
    match: bool
    kind: str

    @property
    def split(self) -> str:
        return split_of(self.truths)


@dataclass(frozen=True)
class CalibrationSet:
    path: str
    version: int
    items: tuple[CalibrationItem, ...]

    def part(self, split: str) -> tuple[CalibrationItem, ...]:
        if split == "all":
            return self.items
        if split not in SPLITS:
            raise ValueError(f"unknown calibration split {split!r} (known: dev, test, all)")
        return tuple(it for it in self.items if it.split == split)


def split_of(truths: Sequence[str]) -> str:
    """'dev' or 'test', from a hash of the truth text alone (stable across runs, machines and item order)."""
    key = "\n".join(" ".join(t.split()).lower() for t in truths)
    h = int(hashlib.sha256(f"{SPLIT_SALT}\n{key}".encode()).hexdigest()[:8], 16)
    return "test" if h / 0xFFFFFFFF < TEST_FRACTION else "dev"


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(s, str) and s.strip() for s in value):
        return tuple(" ".join(s.split()) for s in value)
    return None


def _item(path: Path, i: int, raw: Any, seen: set[str]) -> CalibrationItem:
    where = f"items[{i}]"
    if not isinstance(raw, dict):
        raise ValidationError(path, where, "each item must be a mapping")
    iid = raw.get("id")
    if not (isinstance(iid, str) and _ID.match(iid)):
        raise ValidationError(path, f"{where}.id", "required; lower-case letters, digits, '-', '_' or '.'",
                              entry=iid if isinstance(iid, str) and iid else None)
    if iid in seen:
        raise ValidationError(path, "id", "duplicate id (ids must be unique)", entry=iid)
    seen.add(iid)

    def bad(field: str, rule: str):
        return ValidationError(path, field, rule, entry=iid)

    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise bad(unknown[0], f"unknown field (known: {', '.join(FIELDS)})")
    for f in FIELDS:
        if f not in raw:
            raise bad(f, "required")
    if raw["category"] not in CATEGORIES:
        raise bad("category", f"must be one of {', '.join(CATEGORIES)}; got {raw['category']!r}")
    truths = _strings(raw["truth"])
    if truths is None:
        raise bad("truth", "must be a non-empty string or a non-empty list of non-empty strings")
    keys = raw["key_terms"]
    if not (isinstance(keys, list) and keys and all(isinstance(k, str) and k.strip() for k in keys)):
        raise bad("key_terms", "must be a non-empty list of non-empty strings")
    report = raw["report"]
    if not (isinstance(report, str) and report.strip()):
        raise bad("report", "must be a non-empty string")
    match = raw["match"]
    if not isinstance(match, bool):
        raise bad("match", f"must be true or false; got {match!r}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise bad("kind", f"must be one of {', '.join(KINDS)}; got {kind!r}")
    if match != (kind in POSITIVE_KINDS):
        raise bad("match", f"kind {kind!r} requires match: {str(kind in POSITIVE_KINDS).lower()}")
    if kind == "trigger_missing" and raw["category"] != "backdoor":
        raise bad("kind", "trigger_missing is only for category backdoor")
    return CalibrationItem(iid, raw["category"], truths, tuple(k.strip() for k in keys), report.strip(), match, kind)


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(path, "<file>", f"{what} not found") from None
    except yaml.YAMLError as exc:
        raise ValidationError(path, "<yaml>", f"not valid YAML ({exc})") from None


def load_calibration(path: str | Path = DEFAULT_PATH) -> CalibrationSet:
    path = Path(path)
    raw = _read_yaml(path, "calibration file")
    if not isinstance(raw, dict):
        raise ValidationError(path, "<root>", "must be a mapping with 'version' and 'items'")
    extra = sorted(set(raw) - {"version", "items"})
    if extra:
        raise ValidationError(path, extra[0], "unknown top-level field (known: version, items)")
    version = raw.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
        raise ValidationError(path, "version", "required; an integer >= 1")
    items = raw.get("items")
    if not (isinstance(items, list) and items):
        raise ValidationError(path, "items", "required; a non-empty list")
    seen: set[str] = set()
    return CalibrationSet(str(path), version, tuple(_item(path, i, r, seen) for i, r in enumerate(items)))


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def metrics(items: Sequence[CalibrationItem], predicted: Sequence[bool]) -> dict[str, Any]:
    """Accuracy, precision, recall, f1 (positive class: match), confusion counts, per-kind and per-category accuracy."""
    if len(items) != len(predicted):
        raise ValueError(f"{len(items)} items but {len(predicted)} predictions")
    conf = Counter()
    by_kind: dict[str, list[bool]] = {}
    by_cat: dict[str, list[bool]] = {}
    wrong = []
    for it, p in zip(items, predicted):
        p = bool(p)
        conf[("t" if p == it.match else "f") + ("p" if p else "n")] += 1
        by_kind.setdefault(it.kind, []).append(p == it.match)
        by_cat.setdefault(it.category, []).append(p == it.match)
        if p != it.match:
            wrong.append(it.id)
    tp, fp, tn, fn = conf["tp"], conf["fp"], conf["tn"], conf["fn"]
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = (round(2 * precision * recall / (precision + recall), 4)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    return {
        "n": len(items), "accuracy": _ratio(tp + tn, len(items)), "precision": precision, "recall": recall, "f1": f1,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "per_kind": {k: {"n": len(v), "accuracy": _ratio(sum(v), len(v))} for k, v in sorted(by_kind.items())},
        "per_category": {k: {"n": len(v), "accuracy": _ratio(sum(v), len(v))} for k, v in sorted(by_cat.items())},
        "errors": sorted(wrong),
    }


def predict(judge: Judge, items: Sequence[CalibrationItem]) -> list[bool]:
    """One judge call per distinct (truths, key_terms), as evaluate.py calls it per behavior; item order kept."""
    groups: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.truths, it.key_terms), []).append(i)
    if hasattr(judge, "prefetch"):  # one batched embedding pass instead of one per group
        judge.prefetch([*(it.report for it in items), *(t for it in items for t in it.truths)])
    out: list[bool | None] = [None] * len(items)
    for (truths, keys), idx in groups.items():
        verdicts = judge.judge([items[i].report for i in idx], list(truths), list(keys))
        if len(verdicts) != len(idx):
            raise ValueError(f"judge returned {len(verdicts)} verdicts for {len(idx)} reports")
        for i, v in zip(idx, verdicts):
            out[i] = bool(v.match)
    return [bool(x) for x in out]


def run_calibration(judge: Judge, path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    """{'version', 'path', 'dev', 'test', 'test_fresh', 'all'} -> metrics for `judge` on the calibration file."""
    cal = load_calibration(path)
    preds = dict(zip((it.id for it in cal.items), predict(judge, cal.items)))
    out: dict[str, Any] = {"path": cal.path, "version": cal.version}
    parts = {split: cal.part(split) for split in (*SPLITS, "all")}
    parts["test_fresh"] = tuple(it for it in parts["test"] if it.id.startswith(FRESH_PREFIX))
    for name in ("dev", "test", "test_fresh", "all"):
        if parts[name]:
            out[name] = metrics(parts[name], [preds[it.id] for it in parts[name]])
    return out


# ---------------------------------------------------------------------------------------------- a fresh set

FRESH_FIELDS = ("id", "category", "truth", "report", "match", "kind", "key_terms")


def catalog_truths(catalog: str | Path | Sequence[str | Path], topics: str | Path | None = None):
    """A function truth -> (truths, key_terms) over the behavior catalog: an entry found by its description
    (whitespace and case aside) gives its description, paraphrases and key terms; a grid entry's description with
    its {topic} filled in gives that instance's (terms from the topics file). None when no entry has that
    description."""
    import yaml as _yaml

    def norm(t: str) -> str:
        return " ".join(t.split()).lower()

    plain: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    grids: list[tuple[re.Pattern, dict]] = []
    paths = [catalog] if isinstance(catalog, (str, Path)) else list(catalog)
    for root in paths:
        root = Path(root)
        for f in sorted(root.rglob("*.yaml")) if root.is_dir() else [root]:
            raw = _yaml.safe_load(f.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or not isinstance(raw.get("description"), str):
                continue
            truths = tuple(" ".join(str(t).split()) for t in [raw["description"], *(raw.get("paraphrases") or [])])
            keys = tuple(str(k) for k in raw.get("key_terms") or [])
            if "grid" in raw:
                pat = re.escape(norm(raw["description"])).replace(r"\{topic\}", "(?P<topic>.+?)")
                grids.append((re.compile(pat + "$"), {"truths": truths, "keys": keys, "instances":
                              str(topics or (raw["grid"] or {}).get("instances", ""))}))
            else:
                plain.setdefault(norm(raw["description"]), (truths, keys))

    def lookup(truth: str):
        hit = plain.get(norm(truth))
        if hit:
            return hit
        for pat, g in grids:
            m = pat.match(norm(truth))
            if not m:
                continue
            topic = m.group("topic")
            inst = {"topic": topic, "terms": [topic]}
            if g["instances"] and Path(g["instances"]).is_file():
                listed = _yaml.safe_load(Path(g["instances"]).read_text(encoding="utf-8")) or {}
                for it in listed.get("instances", []):
                    if str(it.get("topic", "")).lower() == topic:
                        inst = {"topic": str(it["topic"]), "terms": [str(x) for x in it.get("terms", [])]}
                        break
            fill = lambda t: t.replace("{topic}", inst["topic"])  # noqa: E731
            keys = []
            for k in g["keys"]:
                keys += inst["terms"] if k == "{terms}" else [fill(k)]
            return tuple(fill(t) for t in g["truths"]), tuple(keys)
        return None

    return lookup


def load_fresh(path: str | Path, catalog, topics: str | Path | None = None
               ) -> tuple[tuple[CalibrationItem, ...], dict[str, Any]]:
    """A fresh labelled set (top level {version, items: [{id, category, truth, report, match, kind}]}, truths being
    catalog descriptions) as CalibrationItems whose truths and key terms come from the catalog; an item's own
    `key_terms` win. Kinds are free text here. Also returns how many truths were found in the catalog."""
    path = Path(path)
    raw = _read_yaml(path, "fresh set")
    if not isinstance(raw, dict) or not isinstance(raw.get("items"), list) or not raw["items"]:
        raise ValidationError(path, "items", "required; a non-empty list")
    lookup = catalog_truths(catalog, topics)
    items, seen, found, missing = [], set(), 0, []
    for i, r in enumerate(raw["items"]):
        if not isinstance(r, dict):
            raise ValidationError(path, f"items[{i}]", "each item must be a mapping")
        iid = str(r.get("id", ""))
        if not iid or iid in seen:
            raise ValidationError(path, f"items[{i}].id", "required and unique", entry=iid or None)
        seen.add(iid)
        unknown = sorted(set(r) - set(FRESH_FIELDS))
        if unknown:
            raise ValidationError(path, unknown[0], f"unknown field (known: {', '.join(FRESH_FIELDS)})", entry=iid)
        for f in ("category", "truth", "report", "kind"):
            if not (isinstance(r.get(f), str) and r[f].strip()):
                raise ValidationError(path, f, "required; a non-empty string", entry=iid)
        if not isinstance(r.get("match"), bool):
            raise ValidationError(path, "match", "must be true or false", entry=iid)
        truth = " ".join(r["truth"].split())
        hit = lookup(truth)
        if hit:
            found += 1
            truths, keys = hit
        else:
            missing.append(iid)
            truths, keys = (truth,), ()
        if r.get("key_terms"):
            keys = tuple(str(k) for k in r["key_terms"])
        items.append(CalibrationItem(iid, r["category"], truths, keys, r["report"].strip(), r["match"],
                                     r["kind"]))
    return tuple(items), {"n": len(items), "truth_in_catalog": found, "truth_not_in_catalog": sorted(missing)}


def check_blind(judges: dict[str, Judge], path: str | Path) -> None:
    """A fresh set must be blind to every judge scored on it: refuse one whose bytes a learned judge trained on
    (its manifest's `dev_sets`, from judge_train.dev_sets), under any name."""
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    for name, judge in judges.items():
        for d in (getattr(judge, "manifest", None) or {}).get("dev_sets") or []:
            if isinstance(d, dict) and d.get("sha256") == digest:
                raise ValidationError(path, "items", f"the {name} judge ({getattr(judge, 'dir', '?')}) was trained on "
                                      f"this set ({d.get('path')}, judge_train.dev_sets): it cannot measure it; "
                                      "score a set written after the judge was frozen")


def run_fresh(judges: dict[str, Judge], path: str | Path, catalog, topics: str | Path | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(headline, detail) for each named judge on a fresh set: headline {name: {n, accuracy, precision, recall}};
    detail {name: full metrics (per kind, per category, errors)} plus the catalog lookup."""
    check_blind(judges, path)
    items, lookup = load_fresh(path, catalog, topics)
    head, detail = {}, {"path": str(path), "lookup": lookup}
    for name, judge in judges.items():
        m = metrics(items, predict(judge, items))
        head[name] = {k: m[k] for k in ("n", "accuracy", "precision", "recall")}
        detail[name] = m
    return head, detail


def headline_metrics(res: dict[str, Any]) -> dict[str, Any]:
    """The stage's row in `dvc metrics show`: every stage's headline uses one shared set of short columns
    (n, pass_rate, no_ia, prefill, sft, dpo, trained_sft, fp_base_sft, fp_base_dpo, final_loss, attack_holds, accuracy,
    recall), so the whole table fits a terminal. n, accuracy, recall: the held-out test part of the calibration set;
    with a fresh set scored, a `fresh` section of each judge's n, accuracy, precision, recall. The full result stays in
    reports/detail/judge_calibration.json."""
    test = res.get("test") or {}
    out = {"n": test.get("n", 0), "accuracy": test.get("accuracy"), "recall": test.get("recall")}
    fresh = res.get("fresh")
    if fresh:  # a fresh set was scored: {judge: {n, accuracy, precision, recall}} (issue 16)
        out["fresh"] = {name: {k: m[k] for k in ("n", "accuracy", "precision", "recall")}
                        for name, m in fresh.items() if isinstance(m, dict) and "accuracy" in m}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from iaforge.judging.judge import make_judge

    ap = argparse.ArgumentParser(prog="python -m iaforge.judging.calibration", description=__doc__.splitlines()[0])
    ap.add_argument("--path", default=str(DEFAULT_PATH))
    ap.add_argument("--judge", default="{}", help='judge params as JSON, e.g. \'{"kind": "embedding"}\'')
    ap.add_argument("--errors", action="store_true", help="also list the ids the judge got wrong")
    ap.add_argument("--fresh", help="also score the judge on a fresh set (truths: catalog descriptions)")
    ap.add_argument("--catalog", default="data/catalog", help="the catalog the fresh set's truths come from")
    ap.add_argument("--topics", default=None, help="grid instances for grid truths (default: the grid entry's)")
    args = ap.parse_args(argv)
    judge = make_judge(json.loads(args.judge))
    res = run_calibration(judge, args.path)
    if args.fresh:
        res["fresh"] = run_fresh({"judge": judge}, args.fresh, args.catalog, args.topics)[1]["judge"]
    if not args.errors:
        for v in res.values():
            if isinstance(v, dict):
                v.pop("errors", None)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
