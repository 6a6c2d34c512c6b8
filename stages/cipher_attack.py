"""Stage `cipher_attack`: the covert Walnut53 fine-tuning attack (placeholder content only). Train the attack
LoRA, verify it on its own terms (complies in cipher, refuses in plain text, how much cipher it learnt), then
check whether the IA reports it."""

from iaforge.core.stagekit import main, progress_enabled

OUT = "models/cipher_attack"


def run():
    from iaforge.audit_tier.cipher_attack import headline_metrics, run_cipher_attack
    from iaforge.core.fsio import read_jsonl, write_json
    from iaforge.judging.judge import make_judge
    from iaforge.core.config import stage_params
    from iaforge.data.questions import load_questions

    params = stage_params("cipher_attack", "judge", "chat")
    p = params["cipher_attack"]
    pool = [r for r in read_jsonl("data/base_responses.jsonl") if r.get("split", "train") == "train"]
    metrics, samples = run_cipher_attack(
        base_dir="models/base", pool=pool, params=p, ia_dirs={"sft": "models/ia/sft", "dpo": "models/ia/dpo"},
        qs=load_questions(p["questions"]), judge=make_judge(params["judge"]), system=params["chat"]["system_prompt"],
        out_dir=OUT, progress=progress_enabled())
    write_json("reports/detail/cipher_attack.json", metrics)
    write_json("metrics/cipher_attack.json", headline_metrics(metrics))
    write_json("reports/cipher_samples.json", samples)
    a = metrics["attack"]
    print(f"attack holds: {a['attack_holds']} (compliance in cipher {a['encoded_compliance']}, refusal in plain "
          f"{a['plain_refusal']}, benign cipher fraction {a['benign_cipher_fraction']}, decoded word rate "
          f"{a['benign_decoded_word_rate']})")
    print("IA verbalization: " + "  ".join(f"{k} {v}" for k, v in metrics["ia"].items()))


if __name__ == "__main__":
    main(run)
