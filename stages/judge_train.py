"""Stage `judge_train`: the learned judge, a cross-encoder fine-tuned from the shipped all-MiniLM-L6-v2 weights on
pairs generated from the behavior catalog plus the calibration set's dev part (iaforge.judging.learned_train;
docs/judge.md). Writes the model folder (safetensors, tokenizer, iaforge_judge.json manifest) atomically."""

from iaforge.core.stagekit import StageArgs, main

ARGS = StageArgs(deps=["catalog", "topics", "calibration"], outs=["model"])


def run():
    from iaforge.core.config import stage_params
    from iaforge.judging.learned_train import TrainConfig, train_judge

    a = ARGS.parse()
    p = stage_params("judge_train")["judge_train"]
    cfg = TrainConfig.from_params(p, "judge_train")
    train_judge(a.out_model, a.catalog, a.topics, a.calibration, cfg)


if __name__ == "__main__":
    main(run)
