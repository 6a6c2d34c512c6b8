"""Stage `base`: resolve params.base.model and save it as safetensors (models/base/ in dvc.yaml)."""

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(outs=["model"])


def run():
    from iaforge.core.base_model import build_base
    from iaforge.core.config import section

    a = ARGS.parse()
    p = section("base")
    manifest = build_base(p["model"], a.out_model, dtype=p.get("dtype", "float32"), seed=int(p.get("seed", 0)))
    print(f"base model: {manifest['source']} {manifest['num_parameters']:,} parameters")


if __name__ == "__main__":
    main(run)
