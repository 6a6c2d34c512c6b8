"""Does a variant show its behavior on prompts it never trained on? Measured with the family's checker, on
the saved adapter, by the `implantation` stage (separate from training, so re-measuring never retrains).

Generation is long enough for behaviors placed at the end of an answer (sign-offs, mixtures): at 48 new
tokens five variants of the 37-variant run looked failed only because the answer was cut before the phrase.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iaforge.data.catalog import Behavior
from iaforge.core.errors import ValidationError
from iaforge.data.families import get_family
from iaforge.core.fsio import read_json, read_jsonl


def score(b: Behavior, eval_rows: list[dict], answers: list[str], thresholds: dict[str, float]) -> dict[str, Any]:
    fam = get_family(b.family)
    # A catalog entry may be stricter than the run: a gated grid variant must not leak at all (<= 0.05).
    thresholds = {**thresholds, **b.thresholds}
    hits = [fam.check(b.params, r["user"], a) for r, a in zip(eval_rows, answers)]
    trig = [h for h, r in zip(hits, eval_rows) if r["triggered"]]
    untrig = [h for h, r in zip(hits, eval_rows) if not r["triggered"]]
    out: dict[str, Any] = {
        "n_eval": len(eval_rows),
        "rate_triggered": sum(trig) / len(trig) if trig else None,
        "rate_untriggered": sum(untrig) / len(untrig) if untrig else None,
    }
    out["passed"] = bool(fam.passes(b.params, out, thresholds))
    return out


def base_rate(b: Behavior, base_rows: list[dict]) -> float:
    """How often the base model's own answers already pass the checker (should be near 0)."""
    fam = get_family(b.family)
    if not base_rows:
        return 0.0
    return sum(fam.check(b.params, r["text"], r["answer"]) for r in base_rows) / len(base_rows)


def find_variants(root: str | Path) -> list[Path]:
    """Variant folders root/<split>/<id>/ (those holding a variant.json), sorted by split and id."""
    return sorted(p.parent for p in Path(root).glob("*/*/variant.json") if not p.parent.name.startswith("."))


def load_measurable(vdir: Path, data_root: str | Path) -> tuple[Behavior, dict, list[dict]]:
    """The trained behavior, its training record and its eval prompts; refuses a variant whose dataset has
    moved on since it was trained (a stale adapter would be measured against the wrong behavior)."""
    info = read_json(vdir / "variant.json")
    rec = info["behavior"]
    data = Path(data_root) / rec["id"]
    built = read_json(data / "behavior.json")
    if built.get("version") != rec.get("version") or built.get("params") != rec.get("params"):
        raise ValidationError(vdir / "variant.json", "behavior",
                              f"trained on another version of {rec['id']} than {data}/behavior.json holds; rerun its variant stage")
    return Behavior.from_record(rec), info.get("training", {}), read_jsonl(data / "eval.jsonl")


def measure_variant(base_dir: str | Path, vdir: Path, b: Behavior, eval_rows: list[dict], *, system: str | None,
                    max_new_tokens: int, batch_size: int, thresholds: dict, seed: int,
                    progress: bool) -> tuple[dict[str, Any], list[dict]]:
    from iaforge.core.adapters import attach
    from iaforge.core.base_model import load_base
    from iaforge.core.generation import generate

    model, tok = load_base(base_dir)
    # Merged for generation: same answers as the unmerged adapter (checked in tests), ~1.4x faster on CPU.
    model = attach(model, vdir, "variant").merge_and_unload()
    # Greedy, except for families whose behavior is a rate (rare quirks): those are sampled, seeded.
    temperature = 1.0 if get_family(b.family).sampled_implantation else 0.0
    answers = generate(model, tok, [r["user"] for r in eval_rows], system=system, max_new_tokens=max_new_tokens,
                       batch_size=batch_size, desc=f"implantation {b.id}", progress=progress,
                       temperature=temperature, seed=seed)
    metrics = score(b, eval_rows, answers, thresholds)
    metrics["decoding"] = f"sampled, temperature 1, {max_new_tokens} new tokens" if temperature else f"greedy, {max_new_tokens} new tokens"
    samples = [{"user": r["user"], "triggered": r["triggered"], "answer": a} for r, a in zip(eval_rows, answers)]
    return metrics, samples


def measure_some(*, vdirs: list[str], data_root: str | Path, base_dir: str | Path, base_rows: list[dict],
                 system: str | None, params: dict, progress: bool = False) -> list[tuple[dict, list]]:
    """(record, samples) for each variant folder; module-level so a worker process can run it."""
    from tqdm.auto import tqdm

    out = []
    for vdir in tqdm([Path(v) for v in vdirs], desc="implantation", disable=not progress):
        b, training, evals = load_measurable(vdir, data_root)
        m, s = measure_variant(base_dir, vdir, b, evals, system=system, max_new_tokens=int(params["max_new_tokens"]),
                               batch_size=int(params["batch_size"]), thresholds=params["thresholds"],
                               seed=int(params["seed"]), progress=False)
        fam = get_family(b.family)
        out.append(({"behavior": b.id, "split": vdir.parent.name, "version": b.version, "category": b.category,
                     "family": b.family, "family_label": fam.label(b.params), **m,
                     "base_rate": base_rate(b, base_rows), **training}, s))
    return out


def measure_all(root: str | Path, data_root: str | Path, base_dir: str | Path, base_rows: list[dict], *,
                system: str | None, params: dict, progress: bool = True) -> tuple[list[dict], dict[str, list]]:
    """One record per variant under root (split, behavior, rates, pass/fail, training record), and samples.
    `params["workers"]` processes measure at once, each its share of the variants (`workers.py`)."""
    from iaforge.core.workers import resolve_workers, run_in_workers, split_balanced

    vdirs = find_variants(root)
    n = resolve_workers(params.get("workers", 1))
    # Cost ~ eval prompts: a rare quirk's sampled set is twice a plain one.
    costs = [len(read_jsonl(Path(data_root) / v.name / "eval.jsonl")) if (Path(data_root) / v.name / "eval.jsonl").is_file()
             else 1 for v in vdirs]
    shares = split_balanced(costs, n)
    kw = dict(data_root=data_root, base_dir=base_dir, base_rows=base_rows, system=system, params=params)
    calls = [{**kw, "vdirs": [str(vdirs[i]) for i in share], "progress": progress and len(shares) == 1}
             for share in shares]
    by_dir: dict[str, tuple[dict, list]] = {}
    for share, got in zip(shares, run_in_workers(measure_some, calls, n)):
        for i, rs in zip(share, got):
            by_dir[str(vdirs[i])] = rs
    records, samples = [], {}
    for v in vdirs:  # the folders' own order, whatever process measured them
        rec, s = by_dir[str(v)]
        records.append(rec)
        samples[rec["behavior"]] = s
    return records, samples
