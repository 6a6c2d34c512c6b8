"""Stage `publish`: Hub-ready staging folders (IAs, variants, behavior datasets as parquet, results), our own
cards, and a sorted, timestamp-free manifest. Offline: uploading is `iaforge publish --manifest ... --push`."""

from pathlib import Path

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(deps=["base", "sft", "dpo", "variants-root", "behaviors", "measured", "metrics", "details"],
                 outs=["staging"], many=["measured", "metrics", "details"])


def run():
    from iaforge.core.config import stage_params
    from iaforge.core.fsio import read_json
    from iaforge.publish.staging import build_staging

    a = ARGS.parse()
    params = stage_params("publish", "behaviors")
    behaviors = {bid: e["split"] for bid, e in params["behaviors"].items()}
    measured = {}
    for f in a.measured:  # metrics/implantation/<split>.json: what implantation measured of each variant
        measured.update(read_json(f))
    manifest = build_staging(
        a.out_staging, cfg=params["publish"], base_manifest=read_json(Path(a.base) / "iaforge_base.json"),
        ia_dirs={"sft": Path(a.sft), "dpo": Path(a.dpo)}, behaviors=behaviors, variants_root=Path(a.variants_root),
        data_root=Path(a.behaviors), measured=measured, metrics_files=[Path(p) for p in a.metrics],
        detail_files=[Path(p) for p in a.details])
    n = sum(len(r["files"]) for r in manifest["repos"])
    print(f"{a.out_staging}: {len(manifest['repos'])} repos, {n} files staged "
          f"(upload: iaforge publish --manifest {a.out_staging}/manifest.json --push)")


if __name__ == "__main__":
    main(run)
