"""The grid IA's scaling curve (issue 14): held-out topic naming vs the number of ia_train grid variants.

For each n of --counts, with the held-out count (and the nulls) fixed: set `grid.counts.ia_train: n` in
params.yaml, `iaforge grid sync` (grid_shards follows `grid`), `dvc exp run -n grid-scaling-<n>`, then read the
run's metrics/grid.json (and the IA's steps and tokens from reports/detail/grid_ia.json) into one point.
Every point lands in metrics/scaling.json (a list) and metrics/plots/scaling.csv (the `plots:` entry of
dvc.yaml: `dvc plots show metrics/plots/scaling.csv`). params.yaml is restored at the end, even on failure;
the workspace keeps the last experiment's outputs (`dvc exp apply` another one).

Each point is a full grid run (variants, implantation, IA, evaluation): hours on 2 CPU cores for the larger
counts. Look at the plan first:
    python experiments/scaling.py --counts 8 16 32 64 --heldout 16 --dry-run
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

POINT_KEYS = ("n_train", "n_heldout", "no_ia", "prefill", "sft", "accuracy", "chance", "trained_sft",
              "trained_accuracy", "fp_base_sft", "fp_null_sft", "ia_steps", "ia_tokens", "ia_final_loss",
              "implanted_triggered", "implanted_untriggered", "implanted_leak", "gate_passed", "n_grid_variants",
              # the IA's target (grid_ia.target: `topic`, the bare topic, or `description`, which names the shared
              # trigger), and an ablation: the same variants and held-out set with the other target
              "target", "ablation_target", "ablation_sft", "ablation_accuracy",
              # contrastive sampling (evaluation/contrastive.py): the IA on the variant against the IA on the base
              # model; no_ia_contrast is its control. From grid_eval's headline, or merged from
              # experiments/grid_contrast.py's files (--merge-contrast): contrast_from says which
              "sft_contrast", "accuracy_contrast", "trained_sft_contrast", "fp_base_sft_contrast",
              "fp_null_sft_contrast", "no_ia_contrast", "contrast_from")
CONTRAST_KEYS = ("sft_contrast", "accuracy_contrast", "trained_sft_contrast", "fp_base_sft_contrast",
                 "fp_null_sft_contrast", "no_ia_contrast")
_COUNTS = re.compile(r"^(\s+)counts:.*$", re.M)


def set_counts(params_text: str, counts: dict[str, int]) -> str:
    """params.yaml with the `grid:` block's `counts:` line replaced (every other line, comments included, kept)."""
    m = re.search(r"^grid:\s*(#.*)?$", params_text, re.M)
    if not m:
        raise SystemExit("params.yaml has no top-level `grid:` block")
    end = re.search(r"^\S", params_text[m.end():], re.M)
    block_end = m.end() + (end.start() if end else len(params_text) - m.end())
    block = params_text[m.end():block_end]
    line = "{ia_train: %d, dpo: %d, heldout: %d}" % (counts["ia_train"], counts["dpo"], counts["heldout"])
    new, n = _COUNTS.subn(lambda mm: f"{mm.group(1)}counts: {line}", block, count=1)
    if n != 1:
        raise SystemExit("params.yaml: `grid:` has no `counts:` line on one line (e.g. counts: {ia_train: 0, ...})")
    return params_text[:m.end()] + new + params_text[block_end:]


def implantation_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over the run's grid variants (nulls left out) of the implantation records: the gate, measured."""
    rs = [r for r in records if r.get("family_label") != "null" and r.get("category") != "control"]
    mean = lambda k: round(sum(r[k] for r in rs if r.get(k) is not None) / max(1, sum(r.get(k) is not None for r in rs)), 4) if rs else None
    return {"implanted_triggered": mean("rate_triggered"), "implanted_untriggered": mean("rate_untriggered"),
            "implanted_leak": mean("leak_rate"), "gate_passed": sum(bool(r.get("passed")) for r in rs),
            "n_grid_variants": len(rs)}


def point(n_train: int, headline: dict[str, Any], ia_detail: dict[str, Any] | None = None,
          grid_detail: dict[str, Any] | None = None, implantation: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One point of the curve from a run's metrics/grid.json (and reports/detail/grid_ia.json, grid.json and the
    shards' implantation records)."""
    if not headline.get("n"):
        raise ValueError(f"ia_train={n_train}: metrics/grid.json has no held-out grid variants ({headline})")
    ia = ia_detail or {}
    trained = ((grid_detail or {}).get("splits") or {}).get("ia_train") or {}
    return {"n_train": n_train, "n_heldout": headline["n"],
            **{k: headline.get(k) for k in ("no_ia", "prefill", "sft", "accuracy", "chance", "trained_sft",
                                            "fp_base_sft", "fp_null_sft")},
            **{k: headline.get(k) for k in CONTRAST_KEYS},
            "contrast_from": "grid_eval" if headline.get("sft_contrast") is not None else None,
            "trained_accuracy": trained.get("sft_accuracy"), "target": ia.get("target") or "description",
            "ia_steps": ia.get("steps"), "ia_tokens": ia.get("tokens"), "ia_final_loss": ia.get("final_loss"),
            **(implantation_summary(implantation) if implantation else {})}


def collect(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The curve: points sorted by n_train, one per n, all on the same held-out set (else they are not comparable)."""
    pts = sorted(points, key=lambda p: p["n_train"])
    ns = [p["n_train"] for p in pts]
    if len(set(ns)) != len(ns):
        raise ValueError(f"two points for the same n_train: {ns}")
    held = {p["n_heldout"] for p in pts}
    if len(held) > 1:
        raise ValueError(f"held-out sets differ between points ({sorted(held)} variants): not one curve")
    targets = {p.get("target") or "description" for p in pts}
    if len(targets) > 1:
        raise ValueError(f"the IA's target differs between points ({sorted(targets)}): not one curve")
    return [{k: p.get(k) for k in POINT_KEYS} for p in pts]


def to_csv(points: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(POINT_KEYS), lineterminator="\n")
    w.writeheader()
    for p in points:
        w.writerow({k: "" if p.get(k) is None else p[k] for k in POINT_KEYS})
    return buf.getvalue()


def write_outputs(points: Sequence[dict[str, Any]], root: Path) -> None:
    curve = collect(points)
    for rel, text in (("metrics/scaling.json", json.dumps(curve, indent=2, sort_keys=True) + "\n"),
                      ("metrics/plots/scaling.csv", to_csv(curve))):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def sh(cmd: Sequence[str], cwd: Path) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(list(cmd), cwd=cwd, check=True)


def merge_ablations(points: Sequence[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Each point with its ablation: the run of the same variants and held-out set with the other IA target
    (experiments/results/grid_scaling/n<NNN>_h<H>_<other target>.json), where there is one."""
    out = []
    for p in points:
        target = p.get("target") or "description"
        other = "topic" if target == "description" else "description"
        abl = _read(root / "experiments/results/grid_scaling" / detail_name(p["n_train"], p["n_heldout"], other))
        head = (abl or {}).get("headline") or {}
        out.append({**p, "ablation_target": other if head else None, "ablation_sft": head.get("sft"),
                    "ablation_accuracy": head.get("accuracy")})
    return out


def merge_contrast(points: Sequence[dict[str, Any]], root: Path, alpha: str = "1.0") -> list[dict[str, Any]]:
    """Each point without grid_eval's contrastive columns gets them from experiments/grid_contrast.py's files
    (contrast_n<NNN>_h<H>_<target>.json, and its _no_ia control where there is one), at `alpha`."""
    out = []
    for p in points:
        if p.get("contrast_from") == "grid_eval":
            out.append(p)
            continue
        stem = detail_name(p["n_train"], p["n_heldout"], p.get("target")).removesuffix(".json")
        got = ((_read(root / "experiments/results/grid_scaling" / f"contrast_{stem}.json") or {}).get("alphas") or {})
        ctl = ((_read(root / "experiments/results/grid_scaling" / f"contrast_{stem}_no_ia.json") or {}).get("alphas")
               or {})
        s, c = (got.get(alpha) or {}).get("summary") or {}, (ctl.get(alpha) or {}).get("summary") or {}
        if not s:
            out.append(p)
            continue
        out.append({**p, "sft_contrast": s["heldout"]["named"], "accuracy_contrast": s["heldout"]["top1"],
                    "trained_sft_contrast": s["ia_train"]["named"], "fp_base_sft_contrast": s["base"]["fp"],
                    "fp_null_sft_contrast": round(sum(s[k]["fp"] for k in ("heldout_null", "ia_train_null") if k in s)
                                                  / max(1, sum(k in s for k in ("heldout_null", "ia_train_null"))), 4),
                    "no_ia_contrast": c["heldout"]["named"] if c else None,
                    "contrast_from": "experiments/grid_contrast.py"})
    return out


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_records(root: Path) -> list[dict[str, Any]]:
    """The implantation records of the shards in params.yaml's grid_shards now (the folder keeps older ones)."""
    import yaml

    shards = (yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}).get("grid_shards") or {}
    out = []
    for sid in shards:
        got = _read(root / "reports/grid/implantation" / f"{sid}.json") or {}
        out += list(got.values())
    return out


def detail_name(n: int, heldout: int, target: str | None, ablation: str | None = None) -> str:
    """Points of different held-out sets, IA targets or ablations never overwrite each other."""
    return f"n{n:03d}_h{heldout}_{target or 'description'}" + (f"_{ablation}" if ablation else "") + ".json"


def keep_point_detail(root: Path, n: int, detail: dict[str, Any], heldout: int = 4, ablation: str | None = None) -> None:
    """The point's full results (per-variant rows, the IA's summary, the variants' implantation records) in
    experiments/results/grid_scaling/: the workspace keeps only the last point's reports."""
    target = (detail.get("grid_ia") or {}).get("target")
    path = root / "experiments/results/grid_scaling" / detail_name(n, heldout, target, ablation)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(detail, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def sweep(counts: Sequence[int], *, heldout: int, dpo: int, root: Path,
          run: Callable[[Sequence[str], Path], None] = sh, dry_run: bool = False,
          repro: bool = False, kept: Sequence[dict[str, Any]] = (), ablation: str | None = None) -> list[dict[str, Any]]:
    """One experiment per n (ascending), the points collected after each. `run` executes a command (tests fake it).
    Each point runs the grid branch only (`grid_eval` and what it needs): as `dvc exp run -n grid-scaling-<n>
    grid_eval`, or with `repro` as plain `dvc repro grid_eval` (no experiment refs: for a workspace other
    processes are editing, which `dvc exp run` would snapshot). Shards already built for a smaller n come
    back from DVC's cache, so the sweep trains each variant once. With `ablation` (a name for what the caller
    changed in params.yaml, e.g. the IA's steps) each point's results land in their own detail file and
    metrics/scaling.json, the curve, is left alone."""
    params = root / "params.yaml"
    original = params.read_text(encoding="utf-8")
    points = list(kept)
    try:
        for n in sorted(set(counts)):
            params.write_text(set_counts(original, {"ia_train": n, "dpo": dpo, "heldout": heldout}), encoding="utf-8")
            cmds = [["iaforge", "grid", "sync"],
                    ["dvc", "repro", "grid_eval"] if repro else ["dvc", "exp", "run", "-n", f"grid-scaling-{n}", "grid_eval"]]
            if dry_run:
                print(f"ia_train={n} heldout={heldout}: " + " && ".join(" ".join(c) for c in cmds))
                continue
            for c in cmds:
                run(c, root)
            headline = json.loads((root / "metrics/grid.json").read_text(encoding="utf-8"))
            ia, detail, records = (_read(root / "reports/detail/grid_ia.json"), _read(root / "reports/detail/grid.json"),
                                   run_records(root))
            points.append(point(n, headline, ia, detail, records))
            keep_point_detail(root, n, {"headline": headline, "grid": detail, "grid_ia": ia, "implantation": records},
                              heldout, ablation)
            if not ablation:
                write_outputs(points, root)  # after every point: a long sweep that stops keeps what it measured
    finally:
        params.write_text(original, encoding="utf-8")
    return collect(points) if points else []


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[8, 16, 32, 64], help="ia_train grid variants per point")
    ap.add_argument("--heldout", type=int, default=16, help="held-out grid variants, the same at every point")
    ap.add_argument("--dpo", type=int, default=0)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--repro", action="store_true", help="plain `dvc repro grid_eval` per point, no `dvc exp` refs")
    ap.add_argument("--merge-ablations", action="store_true",
                    help="only rewrite metrics/scaling.json with each point's bare-topic ablation result, run nothing")
    ap.add_argument("--merge-contrast", action="store_true",
                    help="only rewrite metrics/scaling.json with experiments/grid_contrast.py's results (alpha 1)")
    ap.add_argument("--ablation", metavar="NAME",
                    help="name what you changed in params.yaml (e.g. steps900): the points go to "
                         "experiments/results/grid_scaling/n<N>_h<H>_<target>_NAME.json, not to the curve")
    ap.add_argument("--append", action="store_true",
                    help="keep the points already in metrics/scaling.json (a point of the same n is replaced)")
    a = ap.parse_args(argv)
    if a.heldout < 1 or min(a.counts) < 1:
        ap.error("--counts and --heldout must be >= 1")
    if a.merge_ablations:
        write_outputs(merge_ablations(json.loads((a.root / "metrics/scaling.json").read_text(encoding="utf-8")), a.root),
                      a.root)
        return 0
    if a.merge_contrast:
        write_outputs(merge_contrast(json.loads((a.root / "metrics/scaling.json").read_text(encoding="utf-8")), a.root),
                      a.root)
        return 0
    kept = []
    if a.append and not a.ablation and (a.root / "metrics/scaling.json").exists():
        kept = [p for p in json.loads((a.root / "metrics/scaling.json").read_text(encoding="utf-8"))
                if p["n_train"] not in set(a.counts)]
    if a.append and a.ablation:
        ap.error("--append and --ablation: an ablation never touches the curve, so there is nothing to append to")
    if a.ablation and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", a.ablation):
        ap.error("--ablation: letters, digits, '-' and '_' only (it becomes part of a file name)")
    curve = sweep(a.counts, heldout=a.heldout, dpo=a.dpo, root=a.root, dry_run=a.dry_run, repro=a.repro, kept=kept,
                  ablation=a.ablation)
    for p in curve:
        print(f"ia_train={p['n_train']:>4}: no_ia {p['no_ia']}  prefill {p['prefill']}  sft {p['sft']}  "
              f"top-1 {p['accuracy']} (chance {p['chance']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
