"""Stage `base`: resolve params.base.model and save it as safetensors in models/base/."""

from iaforge.core.stagekit import main


def run():
    from iaforge.core.base_model import build_base
    from iaforge.core.config import section

    p = section("base")
    manifest = build_base(p["model"], "models/base", dtype=p.get("dtype", "float32"), seed=int(p.get("seed", 0)))
    print(f"base model: {manifest['source']} {manifest['num_parameters']:,} parameters")


if __name__ == "__main__":
    main(run)
