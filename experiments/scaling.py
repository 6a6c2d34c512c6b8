"""The grid IA's scaling curve (issue 14): held-out topic naming vs the number of ia_train grid variants.

For each n of --counts and each IA seed of --seeds, with the held-out count (and the nulls) fixed: set
`grid.counts.ia_train: n` and `grid_ia.seed` in params.yaml, `iaforge grid sync` (grid_shards follows `grid`),
`dvc exp run -n grid-scaling-<n>-seed<s> grid_eval` (or `dvc repro grid_eval` with --repro), and save the run to
<runs-dir>/h<H>_n<N>_seed<S>/ (metrics/grid.json, reports/detail/grid.json, reports/detail/grid_ia.json, the gate
records of the run's shards). A point pools the runs of one n (evaluation/grid_pool.py): each held-out topic's
rate averaged over the seeds, a 95% bootstrap interval over topics, each seed's own rate, and the rate on the
topics that never leak. Every point lands in metrics/scaling.json (a list) and metrics/plots/scaling.csv (the
`plots:` entry of dvc.yaml: `dvc plots show metrics/plots/scaling.csv`), rebuilt after every run from all saved
runs of the held-out size, so a sweep that stops keeps what it measured and a later sweep adds seeds or points.
params.yaml is restored at the end, even on failure.

Each run is a grid run (variants, implantation, IA, evaluation): shards already built for a smaller n come back
from DVC's cache, so the sweep trains each variant once; a second seed costs the IA and its evaluation only.
    python experiments/scaling.py --counts 24 48 72 --seeds 0 2 --heldout 24 --dry-run
    python experiments/scaling.py --from-saved --heldout 24   # the curve only, from every saved curve run

The single-seed sweep on 8 held-out topics with 6-epoch variants (the eleventh-twelfth sessions' curve) is kept,
frozen, in experiments/results/grid_scaling/curve_6epochs_h8.{json,csv}.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

_COUNTS = re.compile(r"^(\s+)counts:.*$", re.M)
_SEED = re.compile(r"^(\s+)seed:.*$", re.M)
RUNS_DIR = Path("experiments/results/grid_seeds")
RUN_NAME = re.compile(r"^h(\d+)_n(\d+)_seed(\d+)$")  # a curve run; an ablation's runs carry its name before _seed
# the CSV (the DVC plot): flat columns; a point's interval [lo, hi] becomes <key>_lo, <key>_hi
CSV_KEYS = ("n_train", "n_heldout", "no_ia", "prefill", "sft", "sft_contrast", "no_ia_contrast", "sft_hint",
            "no_ia_hint", "lens_first", "lens_any", "accuracy", "accuracy_contrast", "accuracy_sft_hint", "chance",
            "sft_beyond_leakage", "sft_contrast_beyond_leakage", "sft_hint_beyond_leakage", "n_beyond_leakage",
            "trained_sft", "trained_sft_contrast", "trained_sft_hint", "fp_base_sft", "fp_null_sft",
            "fp_base_sft_contrast", "fp_null_sft_contrast", "fp_base_sft_hint", "fp_null_sft_hint",
            "implanted_triggered", "implanted_untriggered", "implanted_leak", "gate_passed", "ia_steps", "seeds")
CI_KEYS = ("no_ia", "prefill", "sft", "sft_contrast", "no_ia_contrast", "sft_hint", "no_ia_hint")


def _block(params_text: str, name: str) -> tuple[int, int]:
    m = re.search(rf"^{name}:\s*(#.*)?$", params_text, re.M)
    if not m:
        raise SystemExit(f"params.yaml has no top-level `{name}:` block")
    end = re.search(r"^\S", params_text[m.end():], re.M)
    return m.end(), m.end() + (end.start() if end else len(params_text) - m.end())


def set_counts(params_text: str, counts: dict[str, int]) -> str:
    """params.yaml with the `grid:` block's `counts:` line replaced (every other line, comments included, kept)."""
    start, end = _block(params_text, "grid")
    line = "{ia_train: %d, dpo: %d, heldout: %d}" % (counts["ia_train"], counts["dpo"], counts["heldout"])
    new, n = _COUNTS.subn(lambda mm: f"{mm.group(1)}counts: {line}", params_text[start:end], count=1)
    if n != 1:
        raise SystemExit("params.yaml: `grid:` has no `counts:` line on one line (e.g. counts: {ia_train: 0, ...})")
    return params_text[:start] + new + params_text[end:]


def set_seed(params_text: str, seed: int) -> str:
    """params.yaml with `grid_ia.seed` replaced (the IA's seed; the variants keep `grid.seed`)."""
    start, end = _block(params_text, "grid_ia")
    new, n = _SEED.subn(lambda mm: f"{mm.group(1)}seed: {seed}", params_text[start:end], count=1)
    if n != 1:
        raise SystemExit("params.yaml: `grid_ia:` has no `seed:` line")
    return params_text[:start] + new + params_text[end:]


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_records(root: Path) -> dict[str, Any]:
    """variant id -> gate record, for the shards in params.yaml's grid_shards now (the folders keep older ones)."""
    import yaml

    shards = (yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}).get("grid_shards") or {}
    out = {}
    for sid, s in shards.items():
        out.update(_read(root / "reports/grid/implantation" / s["split"] / f"{sid}.json") or {})
    return out


def save_run(root: Path, folder: Path) -> None:
    """The workspace's grid results as one run folder (evaluation/grid_pool.py reads it), written atomically."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for src, dst in (("metrics/grid.json", "metrics.json"), ("reports/detail/grid.json", "grid_detail.json"),
                     ("reports/detail/grid_ia.json", "grid_ia.json")):
        if not (root / src).is_file():
            raise SystemExit(f"{root / src}: missing after the run (did grid_eval run?)")
        shutil.copyfile(root / src, tmp / dst)
    (tmp / "implantation.json").write_text(json.dumps(run_records(root), indent=1, sort_keys=True) + "\n",
                                           encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def topic_kinds(root: Path) -> dict[str, str]:
    """topic -> kind from the grid's instance list (data/grids/topics.yaml): the top-1 miss analysis reads it."""
    import yaml

    path = root / "data/grids/topics.yaml"
    if not path.is_file():
        return {}
    return {i["topic"]: i.get("kind") for i in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("instances", [])}


def curve_from_runs(folders: Sequence[Path], kinds: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One point per number of training variants, pooling that n's runs; every point on the same held-out topics."""
    from iaforge.evaluation.grid_pool import curve_point, group_runs, load_run

    runs = [load_run(f) for f in folders]
    curve = [curve_point(rs, kinds) for rs in group_runs(runs).values()]
    held = {p["n_heldout"] for p in curve}
    if len(held) > 1:
        raise ValueError(f"held-out sets differ between points ({sorted(held)} topics): not one curve")
    targets = {p.get("target") for p in curve}
    if len(targets) > 1:
        raise ValueError(f"the IA's target differs between points ({sorted(map(str, targets))}): not one curve")
    return curve


def curve_runs(runs_dir: Path, heldout: int) -> list[Path]:
    """The saved curve runs (not an ablation's) on `heldout` held-out topics."""
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and (m := RUN_NAME.match(p.name)) and int(m.group(1)) == heldout)


def to_csv(points: Sequence[dict[str, Any]]) -> str:
    cols = list(CSV_KEYS[:2]) + [c for k in CSV_KEYS[2:] for c in ((k, f"{k}_lo", f"{k}_hi") if k in CI_KEYS else (k,))]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for p in points:
        row = {k: p.get(k) for k in CSV_KEYS}
        row["seeds"] = " ".join(str(s) for s in p.get("seeds") or [])
        for k in CI_KEYS:
            ci = p.get(f"{k}_ci95") or [None, None]
            row[f"{k}_lo"], row[f"{k}_hi"] = ci
        w.writerow({k: "" if row.get(k) is None else row[k] for k in cols})
    return buf.getvalue()


def write_outputs(points: Sequence[dict[str, Any]], root: Path) -> None:
    for rel, text in (("metrics/scaling.json", json.dumps(list(points), indent=2, sort_keys=True) + "\n"),
                      ("metrics/plots/scaling.csv", to_csv(points))):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def sh(cmd: Sequence[str], cwd: Path) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(list(cmd), cwd=cwd, check=True)


def run_name(heldout: int, n: int, seed: int, ablation: str | None = None) -> str:
    return f"h{heldout}_n{n}" + (f"_{ablation}" if ablation else "") + f"_seed{seed}"


def sweep(counts: Sequence[int], seeds: Sequence[int], *, heldout: int, dpo: int, root: Path,
          runs_dir: Path = RUNS_DIR, run: Callable[[Sequence[str], Path], None] = sh, dry_run: bool = False,
          repro: bool = False, ablation: str | None = None) -> list[dict[str, Any]]:
    """One run per (n, seed), n ascending; the curve rebuilt from every saved run after each. `run` executes a
    command (tests fake it). `repro`: plain `dvc repro grid_eval` (no experiment refs: for a workspace other
    processes are editing, which `dvc exp run` would snapshot). With `ablation` (a name for what the caller changed
    in params.yaml, e.g. the IA's steps) the runs are saved under that name and metrics/scaling.json is left alone."""
    params = root / "params.yaml"
    if not params.is_file():
        raise SystemExit(f"{params}: not found (--root must be the repository, where params.yaml and dvc.yaml are)")
    original = params.read_text(encoding="utf-8")
    runs_dir = runs_dir if runs_dir.is_absolute() else root / runs_dir
    curve: list[dict[str, Any]] = []
    try:
        for n in sorted(set(counts)):
            for seed in seeds:
                text = set_seed(set_counts(original, {"ia_train": n, "dpo": dpo, "heldout": heldout}), seed)
                params.write_text(text, encoding="utf-8")
                name = run_name(heldout, n, seed, ablation)
                cmds = [["iaforge", "grid", "sync"],
                        ["dvc", "repro", "grid_eval"] if repro else
                        ["dvc", "exp", "run", "-n", f"grid-scaling-{n}-seed{seed}" + (f"-{ablation}" if ablation else ""),
                         "grid_eval"]]
                if dry_run:
                    print(f"{name}: " + " && ".join(" ".join(c) for c in cmds))
                    continue
                for c in cmds:
                    run(c, root)
                save_run(root, runs_dir / name)
                if not ablation:
                    curve = curve_from_runs(curve_runs(runs_dir, heldout), topic_kinds(root))
                    write_outputs(curve, root)
    finally:
        params.write_text(original, encoding="utf-8")
    return curve


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[8, 16, 24, 48], help="ia_train grid variants per point")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 2], help="grid_ia.seed values, one run each per point")
    ap.add_argument("--heldout", type=int, default=24, help="held-out grid variants, the same at every point")
    ap.add_argument("--dpo", type=int, default=0)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where each run is saved (relative to --root)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--repro", action="store_true", help="plain `dvc repro grid_eval` per run, no `dvc exp` refs")
    ap.add_argument("--ablation", metavar="NAME",
                    help="name what you changed in params.yaml (e.g. steps600): runs are saved as "
                         "h<H>_n<N>_NAME_seed<S>, and the curve is not touched")
    ap.add_argument("--from-runs", nargs="+", type=Path, metavar="FOLDER",
                    help="run nothing: write metrics/scaling.json and the plot from these saved runs")
    ap.add_argument("--from-saved", action="store_true",
                    help="run nothing: the same from every saved curve run on --heldout topics under --runs-dir "
                         "(ablations left out)")
    a = ap.parse_args(argv)
    if a.from_runs or a.from_saved:
        runs_dir = a.runs_dir if a.runs_dir.is_absolute() else a.root / a.runs_dir
        folders = a.from_runs or curve_runs(runs_dir, a.heldout)
        if not folders:
            ap.error(f"--from-saved: no saved curve run on {a.heldout} held-out topics under {runs_dir}")
        curve = curve_from_runs(folders, topic_kinds(a.root))
        write_outputs(curve, a.root)
    else:
        if a.heldout < 1 or min(a.counts) < 1:
            ap.error("--counts and --heldout must be >= 1")
        if len(set(a.seeds)) != len(a.seeds):
            ap.error("--seeds: each seed once (two runs of one seed are the same run)")
        if a.ablation and not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", a.ablation):
            ap.error("--ablation: a letter, then letters, digits and '-' (it becomes part of a folder name)")
        curve = sweep(a.counts, a.seeds, heldout=a.heldout, dpo=a.dpo, root=a.root, runs_dir=a.runs_dir,
                      dry_run=a.dry_run, repro=a.repro, ablation=a.ablation)
    for p in curve:
        ci = p.get("sft_contrast_ci95") or ["-", "-"]
        hci = p.get("sft_hint_ci95") or ["-", "-"]
        print(f"ia_train={p['n_train']:>4} seeds {p['seeds']}: contrastive {p['sft_contrast']} [{ci[0]}, {ci[1]}]  "
              f"hinted {p.get('sft_hint')} [{hci[0]}, {hci[1]}] (no IA {p.get('no_ia_hint')}, lens {p.get('lens_first')})  "
              f"plain {p['sft']}  no IA {p['no_ia']}  prefill {p['prefill']}  top-1 {p['accuracy_contrast']} / "
              f"{p.get('accuracy_sft_hint')} (chance {p['chance']})  training {p['trained_sft']} / {p.get('trained_sft_hint')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
