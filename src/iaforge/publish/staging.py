"""The `publish` stage's work: one staging folder per Hub repo, the cards, and a manifest, offline and
deterministic (same inputs, same bytes: sorted manifest, no timestamps, parquet without time metadata).

Layout of the output folder:
    manifest.json                 {"repos": [{repo_id, repo_type, private, tag, dir, files: [{path, size, sha256}]}]}
    repos/<name>/...              exactly the files of that repo, README.md (the card) included

Only allow-listed files are staged (adapter safetensors, adapter config, iaforge's JSON records, parquet), so
pickles, the base weights and the trainers' own README.md can never reach a repo.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from iaforge.core.errors import ValidationError
from iaforge.core.fsio import atomic_dir, dumps_json, read_json, read_jsonl, write_json

MANIFEST = "manifest.json"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
IA_RECORDS = ("ia.json", "training_curve.json")
VARIANT_RECORDS = ("variant.json", "training_curve.json")
# Never uploaded, whatever a hand-edited manifest says (push.py checks again).
FORBIDDEN_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".gguf", ".npy", ".npz")
FORBIDDEN_NAMES = ("model.safetensors",)
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_repo_file(path: str, where: str) -> None:
    """A file that must never go to the Hub, named in one line."""
    name = path.rsplit("/", 1)[-1]
    if path.endswith(FORBIDDEN_SUFFIXES) or name in FORBIDDEN_NAMES or path.startswith("/") or ".." in path.split("/"):
        raise ValidationError(where, path, "never uploaded (pickles, base weights, paths outside the repo)")


def repo_names(cfg: dict[str, Any], behaviors: dict[str, str]) -> dict[str, str]:
    """Logical name -> Hub repo id. Variants share one repo above `group_variants_over` of them."""
    ns, pre = cfg["namespace"], cfg["prefix"]
    names = {"ia_sft": f"{pre}-ia-sft", "ia_dpo": f"{pre}-ia-dpo", "results": f"{pre}-results"}
    if len(behaviors) > cfg["group_variants_over"]:
        names["variants"] = f"{pre}-variants"
    else:
        names.update({f"variant:{b}": f"{pre}-variant-{b}" for b in behaviors})
    names.update({f"data:{b}": f"{pre}-data-{b}" for b in behaviors})
    for key, name in names.items():
        if not _NAME.match(name) or len(name) > 96 or "--" in name or ".." in name:
            raise ValidationError("params.yaml", "publish.prefix", f"makes an invalid Hub repo name {name!r} ({key})")
    return {k: f"{ns}/{v}" for k, v in names.items()}


def _copy_adapter(src: Path, dst: Path, records: tuple[str, ...], hub_id: str) -> dict[str, Any]:
    for f in ADAPTER_FILES:
        if not (src / f).is_file():
            raise ValidationError(src / f, "<file>", "missing: an adapter folder needs adapter_model.safetensors and "
                                                     "adapter_config.json")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "adapter_model.safetensors", dst / "adapter_model.safetensors")
    try:
        config = read_json(src / "adapter_config.json")
    except json.JSONDecodeError as exc:
        raise ValidationError(src / "adapter_config.json", "<file>", f"not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise ValidationError(src / "adapter_config.json", "<root>", "must be a JSON object")
    if config.get("auto_mapping"):
        raise ValidationError(src / "adapter_config.json", "auto_mapping", "names custom code; not published")
    # A local path here makes the Hub's metadata validation fail, and tells users nothing.
    config["base_model_name_or_path"] = hub_id
    (dst / "adapter_config.json").write_text(dumps_json(config), encoding="utf-8")
    record: dict[str, Any] = {}
    for f in records:
        if (src / f).is_file():
            shutil.copyfile(src / f, dst / f)
            if f in ("ia.json", "variant.json"):
                record = read_json(src / f)
    return record


def _column(values: list[Any]) -> list[Any]:
    # One Arrow type per column: nested or mixed values become JSON text rather than a schema that differs by row.
    scalar = (str, int, float, bool, type(None))
    kinds = {type(v) for v in values if v is not None}
    if all(isinstance(v, scalar) for v in values) and len(kinds) <= 1:
        return values
    return [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values]


def write_parquet_shards(rows: list[dict[str, Any]], folder: Path, split: str, shard_rows: int) -> list[str]:
    """`data/<split>-0000i-of-0000N.parquet`, the Hub's layout; same rows, same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = sorted({k for r in rows for k in r})
    n = max(1, math.ceil(len(rows) / shard_rows))
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        part = rows[i * shard_rows:(i + 1) * shard_rows]
        table = pa.table({k: _column([r.get(k) for r in part]) for k in keys}) if keys else pa.table({})
        name = f"{split}-{i:05d}-of-{n:05d}.parquet"
        pq.write_table(table, folder / name, compression="snappy")
        names.append(name)
    return names


def _file_entries(repo_dir: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(repo_dir.rglob("*")):
        if p.is_file():
            rel = p.relative_to(repo_dir).as_posix()
            check_repo_file(rel, str(repo_dir))
            out.append({"path": rel, "size": p.stat().st_size, "sha256": sha256_file(p)})
    return out


def _tag(cfg: dict[str, Any], files: list[dict[str, Any]]) -> str:
    if cfg.get("tag"):
        return cfg["tag"]
    # Content-derived: the same staged bytes get the same tag, a changed file a new one.
    h = hashlib.sha256("".join(f"{f['path']}\0{f['sha256']}\n" for f in files).encode()).hexdigest()
    return f"iaforge-{h[:12]}"


def build_staging(out_dir: str | Path, *, cfg: dict[str, Any], base_manifest: dict[str, Any],
                  ia_dirs: dict[str, Path], behaviors: dict[str, str], variants_root: Path, data_root: Path,
                  measured: dict[str, dict[str, Any]], metrics_files: list[Path], detail_files: list[Path]
                  ) -> dict[str, Any]:
    """Stage every repo into `out_dir` atomically and return the manifest. `behaviors`: id -> split of the run."""
    from iaforge.publish import cards

    hub_id = cfg["base_model"]
    ids = repo_names(cfg, behaviors)
    license, tags = cfg["license"], list(cfg["tags"])
    metrics = {Path(p).stem: read_json(p) for p in metrics_files}
    data_repos = sorted(v for k, v in ids.items() if k.startswith("data:"))
    kinds: dict[str, str] = {}
    with atomic_dir(out_dir) as tmp:
        def repo_dir(key: str) -> Path:
            return tmp / "repos" / ids[key].split("/")[-1]

        # The introspection adapters; `datasets` names only the behaviors each was trained across.
        for which, splits in (("sft", {"ia_train"}), ("dpo", {"ia_train", "dpo"})):
            key = f"ia_{which}"
            d = repo_dir(key)
            record = _copy_adapter(Path(ia_dirs[which]), d, IA_RECORDS, hub_id)
            trained = sorted(ids[f"data:{b}"] for b, s in behaviors.items() if s in splits)
            (d / "README.md").write_text(cards.ia_card(
                which=which, repo_id=ids[key], hub_id=hub_id, license=license, tags=[*tags, "introspection-adapter"],
                datasets=trained, results_repo=ids["results"], metrics=metrics, base_manifest=base_manifest,
                record=record), encoding="utf-8")
            kinds[key] = "model"

        # The variants, with what implantation measured of each.
        rows = []
        grouped = "variants" in ids
        for bid in sorted(behaviors):
            split = behaviors[bid]
            src = Path(variants_root) / split / bid
            if not src.is_dir():
                raise ValidationError(src, "<folder>", f"variant {bid!r} of split {split!r} is missing; run `dvc repro`")
            dst = repo_dir("variants") / "variants" / bid if grouped else repo_dir(f"variant:{bid}")
            rec = _copy_adapter(src, dst, VARIANT_RECORDS, hub_id).get("behavior", {})
            m = measured.get(bid) or {}
            rows.append({"id": bid, "split": split, "category": rec.get("category", m.get("category", "")),
                         "description": rec.get("description", ""), "passed": m.get("passed"),
                         "rate": m.get("rate", m.get("rate_triggered"))})
            if not grouped:
                (dst / "README.md").write_text(cards.variants_card(
                    repo_id=ids[f"variant:{bid}"], hub_id=hub_id, license=license, tags=[*tags, "model-organism"],
                    datasets=[ids[f"data:{bid}"]], base_manifest=base_manifest, rows=rows[-1:], grouped=False),
                    encoding="utf-8")
                kinds[f"variant:{bid}"] = "model"
        if grouped:
            (repo_dir("variants") / "README.md").write_text(cards.variants_card(
                repo_id=ids["variants"], hub_id=hub_id, license=license, tags=[*tags, "model-organism"],
                datasets=data_repos, base_manifest=base_manifest, rows=rows, grouped=True), encoding="utf-8")
            kinds["variants"] = "model"

        # The behavior datasets, as parquet shards.
        for bid in sorted(behaviors):
            src = Path(data_root) / bid
            d = repo_dir(f"data:{bid}")
            splits = {}
            for split, fname in (("train", "train.jsonl"), ("test", "eval.jsonl")):
                if not (src / fname).is_file():
                    raise ValidationError(src / fname, "<file>", f"missing: behavior {bid!r} has no dataset; run `dvc repro`")
                data = read_jsonl(src / fname)
                write_parquet_shards(data, d / "data", split, cfg["shard_rows"])
                splits[split] = len(data)
            record = read_json(src / "behavior.json")
            validation = read_json(src / "validation.json") if (src / "validation.json").is_file() else {}
            for f in ("behavior.json", "validation.json"):
                if (src / f).is_file():
                    shutil.copyfile(src / f, d / f)
            (d / "README.md").write_text(cards.dataset_card(
                repo_id=ids[f"data:{bid}"], license=license, tags=[*tags, "model-organism"], record=record,
                validation=validation, splits=splits), encoding="utf-8")
            kinds[f"data:{bid}"] = "dataset"

        # The evaluation results.
        d = repo_dir("results")
        staged = []
        for folder, files in (("metrics", metrics_files), ("reports/detail", detail_files)):
            for f in sorted(files, key=lambda p: Path(p).name):
                (d / folder).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, d / folder / Path(f).name)
                staged.append(f"{folder}/{Path(f).name}")
        (d / "README.md").write_text(cards.results_card(repo_id=ids["results"], license=license, tags=tags,
                                                        metrics=metrics, files=staged), encoding="utf-8")
        kinds["results"] = "dataset"

        repos = []
        for key, repo_id in ids.items():
            rdir = repo_dir(key)
            files = _file_entries(rdir)
            repos.append({"repo_id": repo_id, "repo_type": kinds[key], "private": bool(cfg["private"]),
                          "tag": _tag(cfg, files), "dir": rdir.relative_to(tmp).as_posix(), "files": files})
        repos.sort(key=lambda r: (r["repo_type"], r["repo_id"]))
        manifest = {"format": 1, "base_model": hub_id, "collection": cfg.get("collection"),
                    "namespace": cfg["namespace"], "repos": repos}
        write_json(tmp / MANIFEST, manifest)
    return manifest
