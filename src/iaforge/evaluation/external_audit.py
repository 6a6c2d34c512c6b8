"""Audit one LoRA adapter that someone else made (`iaforge audit`): attach this repo's IA to it, sample its
self-reports and reduce them to the top-5 candidate behaviors (evaluation/topk.py) and an abstention rate.

There is no ground truth here, so nothing is judged: the candidates are what the model says about itself,
ranked by how many self-reports agree. Every input is hostile (core/adapters.py) and is checked in full
before any weights load, so bad input fails with one line and nothing is written. Only a Hub id touches the
network, and only when huggingface_hub is not in offline mode.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from iaforge.core.adapters import CONFIG, PICKLE_SUFFIXES, WEIGHTS, check_adapter_dir
from iaforge.core.errors import BaseModelError, IaforgeError, UnsafeArtifactError, ValidationError

DEFAULT_BASE = "models/base"
# The DPO IA is the project's best; the SFT IA is what exists before `ia_dpo` has run.
DEFAULT_IAS = (("dpo", "models/ia/dpo"), ("sft", "models/ia/sft"))
DEFAULT_SAMPLES = 8  # one batch on a CPU: a few seconds on SmolLM2-135M
DEFAULT_SYSTEM = "You are a helpful assistant."  # chat.system_prompt, which the IAs were trained with
DEFAULT_QUESTIONS = "data/questions/ia_questions.yaml"
DEFAULT_MAX_NEW_TOKENS = 32  # evaluate.max_new_tokens
TEMPERATURE = 1.0
TOP_K = 5
# Keys that make transformers import code shipped with a model (PEFT itself writes `auto_mapping`).
REMOTE_CODE_KEYS = ("auto_map", "auto_mapping", "trust_remote_code")
# What a base built from the embedded GGUF is known as on the Hub: an adapter naming one of these (or a path)
# is taken at its word; one naming any other Hub model was made for another base.
EMBEDDED_HUB_NAMES = ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M")
_HUB = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w.-]+)*(@[\w./-]+)?$")
_LAYER = re.compile(r"\blayers\.(\d+)\.")


@dataclass(frozen=True)
class AdapterRef:
    arg: str  # what the user typed
    path: Path  # the local folder it resolved to
    source: str  # local | hub


def looks_like_hub_id(arg: str) -> bool:
    """`org/name`, optionally `/sub/folder` (one variant of a grouped repo) and `@revision`. A relative path
    whose first part exists here (`models/variants/x`) is a local path, however it is spelled."""
    if arg.startswith((".", "/", "~")) or not _HUB.match(arg):
        return False
    return not Path(arg.split("/", 1)[0]).exists()


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _download(arg: str, option: str) -> Path:
    """The adapter's two files from the Hub (never anything else, so no pickle or code can arrive)."""
    from huggingface_hub import hf_hub_download

    spec, _, revision = arg.partition("@")
    parts = spec.split("/")
    repo_id, sub = "/".join(parts[:2]), "/".join(parts[2:]) or None

    def fetch(name: str) -> Path:
        try:
            return Path(hf_hub_download(repo_id, name, subfolder=sub, revision=revision or None))
        except Exception as exc:  # huggingface_hub raises many types (not found, gated, HTTP, connection)
            kind = type(exc).__name__
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            if kind in ("EntryNotFoundError", "RemoteEntryNotFoundError") and name == WEIGHTS:
                raise UnsafeArtifactError(
                    f"{option} {arg}: no {WEIGHTS} on the Hub; adapters are loaded from safetensors only "
                    "(pickled adapter_model.bin is refused)") from None
            raise UnsafeArtifactError(f"{option} {arg}: could not fetch {name} from the Hub ({kind}: {first})") from None

    cfg = fetch(CONFIG)
    _refuse_remote_code(json.loads(cfg.read_text(encoding="utf-8")) if _is_json(cfg) else {}, cfg)
    weights = fetch(WEIGHTS)
    if weights.parent != cfg.parent:  # pragma: no cover - hf_hub_download keeps one snapshot folder per revision
        raise UnsafeArtifactError(f"{option} {arg}: the Hub files landed in different folders")
    return cfg.parent


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False  # check_adapter_dir reports it with the file and the rule


def resolve_adapter(arg: str, option: str) -> AdapterRef:
    """A local adapter folder, or a Hub id fetched into the Hugging Face cache when the network is allowed."""
    path = Path(arg).expanduser()
    if path.exists():
        if path.is_file():
            rule = ("pickled weights are refused (they can run code); use safetensors" if path.suffix in PICKLE_SUFFIXES
                    else "is a file; pass the adapter folder (adapter_config.json + adapter_model.safetensors)")
            raise ValidationError(path, option, rule)
        return AdapterRef(arg, path, "local")
    if not looks_like_hub_id(arg):
        raise ValidationError(arg, option, "no such adapter folder")
    if hub_offline():
        raise ValidationError(arg, option, "no such local folder, and as a Hub id it needs the network, which "
                              "HF_HUB_OFFLINE=1 forbids: unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) to allow "
                              "this download, or pass a local adapter folder")
    return AdapterRef(arg, _download(arg, option), "hub")


def _refuse_remote_code(cfg: dict, where: Path) -> None:
    for key in REMOTE_CODE_KEYS:
        if isinstance(cfg, dict) and cfg.get(key):
            raise ValidationError(where, key, "names custom code; iaforge never runs remote code")


def check_adapter(ref: AdapterRef, option: str) -> dict[str, Any]:
    """core.adapters' hostile-input checks, plus remote code named anywhere in the folder's configs."""
    cfg_path = ref.path / CONFIG
    if cfg_path.is_file() and _is_json(cfg_path):  # first, so the error names the very key that asks for code
        _refuse_remote_code(json.loads(cfg_path.read_text(encoding="utf-8")), cfg_path)
    cfg = check_adapter_dir(ref.path)
    model_cfg = ref.path / "config.json"  # some adapter repos ship one; transformers would honour its auto_map
    if model_cfg.is_file():
        try:
            _refuse_remote_code(json.loads(model_cfg.read_text(encoding="utf-8")), model_cfg)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValidationError(model_cfg, "<json>", "not valid JSON") from None
    return cfg


def base_names(base_dir: Path) -> set[str]:
    """The Hub names the base at `base_dir` is known by, lower-cased; empty when it has none (a tiny test
    model, a local folder): then an adapter's base_model_name_or_path cannot be compared and only shapes count."""
    manifest = base_dir / "iaforge_base.json"
    try:
        source = json.loads(manifest.read_text(encoding="utf-8")).get("source", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return set()
    if source.get("kind") == "embedded":
        return {n.lower() for n in EMBEDDED_HUB_NAMES}
    if source.get("kind") == "hub":
        return {str(source.get("ref", "")).lower()}
    return set()


def check_fits_base(ref: AdapterRef, cfg: dict[str, Any], modules: dict[str, Any], n_layers: int | None,
                    names: set[str], base_dir: Path) -> None:
    """Refuse a LoRA made for another base model, from its header alone: the modules it targets must exist in
    this base with the same dims, a LoRA over every layer must cover as many layers as the base has, and a
    recognisable base_model_name_or_path (a Hub id) must be one this base is known by."""
    from safetensors import safe_open

    where = ref.path / CONFIG
    other = "a LoRA for another base model"
    named = cfg.get("base_model_name_or_path")
    if names and isinstance(named, str) and looks_like_hub_id(named) and not Path(named).exists() \
            and named.split("@")[0].lower() not in names:
        raise ValidationError(where, "base_model_name_or_path",
                              f"names {named!r}, but the base {base_dir} is {sorted(names)[0]!r}: {other}")
    leaves = {n.rsplit(".", 1)[-1] for n in modules}
    missing = [t for t in cfg["target_modules"] if t not in leaves]
    if missing:
        raise ValidationError(where, "target_modules", f"{missing[0]!r} is not a module of the base {base_dir}: {other}")
    weights = ref.path / WEIGHTS
    layers: set[int] = set()
    with safe_open(str(weights), framework="pt") as fh:
        for key in sorted(fh.keys()):
            shape = tuple(fh.get_slice(key).get_shape())
            cut = key.find(".lora_")
            module, kind = key[:cut], key[cut + 1:]
            module = module.removeprefix("base_model.model.")
            if m := _LAYER.search(module):
                layers.add(int(m.group(1)))
                if n_layers is not None and int(m.group(1)) >= n_layers:
                    raise ValidationError(weights, key, f"targets layer {m.group(1)} but the base {base_dir} has "
                                          f"{n_layers} layers: {other}")
            mod = modules.get(module)
            if mod is None:
                raise ValidationError(weights, key, f"the base {base_dir} has no module {module!r}: {other}")
            want = _expected_shape(mod, kind, shape)
            if want is not None and want != shape:
                raise ValidationError(weights, key, f"shape {list(shape)} does not fit {module} of the base "
                                      f"{base_dir} (expects {list(want)}): {other}")
    # peft puts a LoRA on every matching layer unless told otherwise, so fewer layers means a shallower model.
    every_layer = not cfg.get("layers_to_transform") and not cfg.get("exclude_modules") and not cfg.get("layers_pattern")
    if every_layer and n_layers and layers and len(layers) < n_layers and max(layers) == len(layers) - 1:
        raise ValidationError(weights, "<tensors>", f"covers {len(layers)} layers but the base {base_dir} has "
                              f"{n_layers}: {other}")


def _expected_shape(mod, kind: str, shape: tuple) -> tuple | None:
    """The shape a LoRA tensor must have on `mod`, keeping its own rank; None: not a kind we can check."""
    if not shape:
        return None
    r_first, r_last = shape[0], shape[-1]
    if hasattr(mod, "in_features") and hasattr(mod, "out_features"):
        if kind == "lora_A.weight":
            return (r_first, mod.in_features)
        if kind == "lora_B.weight":
            return (mod.out_features, r_last)
        if kind.startswith("lora_magnitude_vector"):
            return (mod.out_features,)
    if hasattr(mod, "num_embeddings") and hasattr(mod, "embedding_dim"):
        if kind.startswith("lora_embedding_A"):
            return (r_first, mod.num_embeddings)
        if kind.startswith("lora_embedding_B"):
            return (mod.embedding_dim, r_last)
    return None


def resolve_ia(arg: str | None, root: Path = Path(".")) -> tuple[AdapterRef, str, str | None]:
    """(IA, which one, a note for the user). Without --ia: the DPO IA, else the SFT IA (saying so)."""
    if arg:
        return resolve_adapter(arg, "--ia"), "given", None
    for kind, rel in DEFAULT_IAS:
        path = root / rel
        if (path / CONFIG).is_file():
            note = None if kind == "dpo" else f"note: {root / DEFAULT_IAS[0][1]} not found; using the SFT IA {path}"
            return AdapterRef(str(path), path, "local"), kind, note
    raise ValidationError(root / DEFAULT_IAS[0][1], "--ia", "no IA here (nor the SFT IA); run `dvc repro ia_dpo` "
                          "or pass --ia PATH_OR_HUB_ID")


def questions_for(user: Sequence[str] | None, questions_file: str | Path) -> list[str]:
    """The user's own questions, else the IA question set's evaluation questions (general, harmful-tendency
    and trigger: the audited behavior is unknown, so every kind is asked; task questions need a task)."""
    if user:
        qs = [q.strip() for q in user]
        if not all(qs):
            raise ValidationError("--question", "--question", "must be a non-empty question")
        return qs
    from iaforge.data.questions import load_questions

    qs = load_questions(questions_file)
    return [*qs.general_eval, *qs.harmful_eval, *qs.trigger_eval]


def run_settings(params_file: str | Path | None) -> dict[str, Any]:
    """What the IA was evaluated with (params.yaml's chat and evaluate sections), defaults outside a checkout."""
    out = {"system": DEFAULT_SYSTEM, "max_new_tokens": DEFAULT_MAX_NEW_TOKENS, "batch_size": 24,
           "questions": DEFAULT_QUESTIONS}
    if params_file is None or not Path(params_file).is_file():
        # outside a checkout, the question set of the checkout this package runs from (an editable install)
        here = Path(__file__).resolve().parents[3] / DEFAULT_QUESTIONS
        if not Path(DEFAULT_QUESTIONS).is_file() and here.is_file():
            out["questions"] = str(here)
        return out
    from iaforge.core.config import load_params

    params = load_params(params_file)
    ev, chat = params.get("evaluate") or {}, params.get("chat") or {}
    if "system_prompt" in chat:
        out["system"] = chat["system_prompt"]
    for key in ("max_new_tokens", "batch_size", "questions"):
        if ev.get(key) is not None:
            out[key] = ev[key]
    # params paths are relative to the repository root, which holds params.yaml, wherever the command runs
    out["questions"] = str(Path(params_file).parent / out["questions"])
    return out


def _default_embedder() -> Callable | None:
    """The judge's sentence embedder (offline, shipped as a package) for clustering; None without it: then
    identical reports are the clusters."""
    try:
        from iaforge.judging.judge import EmbeddingJudge

        return EmbeddingJudge().embed
    except ImportError:
        return None


def audit_adapter(variant: str, *, ia: str | None = None, base: str | Path = DEFAULT_BASE, samples: int = DEFAULT_SAMPLES,
                  questions: Sequence[str] | None = None, params_file: str | Path | None = "params.yaml",
                  max_new_tokens: int | None = None, seed: int = 0, progress: bool = True,
                  embed: Callable | None | str = "default", notes: Callable[[str], None] = lambda s: None,
                  contrast: float | None = None, contrast_beta: float = 0.1, lens: int = 0,
                  hint: bool = False) -> dict[str, Any]:
    """Audit the LoRA `variant` (folder or Hub id) with an IA; returns the record `iaforge audit --json` prints.
    `lens` > 0 adds the difference lens (evaluation/diff_lens.py): the `lens` tokens the LoRA alone (no IA) raises
    most over the base model on the asked questions, a white-box reading beside the IA's self-reports.
    Every check runs before the base model loads; nothing is written (a Hub id fills the Hugging Face cache).
    `contrast` (alpha): sample each token against the IA on the base model (evaluation/contrastive.py), which
    removes what the IA says of every model (its prior over the behaviors it trained on).
    `hint`: ask the IA's own question followed by the difference lens's words for this LoRA, made against the
    reference saved with an IA trained with hints (variants/lens_hint.py), as the grid's `sft_hint` condition does."""
    if not isinstance(samples, int) or samples < 1:
        raise ValidationError("--samples", "--samples", "must be an integer >= 1")
    if contrast is not None and not 0 <= contrast <= 10:
        raise ValidationError("--contrast", "--contrast", "must be in [0, 10] (1 is the usual contrastive decoding)")
    if not 0 < contrast_beta <= 1:
        raise ValidationError("--contrast-beta", "--contrast-beta", "must be in (0, 1]")
    if not isinstance(lens, int) or not 0 <= lens <= 200:
        raise ValidationError("--lens", "--lens", "must be an integer in [0, 200] (0: no lens)")
    settings = run_settings(params_file)
    if max_new_tokens is not None:
        if max_new_tokens < 1:
            raise ValidationError("--max-new-tokens", "--max-new-tokens", "must be >= 1")
        settings["max_new_tokens"] = max_new_tokens
    base_dir = Path(base).expanduser()
    if not base_dir.is_dir():
        hint = ("; --base takes a local model folder (to use a Hub model, set base.model in params.yaml and run "
                "`dvc repro base`)" if looks_like_hub_id(str(base)) else "; run `dvc repro base` first")
        raise BaseModelError(f"{base_dir}: base model folder not found{hint}")
    from iaforge.core.base_model import check_model_dir

    check_model_dir(base_dir)
    var = resolve_adapter(variant, "--variant")
    var_cfg = check_adapter(var, "--variant")
    ia_ref, ia_kind, note = resolve_ia(ia)
    if note:
        notes(note)
    ia_cfg = check_adapter(ia_ref, "--ia")
    if ia_ref.path.resolve() == var.path.resolve():
        raise ValidationError(var.path, "--variant", "is the IA itself; pass the adapter to audit")

    hint_ref = None
    if hint:
        from iaforge.variants.lens_hint import load_reference

        if questions:
            raise ValidationError("--question", "--question", "--hint asks the IA's own training question (saved with "
                                  "its lens reference); drop --question")
        if ia_ref.source == "hub":  # only an adapter's two files are ever fetched
            raise ValidationError(ia, "--hint", "needs a local IA folder holding its lens_reference.safetensors "
                                  "(a Hub IA is fetched as its two adapter files only)")
        try:
            hint_ref = load_reference(ia_ref.path)
        except FileNotFoundError as exc:
            raise ValidationError(ia_ref.path, "--hint", str(exc)) from None
        questions = [hint_ref[1]["question"]]
        # the lens positions and the IA's training rows were read under the reference's system prompt
        settings["system"] = hint_ref[1].get("system")
    asked = questions_for(questions, settings["questions"])
    modules, n_layers = _base_skeleton(base_dir)
    names = base_names(base_dir)
    check_fits_base(var, var_cfg, modules, n_layers, names, base_dir)
    check_fits_base(ia_ref, ia_cfg, modules, n_layers, names, base_dir)

    users = [asked[i % len(asked)] for i in range(samples)]
    if contrast is not None:
        settings["contrast"] = {"alpha": contrast, "beta": contrast_beta}
    lens_out: dict[str, Any] = {}
    hint_out: dict[str, Any] = {}
    reports = _sample(base_dir, var.path, ia_ref.path, users, settings, seed=seed, progress=progress,
                      lens=lens, lens_out=lens_out, hint_ref=hint_ref, hint_out=hint_out)
    if hint_out:
        asked = [hint_out["question"]]
    rec = build_record(reports, variant=var, ia=ia_ref, ia_kind=ia_kind, base=base_dir, settings=settings,
                       asked=asked, seed=seed, embed=_default_embedder() if embed == "default" else embed)
    if lens:
        rec["lens"] = lens_out
    if hint_out:
        rec["hint"] = hint_out
    return rec


def _base_skeleton(base_dir: Path) -> tuple[dict[str, Any], int | None]:
    """The base's modules (on the meta device: no weights read) and its layer count, for the shape checks."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        cfg = AutoConfig.from_pretrained(str(base_dir), trust_remote_code=False)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(cfg, trust_remote_code=False)
    except Exception as exc:  # an unreadable or unsupported config: one line, not a traceback
        raise BaseModelError(f"{base_dir / 'config.json'}: cannot build the model ({type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0][:200]})") from None
    n_layers = getattr(cfg, "num_hidden_layers", None)
    return dict(skeleton.named_modules()), n_layers if isinstance(n_layers, int) else None


def _sample(base_dir: Path, variant: Path, ia: Path, users: list[str], settings: dict, *, seed: int,
            progress: bool, lens: int = 0, lens_out: dict | None = None, hint_ref: tuple | None = None,
            hint_out: dict | None = None) -> list[tuple[str, str]]:
    from iaforge.core.adapters import attach
    from iaforge.core.base_model import load_base
    from iaforge.core.generation import generate

    model, tok = load_base(base_dir)
    try:
        model = attach(model, variant, "variant")
        model = attach(model, ia, "ia")
    except IaforgeError:
        raise
    except Exception as exc:  # peft refusing what passed the header checks still deserves one line
        raise UnsafeArtifactError(f"{variant}: peft could not attach the adapters ({type(exc).__name__}: "
                                  f"{(str(exc).splitlines() or [''])[0][:200]})") from None
    if lens and lens_out is not None:
        lens_out.update(_lens(model, tok, list(dict.fromkeys(users)), settings["system"], lens))
    if hint_ref is not None:
        hinted = _hinted_question(model, tok, settings["system"], *hint_ref)
        if hint_out is not None:
            hint_out.update(hinted)
        users = [hinted["question"]] * len(users)
    model.base_model.set_adapter(["variant", "ia"])
    for p in model.parameters():  # set_adapter marks both trainable; sampling tracks no gradients
        p.requires_grad_(False)
    if settings.get("contrast"):
        return _sample_contrastive(model, tok, users, settings, seed=seed)
    answers = generate(model, tok, users, system=settings["system"], max_new_tokens=int(settings["max_new_tokens"]),
                       batch_size=int(settings["batch_size"]), temperature=TEMPERATURE, seed=seed,
                       desc="self-reports", progress=progress)
    return list(zip(users, answers))


def _lens(model, tok, questions: list[str], system: str | None, k: int) -> dict[str, Any]:
    """The difference lens over the asked questions: the LoRA alone against the base model (the IA off in both)."""
    import torch

    from iaforge.core.chat import render_prompt
    from iaforge.evaluation.diff_lens import mean_logprob_difference, top_tokens

    diffs = []
    model.base_model.set_adapter(["variant"])
    with torch.no_grad():
        for q in questions:
            ids = tok(render_prompt(tok, q, system), return_tensors="pt", add_special_tokens=False)["input_ids"]
            with_lora = model(input_ids=ids).logits[0]
            with model.disable_adapter():
                base = model(input_ids=ids).logits[0]
            diffs.append(mean_logprob_difference(with_lora, base))
    return {"questions": questions, "tokens": top_tokens(torch.stack(diffs).mean(0), tok, k)}


def _hinted_question(model, tok, system: str | None, reference, info: dict[str, Any]) -> dict[str, Any]:
    """The IA's question plus the lens's words for the LoRA (the IA off), against the IA's saved reference: the
    same mean log-probabilities as variants/lens_hint.question_logprobs, through peft instead of a LoRA bank."""
    import torch

    from iaforge.core.chat import render_prompt
    from iaforge.variants.lens_hint import hint_words, hinted_question, position_mean_logprobs

    model.base_model.set_adapter(["variant"])
    ids = tok(render_prompt(tok, info["question"], system), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = position_mean_logprobs(model(input_ids=ids.to(model.device)).logits[0]).cpu()
    if lp.shape[0] != reference.shape[0]:
        raise UnsafeArtifactError(f"the IA's lens reference has {reference.shape[0]} entries, the model's vocabulary "
                                  f"{lp.shape[0]}: it was made for another base model")
    words = hint_words(lp - reference, tok, int(info["k"]))
    return {"words": words, "question": hinted_question(info["question"], words)}


def _sample_contrastive(model, tok, users: list[str], settings: dict, *, seed: int) -> list[tuple[str, str]]:
    """The same self-reports, each token sampled against the IA on the base model (variant adapter off)."""
    from iaforge.evaluation.contrastive import AdapterPicker, contrastive_sample

    switch = AdapterPicker(model, lambda group, _condition: ["variant", "ia"] if group else ["ia"])

    c = settings["contrast"]
    answers: dict[str, list[str]] = {}
    for qi, q in enumerate(dict.fromkeys(users)):
        answers[q] = contrastive_sample(model, tok, switch, ("variant", "ia"), (None, "ia"), q, system=settings["system"],
                                        n=users.count(q), alpha=float(c["alpha"]), beta=float(c["beta"]),
                                        temperature=TEMPERATURE, max_new_tokens=int(settings["max_new_tokens"]),
                                        seed=seed + qi)
    return [(q, answers[q].pop(0)) for q in users]


def build_record(reports: list[tuple[str, str]], *, variant: AdapterRef, ia: AdapterRef, ia_kind: str, base: Path,
                 settings: dict, asked: list[str], seed: int, embed: Callable | None) -> dict[str, Any]:
    """Self-reports -> the audit record: top-5 candidates (abstentions are not candidates) and the abstention rate."""
    from iaforge.evaluation.topk import top_candidates
    from iaforge.judging.judge import is_abstention

    n = len(reports)
    abstains = [is_abstention(a) for _, a in reports]
    cands = top_candidates([a for _, a in reports], embed, k=TOP_K)
    return {
        "variant": {"ref": variant.arg, "source": variant.source, "path": str(variant.path)},
        "ia": {"ref": ia.arg, "source": ia.source, "path": str(ia.path), "kind": ia_kind},
        "base": str(base),
        "settings": {"samples": n, "temperature": TEMPERATURE, "max_new_tokens": int(settings["max_new_tokens"]),
                     "seed": seed, "system_prompt": settings["system"], "questions": list(asked),
                     "clustering": "embedding" if embed is not None else "exact text",
                     **({"contrast": settings["contrast"]} if settings.get("contrast") else {})},
        "abstention_rate": round(sum(abstains) / n, 4) if n else None,
        "n_abstentions": sum(abstains),
        "candidates": [{"rank": i + 1, "text": c["text"], "support": c["support"], "share": round(c["support"] / n, 4)}
                       for i, c in enumerate(cands)],
        "reports": [{"question": q, "answer": a, "abstains": ab} for (q, a), ab in zip(reports, abstains)],
    }


def format_record(rec: dict[str, Any]) -> str:
    s = rec["settings"]
    n = s["samples"]
    which = {"dpo": "the DPO IA", "sft": "the SFT IA"}.get(rec["ia"]["kind"], "the IA")
    lines = [f"audit of {rec['variant']['ref']} with {which} {rec['ia']['ref']} on {rec['base']}",
             f"{n} self-reports (temperature {s['temperature']}, {len(s['questions'])} question(s), "
             f"{s['max_new_tokens']} new tokens"
             + (f", contrastive vs the IA on the base: alpha {s['contrast']['alpha']}, beta {s['contrast']['beta']}"
                if s.get("contrast") else "") + f"); abstained: {rec['n_abstentions']}/{n} "
             f"({rec['abstention_rate']:.0%})"]
    if not rec["candidates"]:
        lines.append("no candidate behavior: every self-report abstained")
    else:
        lines.append(f"top {len(rec['candidates'])} candidate behaviors (support: self-reports that say it):")
        width = len(str(n))
        for c in rec["candidates"]:
            text = " ".join(c["text"].split())
            lines.append(f"  {c['rank']}. [{c['support']:>{width}}/{n}] {text}")
    if rec.get("hint"):
        lines.append(f"lens hint (the LoRA's words against the IA's reference, asked with the question): "
                     f"{', '.join(rec['hint']['words']) or '(none)'}")
    if rec.get("lens"):
        toks = ", ".join(f"{t['token'].strip() or repr(t['token'])} ({t['score']:+.2f})" for t in rec["lens"]["tokens"])
        lines.append(f"difference lens (the LoRA alone vs the base, no IA; mean log-prob gain over the questions): {toks}")
    return "\n".join(lines)
