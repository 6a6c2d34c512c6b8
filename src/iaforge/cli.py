"""`iaforge`: the command line.

  iaforge catalog list [--paths DIR ...]     the behavior catalog as a table
  iaforge catalog check                      validate every entry and params.yaml's `behaviors` block
  iaforge catalog sync                       rewrite params.yaml's `behaviors` from the catalog
  iaforge profile apply FILE                 merge a profile (e.g. profiles/tiny.yaml) into params.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iaforge.core.errors import IaforgeError


def _catalog(args) -> int:
    from iaforge.data.catalog import load_catalog
    from iaforge.core.config import load_params

    params = load_params(args.params) if Path(args.params).exists() else {}
    paths = args.paths or params.get("catalog", {}).get("paths", ["data/catalog"])
    cat = load_catalog(paths)
    run = params.get("behaviors", {}) or {}
    if args.action == "list":
        from iaforge.data.families import get_family

        def label(b):
            return get_family(b.family).label(b.params)

        rows = [("id", "category", "family", "split", "in run", "v")]
        for b in sorted(cat.values(), key=lambda b: (b.category, label(b), b.id)):
            rows.append((b.id, b.category, label(b), b.split, run.get(b.id, {}).get("split", "-"), str(b.version)))
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
        for bid, entry in run.items():
            if bid not in cat:
                raise IaforgeError(f"{args.params}: field 'behaviors.{bid}': no catalog entry with this id under {paths}")
            if Path(entry.get("spec", "")).resolve() != Path(cat[bid].source).resolve():
                raise IaforgeError(f"{args.params}: field 'behaviors.{bid}.spec': expected {cat[bid].source}")
        print(f"ok: {len(cat)} catalog entries valid; {len(run)} behaviors in the run")
    elif args.action == "sync":
        import yaml

        from iaforge.core.fsio import atomic_write_text

        data = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        data["behaviors"] = {b.id: {"spec": b.source, "split": b.split} for b in sorted(cat.values(), key=lambda b: b.id)}
        atomic_write_text(args.params, yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120))
        print(f"params.yaml: behaviors now lists {len(cat)} entries")
    return 0


def _profile(args) -> int:
    from iaforge.core.profiles import apply_profile

    apply_profile(args.file, args.params)
    print(f"{args.params}: merged {args.file}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="iaforge", description="Introspection adapters for fine-tuned LLMs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("catalog", help="list, check or sync the behavior catalog")
    c.add_argument("action", choices=["list", "check", "sync"])
    c.add_argument("--paths", nargs="*", help="catalog files or folders (default: params.yaml catalog.paths)")
    c.add_argument("--params", default="params.yaml")
    c.set_defaults(fn=_catalog)
    p = sub.add_parser("profile", help="apply a params profile")
    p.add_argument("action", choices=["apply"])
    p.add_argument("file")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(fn=_profile)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except IaforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
