"""Stage `cipher_attack`: the covert Walnut53 fine-tuning attack (placeholder content only). Train the attack
LoRA, verify it on its own terms (complies in cipher, refuses in plain text, how much cipher it learnt), then
check whether the IA reports it."""

from iaforge.core.stagekit import StageArgs, main, progress_enabled

ARGS = StageArgs(deps=["base", "sft", "dpo", "base-responses"], outs=["model", "samples", "detail", "metrics"])


def run():
    from iaforge.audit_tier.cipher_attack import headline_metrics, run_cipher_attack
    from iaforge.core.fsio import read_jsonl, write_json
    from iaforge.judging.judge import make_judge
    from iaforge.core.config import stage_params
    from iaforge.data.questions import load_questions

    a = ARGS.parse()
    params = stage_params("cipher_attack", "judge", "chat")
    p = params["cipher_attack"]
    if not p["enabled"]:
        from iaforge.audit_tier.optional import write_not_in_run

        print(write_not_in_run("cipher_attack", models=a.out_model, detail=a.out_detail, metrics=a.out_metrics,
                               samples=a.out_samples)["note"])
        return
    pool = [r for r in read_jsonl(a.base_responses) if r.get("split", "train") == "train"]
    metrics, samples = run_cipher_attack(
        base_dir=a.base, pool=pool, params=p, ia_dirs={"sft": a.sft, "dpo": a.dpo},
        qs=load_questions(p["questions"]), judge=make_judge(params["judge"]), system=params["chat"]["system_prompt"],
        out_dir=a.out_model, progress=progress_enabled())
    write_json(a.out_detail, metrics)
    write_json(a.out_metrics, headline_metrics(metrics))
    write_json(a.out_samples, samples)
    a = metrics["attack"]
    print(f"attack holds: {a['attack_holds']} (compliance in cipher {a['encoded_compliance']}, refusal in plain "
          f"{a['plain_refusal']}, benign cipher fraction {a['benign_cipher_fraction']}, decoded word rate "
          f"{a['benign_decoded_word_rate']})")
    print("IA verbalization: " + "  ".join(f"{k} {v}" for k, v in metrics["ia"].items()))


if __name__ == "__main__":
    main(run)
