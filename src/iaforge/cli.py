"""`iaforge`: the command line.

  iaforge catalog list [--paths DIR ...]     the behavior catalog as a table
  iaforge catalog check                      validate every entry and params.yaml's `behaviors` block
  iaforge catalog sync [--grid ID=N,N,N]     rewrite params.yaml's `behaviors` from the catalog (a grid entry
                                             adds its first N ia_train, dpo, heldout instances; none by default)
  iaforge profile apply FILE                 merge a profile (e.g. profiles/tiny.yaml) into params.yaml
  iaforge check [--params FILE]              validate params (typed configs) and the catalog; exit 1 on errors
  iaforge grid sync [--params FILE]          rewrite `grid_shards` from `grid` (FILE may be a profile: its `grid`
                                             is read over params.yaml's, as `profile apply` would merge it)
  iaforge publish [--manifest FILE] --push   upload what the `publish` stage staged to the Hub (needs HF_TOKEN);
                                             without --push: print the plan and send nothing
  iaforge audit --variant PATH_OR_HUB_ID     attach the IA to any LoRA of the same base, sample its self-reports,
                                             print the top-5 candidate behaviors and the abstention rate (--json)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iaforge.core.errors import IaforgeError, ValidationError


def _catalog(args) -> int:
    from iaforge.data.catalog import SPLITS, load_catalog
    from iaforge.core.config import load_params

    params = load_params(args.params) if Path(args.params).exists() else {}
    paths = args.paths or params.get("catalog", {}).get("paths", ["data/catalog"])
    _load_families(params, args.params)
    cat = load_catalog(paths)
    run = params.get("behaviors", {}) or {}
    if args.action == "list":
        from iaforge.data.families import get_family

        def label(b):
            return get_family(b.family).label(b.params)

        rows = [("id", "category", "family", "split", "in run", "v")]
        grids: dict[str, list] = {}
        for b in cat.values():
            if b.grid:
                grids.setdefault(b.grid, []).append(b)
        firsts = [b for b in cat.values() if not b.grid] + [g[0] for g in grids.values()]
        for b in sorted(firsts, key=lambda b: (b.category, label(b), b.grid or b.id)):
            if not b.grid:
                rows.append((b.id, b.category, label(b), b.split, run.get(b.id, {}).get("split", "-"), str(b.version)))
                continue
            # A grid is one row: its instances per split (ia_train/dpo/heldout), and how many the run uses.
            g = grids[b.grid]
            per = lambda bs: "/".join(str(sum(x.split == s for x in bs)) for s in SPLITS)
            used = [x for x in g if x.id in run]
            rows.append((f"{b.grid} (grid)", b.category, label(b), per(g), per(used) if used else "-", str(b.version)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for n, r in enumerate(rows):
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if n == 0:
                print("  ".join("-" * w for w in widths))
        cats = sorted({b.category for b in cat.values()})
        print(f"\n{len(cat)} behaviors, {len({label(b) for b in cat.values()})} families, {len(cats)} categories")
        for c in cats:
            fams = sorted({label(b) for b in cat.values() if b.category == c})
            splits = sorted({run[b.id]["split"] for b in cat.values() if b.category == c and b.id in run})
            print(f"  {c:<17} {len(fams)} families ({', '.join(fams)}); in run: {', '.join(splits) or '-'}")
    elif args.action == "check":
        problems = _run_problems(run, cat, paths, args.params)
        if problems:
            raise problems[0]
        n_grid = sum(bool(b.grid) for b in cat.values())
        print(f"ok: {len(cat) - n_grid} catalog entries and {n_grid} grid instances valid; {len(run)} behaviors in the run")
    elif args.action == "sync":
        import yaml

        from iaforge.core.fsio import atomic_write_text

        data = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        from iaforge.data.grids import parse_counts, select

        counts = dict(parse_counts(g) for g in args.grid or [])
        chosen = [b for b in cat.values() if not b.grid]
        for gid, n in counts.items():
            inst = [b for b in cat.values() if b.grid == gid]  # the instances file's order
            if not inst:
                raise ValidationError("--grid", gid, f"no grid entry with this id under {paths}")
            chosen += select(inst, n, where=f"--grid {gid}")
        # A grid's instances only when asked for: the whole grid is hundreds of variants.
        data["behaviors"] = {b.id: {"spec": b.source, **({"instance": b.instance} if b.grid else {}), "split": b.split}
                             for b in sorted(chosen, key=lambda b: b.id)}
        cat = chosen
        atomic_write_text(args.params, yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120))
        print(f"params.yaml: behaviors now lists {len(cat)} entries")
    return 0


def _load_families(params: dict, params_file) -> None:
    """The user's own families (params `catalog.families`, paths relative to the params file's folder),
    imported before the catalog is validated, since entries may name them."""
    from iaforge.data.families import load_plugins

    load_plugins((params.get("catalog") or {}).get("families"), root=Path(params_file).parent, source=params_file)


def _run_problems(run: dict, cat: dict, paths, params_file) -> list[IaforgeError]:
    """The run's `behaviors` block against the catalog: every id has an entry, and its spec is that entry's file."""
    from iaforge.core.errors import ValidationError

    out: list[IaforgeError] = []
    for bid, entry in run.items():
        spec = entry.get("spec", "") if isinstance(entry, dict) else ""
        if bid not in cat:
            out.append(ValidationError(params_file, f"behaviors.{bid}", f"no catalog entry with this id under {paths}"))
        elif Path(spec).resolve() != Path(cat[bid].source).resolve():
            out.append(ValidationError(params_file, f"behaviors.{bid}.spec", f"expected {cat[bid].source}"))
        elif (entry.get("instance") or "") != cat[bid].instance:
            out.append(ValidationError(params_file, f"behaviors.{bid}.instance",
                                       f"expected {cat[bid].instance!r}" if cat[bid].instance else "only a grid entry's behavior has an instance"))
    return out


def _check(args) -> int:
    """Everything a run reads before it starts: params.yaml against the typed configs (core/config.py) and
    the catalog entries against their family schemas. Each problem is one line; none: `ok`."""
    from iaforge.core.config import CatalogConfig, ParamsError, check_params, load_params
    from iaforge.data.catalog import load_catalog

    params = load_params(args.params)
    problems: list[IaforgeError] = list(check_params(params, args.params))
    try:
        paths = CatalogConfig.from_params(params.get("catalog"), "catalog", file=args.params).paths
    except ParamsError:
        paths = CatalogConfig().paths  # already reported; the default catalog is still worth checking
    try:
        _load_families(params, args.params)
        cat = load_catalog(paths)
    except IaforgeError as exc:
        problems.append(exc)
        cat = None
    run = params.get("behaviors")
    if cat is not None and isinstance(run, dict):
        problems += _run_problems(run, cat, paths, args.params)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {args.params} valid; {len(cat)} catalog entries valid; {len(run)} behaviors in the run")
    return 0


def _profile(args) -> int:
    from iaforge.core.profiles import apply_profile

    apply_profile(args.file, args.params)
    print(f"{args.params}: merged {args.file}")
    return 0


SHARDS_COMMENT = "# written by `iaforge grid sync` from `grid`: shard id -> {split, ids, digest}"


def shards_yaml(shards: dict) -> str:
    """The `grid_shards` block, one flow-style line per shard (short diffs, readable in review)."""
    import yaml

    if not shards:
        return f"grid_shards: {{}}   {SHARDS_COMMENT}\n"
    lines = [f"grid_shards:   {SHARDS_COMMENT}"]
    for sid, sh in shards.items():
        lines.append(f"  {sid}: " + yaml.safe_dump(sh, default_flow_style=True, sort_keys=False, width=10**6).strip())
    return "\n".join(lines) + "\n"


SPLITS_COMMENT = "# written by `iaforge grid sync`: split -> digest of its shards (the dep of stages reading one split)"


def splits_yaml(digests: dict) -> str:
    import yaml

    # safe_dump quotes a digest YAML would read as a number
    flow = yaml.safe_dump(digests, default_flow_style=True, sort_keys=False, width=10**6).strip()
    return f"grid_splits: {flow}   {SPLITS_COMMENT}\n"


def replace_block(text: str, key: str, block: str) -> str:
    """`text` with the top-level `key:` block (its line and the indented lines under it) replaced by `block`,
    or `block` appended; every other line (comments included) is kept as it is."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.startswith(f"{key}:")), None)
    if start is None:
        return text + ("" if not text or text.endswith("\n") else "\n") + block
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "\t"):
        end += 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _grid(args) -> int:
    import yaml

    from iaforge.core.config import GridConfig, load_params
    from iaforge.core.fsio import atomic_write_text
    from iaforge.core.profiles import deep_merge
    from iaforge.variants.grid_index import split_digests
    from iaforge.variants.shards import plan_shards

    target = Path(args.params)
    params = load_params(target)
    raw_grid = params.get("grid") or {}
    base = Path(args.base)
    if target.resolve() != base.resolve() and base.exists():  # a profile: its grid overrides the run's
        base_params = load_params(base)
        raw_grid = deep_merge(base_params.get("grid") or {}, raw_grid)
        _load_families(deep_merge(base_params, params), args.params)
    else:
        _load_families(params, args.params)
    grid = GridConfig.from_params(raw_grid, "grid", file=args.params).to_dict()
    shards = plan_shards(grid)
    digests = split_digests(shards)
    text = target.read_text(encoding="utf-8")
    if any(line.startswith("grid_splits:") for line in text.splitlines()):
        text = replace_block(replace_block(text, "grid_shards", shards_yaml(shards)), "grid_splits", splits_yaml(digests))
    else:  # first sync since grid_splits exists: it goes right under grid_shards
        text = replace_block(text, "grid_shards", shards_yaml(shards) + splits_yaml(digests))
    written = yaml.safe_load(text) or {}
    if written.get("grid_shards") != shards:
        raise ValidationError(target, "grid_shards", "could not be rewritten in place (a hand-edited block?)")
    if written.get("grid_splits") != digests:
        raise ValidationError(target, "grid_splits", "could not be rewritten in place (a hand-edited block?)")
    atomic_write_text(target, text)
    n = sum(len(s["ids"]) for s in shards.values())
    print(f"{args.params}: grid_shards now lists {len(shards)} shards, {n} variants")
    return 0


def _audit(args) -> int:
    """Bad input is exit 2 with one line (like argparse's own usage errors): nothing was run or written."""
    import json

    from iaforge.core.stagekit import progress_enabled
    from iaforge.evaluation.external_audit import audit_adapter, format_record

    try:
        rec = audit_adapter(args.variant, ia=args.ia, base=args.base, samples=args.samples, questions=args.question,
                            params_file=args.params, max_new_tokens=args.max_new_tokens, seed=args.seed,
                            progress=progress_enabled(), notes=lambda s: print(s, file=sys.stderr),
                            contrast=args.contrast, contrast_beta=args.contrast_beta, lens=args.lens,
                            hint=args.hint)
    except IaforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rec, ensure_ascii=False, sort_keys=True) if args.json else format_record(rec))
    return 0


def _publish(args) -> int:
    from iaforge.publish.push import load_manifest, plan_lines, push, token_from_env, verify

    manifest = load_manifest(args.manifest)
    verify(args.manifest, manifest)
    for line in plan_lines(manifest):
        print(line)
    if not args.push:
        print("dry run: nothing sent (add --push, with HF_TOKEN set, to upload)")
        return 0
    token = token_from_env()
    if token is None:
        raise ValidationError("environment", "HF_TOKEN", "must hold a Hub token with write access to push; nothing sent")
    receipt = push(args.manifest, token=token, receipt_path=args.receipt, collection=not args.no_collection)
    print(f"{len(receipt['repos'])} repos pushed; receipt: {args.receipt}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="iaforge", description="Introspection adapters for fine-tuned LLMs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("catalog", help="list, check or sync the behavior catalog")
    c.add_argument("action", choices=["list", "check", "sync"])
    c.add_argument("--paths", nargs="*", help="catalog files or folders (default: params.yaml catalog.paths)")
    c.add_argument("--params", default="params.yaml")
    c.add_argument("--grid", action="append", metavar="ID=N,N,N",
                   help="sync: put a grid entry's first N ia_train, dpo, heldout instances in the run")
    c.set_defaults(fn=_catalog)
    p = sub.add_parser("profile", help="apply a params profile")
    p.add_argument("action", choices=["apply"])
    p.add_argument("file")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(fn=_profile)
    k = sub.add_parser("check", help="validate params.yaml and the catalog (one line per problem)")
    k.add_argument("--params", default="params.yaml")
    k.set_defaults(fn=_check)
    g = sub.add_parser("grid", help="plan the grid branch's shards (params `grid` -> `grid_shards`)")
    g.add_argument("action", choices=["sync"])
    g.add_argument("--params", default="params.yaml", help="params.yaml or a profile (e.g. profiles/tiny.yaml)")
    g.add_argument("--base", default="params.yaml", help="what a profile is merged over (default params.yaml)")
    g.set_defaults(fn=_grid)
    u = sub.add_parser("publish", help="upload the staged Hub repos (the `publish` stage's manifest)")
    u.add_argument("--manifest", default="publish/hub/manifest.json")
    u.add_argument("--push", action="store_true", help="really upload (needs HF_TOKEN); otherwise a dry run")
    u.add_argument("--receipt", default="publish/receipt.json", help="where the commit ids and URLs are written")
    u.add_argument("--no-collection", action="store_true", help="do not create or update the Hub Collection")
    u.set_defaults(fn=_publish)
    a = sub.add_parser("audit", help="audit any LoRA adapter of the same base with the IA (top-5 candidate behaviors)")
    a.add_argument("--variant", required=True, metavar="PATH_OR_HUB_ID",
                   help="the LoRA to audit: a PEFT folder, or a Hub id org/name[/subfolder][@revision]")
    a.add_argument("--ia", metavar="PATH_OR_HUB_ID", help="the IA (default: models/ia/dpo, else models/ia/sft)")
    a.add_argument("--base", default="models/base", help="the base model folder (default: models/base)")
    a.add_argument("--samples", type=int, default=8, help="self-reports to sample, questions taken in turn (default 8)")
    a.add_argument("--question", action="append", metavar="TEXT",
                   help="ask this instead of the IA question set's evaluation questions (repeatable)")
    a.add_argument("--max-new-tokens", type=int, help="per self-report (default: params evaluate.max_new_tokens)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--contrast", type=float, metavar="ALPHA",
                   help="sample each token against the IA on the base model (log p - ALPHA log p_base; 1 is usual): "
                        "removes the IA's prior over its training behaviors (docs/results.md)")
    a.add_argument("--contrast-beta", type=float, default=0.1, metavar="BETA",
                   help="with --contrast: only tokens with p >= BETA * the most likely one (default 0.1)")
    a.add_argument("--lens", type=int, default=0, metavar="K",
                   help="also list the K tokens the LoRA alone (no IA) raises most over the base model on the "
                        "questions: the difference lens, a white-box reading beside the self-reports (docs/audit.md)")
    a.add_argument("--hint", action="store_true",
                   help="ask the IA's own question followed by the difference lens's words for this LoRA (an IA "
                        "trained with grid_ia.hint.k > 0 carries the reference they are made against; docs/audit.md)")
    a.add_argument("--params", default="params.yaml", help="where the system prompt and question set are read, if present")
    a.add_argument("--json", action="store_true", help="print one JSON record instead of the table")
    a.set_defaults(fn=_audit)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except IaforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
