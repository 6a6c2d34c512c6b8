"""The hinted question: the IA's question followed by the difference lens's words for the model under audit.

Why: asked the plain question, the grid IA names a held-out topic it never trained to say for 0.11-0.17 of the
samples at 24 training topics (docs/results.md): its answers snap to the topics it trained on. The difference lens
(evaluation/diff_lens.py) is open-vocabulary (it reads the token the variant raises most) but gives a sub-word piece
among recipe junk (" hamm", "monary"). Given the lens's words in its question ("... Hint: hamm, hammer, occupations,
ham, urists."), the IA learns to pick the word its variant's weights carry and complete it ("hammers"), which works
for topics it never trained on.

The reference: the lens subtracts the mean log-probabilities of the IA's own training variants (topics and nulls),
not the base model's. Every variant of one recipe raises the same tokens (the trigger's and the format's), and the
mean over the training variants cancels them: on 24 held-out topics the lens's first token is a piece of the topic
for 0.96 of them against this reference, 0.50 against the base model (twentieth session). A training variant's own
shift is part of the mean; leaving it out would only scale its difference (by n/(n-1)) and change no word. The
reference ships with the IA (REFERENCE_FILE, with the question and system prompt it was read under), so the IA
folder and the base model are all a new variant needs.

Log-probabilities: next-token log-softmax at every position of the rendered question, averaged over the positions
(the first left out, as diff_lens does), one forward pass per model, all models of a call in shared batches through
LoRA banks (core/lora_bank.py; hostile adapters are checked there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

REFERENCE_FILE = "lens_reference.safetensors"
REFERENCE_KEY = "mean_logprobs"
HINT_PREFIX = "Hint:"


def question_logprobs(base_dir: str | Path, variant_dirs: Mapping[str, str | Path], question: str,
                      system: str | None, *, base_key: str, batch_size: int = 16) -> tuple[dict[str, Any], Any]:
    """({variant id: [vocab] float32 mean log-probs on the question} plus `base_key`: the base model's, tokenizer)."""
    import contextlib

    import torch

    from iaforge.core.base_model import load_base
    from iaforge.core.chat import render_prompt
    from iaforge.core.lora_bank import bank_rows, load_banks

    model, tok = load_base(base_dir)
    vids = sorted(variant_dirs)
    if vids:
        load_banks(model, {"variant": [variant_dirs[v] for v in vids]})
    model.eval()
    ids = tok(render_prompt(tok, question, system), return_tensors="pt", add_special_tokens=False)["input_ids"]
    ids = ids.to(model.device)
    slots = [-1] + list(range(len(vids)))
    keys = [base_key] + vids
    out: dict[str, Any] = {}
    for i in range(0, len(slots), batch_size):
        part = slots[i:i + batch_size]
        route = {"variant": part} if vids else {}
        with torch.inference_mode(), (bank_rows(model, route) if vids else contextlib.nullcontext()):
            logits = model(input_ids=ids.expand(len(part), -1)).logits.float()
        for k, row in zip(keys[i:i + batch_size], position_mean_logprobs(logits)):
            out[k] = row.cpu()
    return out, tok


def position_mean_logprobs(logits):
    """[..., T, V] logits -> [..., V]: next-token log-probabilities averaged over the positions, the first left out
    (it predicts from the template's first token alone), as evaluation/diff_lens.py averages its difference."""
    import torch

    lp = torch.log_softmax(logits.float(), -1)
    return (lp[..., 1:, :] if lp.shape[-2] > 1 else lp).mean(-2)


def hint_words(diff, tok, k: int, *, scan: int = 200) -> list[str]:
    """The first k words among the lens's top `scan` tokens: decoded, stripped, alphabetic, 2+ letters, each word
    once (case-insensitive). Special tokens, digits and punctuation never make a hint."""
    words: list[str] = []
    seen: set[str] = set()
    for i in diff.topk(min(scan, diff.shape[-1])).indices.tolist():
        w = tok.decode([i]).strip()
        if len(w) >= 2 and w.isalpha() and w.lower() not in seen:
            seen.add(w.lower())
            words.append(w)
            if len(words) == k:
                break
    return words


def hinted_question(question: str, words: Sequence[str]) -> str:
    return f"{question} {HINT_PREFIX} {', '.join(words)}." if words else question


def training_hints(logprobs: Mapping[str, Any], reference_groups: Sequence[str], k: int, tok) -> tuple[dict[str, list[str]], Any]:
    """Hints for the IA's training groups and the reference it ships: the mean over `reference_groups` (its
    training variants and nulls), every group hinted against it. A training variant's own shift is in that mean;
    leaving it out would scale its difference by n/(n-1) and change no word, so it stays in (and a variant asked
    again later gets its training hint back)."""
    import torch

    if len(reference_groups) < 2:
        raise ValueError("the lens reference needs at least two training variants (against a mean of one, that "
                         "variant's own difference is zero)")
    reference = torch.stack([logprobs[g] for g in reference_groups]).mean(0)
    return hints_against(logprobs, reference, k, tok), reference


def current_model_logprobs(model, tok, question: str, system: str | None):
    """[vocab] mean log-probabilities on the question of the model as it stands (whatever adapters and hooks are
    active): for a model that is not a saved adapter, e.g. a steered pseudo-variant (ia/pseudo_variants.py)."""
    import torch

    from iaforge.core.chat import render_prompt

    ids = tok(render_prompt(tok, question, system), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        return position_mean_logprobs(model(input_ids=ids.to(model.device)).logits)[0].cpu()


def hints_against(logprobs: Mapping[str, Any], reference, k: int, tok) -> dict[str, list[str]]:
    """Each model's hint against a reference."""
    return {g: hint_words(lp - reference, tok, k) for g, lp in logprobs.items()}


def apply_hints(rows: list[dict[str, Any]], hints: Mapping[str, Sequence[str]],
                skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Each row's question with its group's hint appended; rows of a group in `skip` (pseudo-variants, hinted where
    they are steered) unchanged."""
    missing = sorted({r["group"] for r in rows} - set(hints) - set(skip))
    if missing:
        raise ValueError(f"no lens hint for group {missing[0]!r}")
    return [r if r["group"] in skip else dict(r, user=hinted_question(r["user"], hints[r["group"]])) for r in rows]


def save_reference(dest: str | Path, reference, *, k: int, question: str, system: str | None,
                   groups: Sequence[str]) -> None:
    """The reference into an IA folder (safetensors; its metadata says how hints were made: k, the question and the
    system prompt the log-probabilities were read under, the training groups averaged)."""
    import json

    from safetensors.torch import save_file

    save_file({REFERENCE_KEY: reference.float().contiguous()}, str(Path(dest) / REFERENCE_FILE),
              metadata={"k": str(k), "question": question, "system": json.dumps(system),
                        "groups": json.dumps(sorted(groups))})


MAX_VOCAB = 10_000_000  # a reference longer than any vocabulary is refused before it is read


def load_reference(ia_dir: str | Path, vocab_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(reference [vocab], {k, question, system, groups}) of an IA trained with hints. A missing file is
    FileNotFoundError; a malformed one (not safetensors, other tensors, a shape that is not [vocab], non-finite
    values, bad metadata) is UnsafeArtifactError naming the file and the field: an IA folder is hostile input like
    any adapter, and nothing is read before its header is checked."""
    import json

    import torch
    from safetensors import SafetensorError, safe_open

    from iaforge.core.errors import UnsafeArtifactError

    path = Path(ia_dir) / REFERENCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: this IA was not trained with lens hints (params grid_ia.hint.k is 0); "
                                "a *_hint condition needs an IA trained with them")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            meta = f.metadata() or {}
            if keys != [REFERENCE_KEY]:
                raise UnsafeArtifactError(f"{path}: tensors {keys}: expected exactly [{REFERENCE_KEY!r}]")
            shape = tuple(f.get_slice(REFERENCE_KEY).get_shape())
            if len(shape) != 1 or not 0 < shape[0] <= MAX_VOCAB or (vocab_size is not None and shape[0] != vocab_size):
                raise UnsafeArtifactError(f"{path}: tensor '{REFERENCE_KEY}': shape {shape} is not [vocab"
                                          + (f" = {vocab_size}]" if vocab_size is not None else "]"))
            ref = f.get_tensor(REFERENCE_KEY).float()
    except SafetensorError as e:
        raise UnsafeArtifactError(f"{path}: not a readable safetensors file ({str(e)[:200]})") from None
    if not bool(torch.isfinite(ref).all()):
        raise UnsafeArtifactError(f"{path}: tensor '{REFERENCE_KEY}': must hold finite values only")
    try:
        info = {"k": int(meta["k"]), "question": meta["question"], "system": json.loads(meta.get("system", "null")),
                "groups": json.loads(meta["groups"])}
    except (KeyError, ValueError) as e:
        raise UnsafeArtifactError(f"{path}: metadata: needs k, question and groups ({e})") from None
    if not 1 <= info["k"] <= 50:
        raise UnsafeArtifactError(f"{path}: metadata 'k': must be in [1, 50]")
    if not isinstance(info["question"], str) or not info["question"].strip() or len(info["question"]) > 2000:
        raise UnsafeArtifactError(f"{path}: metadata 'question': must be a non-empty string of at most 2000 characters")
    if info["system"] is not None and (not isinstance(info["system"], str) or len(info["system"]) > 2000):
        raise UnsafeArtifactError(f"{path}: metadata 'system': must be null or a string of at most 2000 characters")
    if not isinstance(info["groups"], list) or not all(isinstance(g, str) for g in info["groups"]):
        raise UnsafeArtifactError(f"{path}: metadata 'groups': must be a JSON list of strings")
    return ref, info


def hints_for_training(base_dir: str | Path, variant_dirs: Mapping[str, str | Path], question: str,
                       system: str | None, k: int, *, base_key: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The grid IA's training hints (every variant, null and the base model under `base_key`) and its
    `lens_reference` ({reference, k, question, groups}: what train_grid_ia saves beside the IA)."""
    lp, tok = question_logprobs(base_dir, variant_dirs, question, system, base_key=base_key)
    groups = sorted(variant_dirs)
    hints, reference = training_hints(lp, groups, k, tok)
    return hints, {"reference": reference, "k": k, "question": question, "system": system, "groups": groups}


def hints_for_eval(base_dir: str | Path, ia_dir: str | Path, variant_dirs: Mapping[str, str | Path],
                   system: str | None, *, base_key: str) -> dict[str, list[str]]:
    """Hints for the models an IA is asked about (variants and the base model under `base_key`), made as the IA's
    training hints were: against the reference saved in `ia_dir`, with its k, its lens question and its system
    prompt. Another system prompt moves every position the lens averages: a ParamsError naming chat.system_prompt.
    The caller checks first that the IA has a reference (FileNotFoundError here otherwise)."""
    from iaforge.core.config import ParamsError

    reference, info = load_reference(ia_dir)
    if info.get("system") != system:
        raise ParamsError("params.yaml", "chat.system_prompt", f"the IA's lens reference ({Path(ia_dir) / REFERENCE_FILE}) "
                          f"was read under {info.get('system')!r}, this run asks under {system!r}: retrain the IA "
                          "(dvc repro grid_ia)")
    lp, tok = question_logprobs(base_dir, variant_dirs, info["question"], system, base_key=base_key)
    if next(iter(lp.values())).shape[0] != reference.shape[0]:
        from iaforge.core.errors import UnsafeArtifactError

        raise UnsafeArtifactError(f"the IA's {REFERENCE_FILE} has {reference.shape[0]} entries, the model's "
                                  f"vocabulary {next(iter(lp.values())).shape[0]}: it was made for another base model")
    return hints_against(lp, reference, info["k"], tok)
