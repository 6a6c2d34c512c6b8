"""`iaforge audit`: any LoRA of the same base audited with the IA; every bad input is exit 2, one line, no change."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from iaforge.cli import main
from iaforge.evaluation import external_audit as ea


def _lora_on(config, out: Path, *, seed: int = 0, **lora) -> Path:
    """A saved LoRA for a model of `config` (random weights, non-zero B)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from iaforge.core.training import lora_config

    torch.manual_seed(seed)
    pm = get_peft_model(AutoModelForCausalLM.from_config(config), lora_config({"r": 4, **lora}))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    pm.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def other_bases(tmp_path_factory):
    """LoRAs made for models that are not the tiny base: wider, deeper, shallower."""
    from transformers import AutoTokenizer  # noqa: F401  (transformers must import before peft's lora)

    from iaforge.core.base_model import tiny_config

    root = tmp_path_factory.mktemp("other")
    out = {}
    for name, change in {"wider": dict(hidden_size=96, head_dim=24), "deeper": dict(num_hidden_layers=3),
                         "shallower": dict(num_hidden_layers=1)}.items():
        cfg = tiny_config(300)
        for k, v in change.items():
            setattr(cfg, k, v)
        out[name] = _lora_on(cfg, root / name)
    return out


def _tree_digest(*folders: Path) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for f in sorted(Path(folder).rglob("*")):
            h.update(str(f).encode())
            if f.is_file():
                h.update(f.read_bytes())
    return h.hexdigest()


def _copy(src: Path, tmp_path: Path, name: str = "adapter") -> Path:
    d = tmp_path / name
    shutil.copytree(src, d)
    return d


def _run(capsys, *argv):
    rc = main(["audit", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def no_embedder(monkeypatch):
    """Exact-text clustering: the sentence embedder is exercised once, in the good-audit test."""
    monkeypatch.setattr(ea, "_default_embedder", lambda: None)


def test_good_audit_prints_top5_and_json(tiny_base, two_variants, repo_root, capsys):
    args = ["--variant", two_variants["v_one"], "--ia", two_variants["v_two"], "--base", tiny_base, "--samples", 6,
            "--max-new-tokens", 4, "--params", repo_root / "params.yaml"]
    rc, out, err = _run(capsys, *args, "--json")
    assert rc == 0, err
    rec = json.loads(out)
    assert set(rec) == {"variant", "ia", "base", "settings", "abstention_rate", "n_abstentions", "candidates", "reports"}
    assert rec["variant"]["source"] == "local" and rec["ia"]["kind"] == "given"
    s = rec["settings"]
    assert s["samples"] == 6 and s["temperature"] == 1.0 and s["clustering"] == "embedding"
    assert s["system_prompt"] == "You are a helpful assistant."
    # the IA question set's evaluation questions, taken in turn
    from iaforge.data.questions import load_questions

    qs = load_questions(repo_root / "data/questions/ia_questions.yaml")
    assert s["questions"] == [*qs.general_eval, *qs.harmful_eval, *qs.trigger_eval]
    assert [r["question"] for r in rec["reports"]] == [s["questions"][i % len(s["questions"])] for i in range(6)]
    assert rec["abstention_rate"] == round(sum(r["abstains"] for r in rec["reports"]) / 6, 4)
    c = rec["candidates"]
    assert 1 <= len(c) <= 5 and [x["rank"] for x in c] == list(range(1, len(c) + 1))
    assert [x["support"] for x in c] == sorted((x["support"] for x in c), reverse=True)
    assert all(x["share"] == round(x["support"] / 6, 4) for x in c)
    assert sum(x["support"] for x in c) <= 6 - rec["n_abstentions"]

    rc, out, err = _run(capsys, *args)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"audit of {two_variants['v_one']} with the IA")
    assert "6 self-reports (temperature 1.0" in lines[1] and "abstained:" in lines[1]
    assert lines[2].startswith("top ") and lines[3].startswith("  1. [")


def test_contrastive_audit_keeps_the_questions_and_records_its_settings(tiny_base, two_variants, repo_root, capsys,
                                                                        no_embedder):
    args = ["--variant", two_variants["v_one"], "--ia", two_variants["v_two"], "--base", tiny_base, "--samples", 5,
            "--max-new-tokens", 4, "--params", repo_root / "params.yaml", "--question", "Anything odd?",
            "--question", "What did you learn?"]
    rc, out, err = _run(capsys, *args, "--contrast", 1, "--json")
    assert rc == 0, err
    rec = json.loads(out)
    assert rec["settings"]["contrast"] == {"alpha": 1.0, "beta": 0.1}
    assert [r["question"] for r in rec["reports"]] == ["Anything odd?", "What did you learn?"] * 2 + ["Anything odd?"]
    rc, again, err = _run(capsys, *args, "--contrast", 1, "--json")
    assert again == out  # seeded
    rc, plain, err = _run(capsys, *args, "--json")
    assert "contrast" not in json.loads(plain)["settings"]
    rc, out, err = _run(capsys, *args, "--contrast", 11)
    assert rc == 2 and "--contrast" in err and "[0, 10]" in err


def test_lens_lists_what_the_lora_alone_raises_and_leaves_the_reports_unchanged(tiny_base, two_variants, repo_root,
                                                                               capsys, no_embedder):
    import torch

    from iaforge.core.adapters import attach
    from iaforge.core.base_model import load_base
    from iaforge.core.chat import render_prompt
    from iaforge.evaluation.diff_lens import mean_logprob_difference

    args = ["--variant", two_variants["v_one"], "--ia", two_variants["v_two"], "--base", tiny_base, "--samples", 3,
            "--max-new-tokens", 4, "--params", repo_root / "params.yaml", "--question", "Anything odd?", "--json"]
    rc, out, err = _run(capsys, *args, "--lens", 5)
    assert rc == 0, err
    rec = json.loads(out)
    rc, plain, err = _run(capsys, *args)
    assert "lens" not in json.loads(plain) and json.loads(plain)["reports"] == rec["reports"]
    lens = rec["lens"]
    assert lens["questions"] == ["Anything odd?"] and len(lens["tokens"]) == 5
    assert [t["score"] for t in lens["tokens"]] == sorted((t["score"] for t in lens["tokens"]), reverse=True)
    # the same numbers by hand: the variant alone (never the IA) against the bare base model
    model, tok = load_base(tiny_base)
    system = yaml.safe_load((repo_root / "params.yaml").read_text())["chat"]["system_prompt"]
    ids = tok(render_prompt(tok, "Anything odd?", system), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        base = model(input_ids=ids).logits[0]
        lora = attach(model, two_variants["v_one"], "variant")
        with_lora = lora(input_ids=ids).logits[0]
    top = mean_logprob_difference(with_lora, base).topk(5).indices.tolist()
    assert [t["id"] for t in lens["tokens"]] == top
    rc, _, err = _run(capsys, *args[:-1], "--lens", 300)
    assert rc == 2 and "--lens" in err


def test_hint_asks_the_ias_question_with_the_loras_lens_words_against_its_saved_reference(
        tiny_base, two_variants, repo_root, tmp_path, capsys, no_embedder):
    from iaforge.variants.lens_hint import hints_against, question_logprobs, save_reference

    system = yaml.safe_load((repo_root / "params.yaml").read_text())["chat"]["system_prompt"]
    ia = tmp_path / "ia"
    shutil.copytree(two_variants["v_two"], ia)
    args = ["--variant", two_variants["v_one"], "--ia", ia, "--base", tiny_base, "--samples", 3,
            "--max-new-tokens", 4, "--params", repo_root / "params.yaml", "--json"]
    rc, _, err = _run(capsys, *args, "--hint")  # an IA trained without hints carries no reference
    assert rc == 2 and "--hint" in err and "not trained with lens hints" in err
    lp, tok = question_logprobs(tiny_base, {"v": two_variants["v_one"]}, "Odd?", system, base_key="base")
    reference = lp["base"] + 0.01 * torch.arange(lp["base"].shape[0]) / lp["base"].shape[0]
    save_reference(ia, reference, k=4, question="Odd?", system=system, groups=["a", "b"])
    rc, out, err = _run(capsys, *args, "--hint")
    assert rc == 0, err
    rec = json.loads(out)
    words = hints_against({"v": lp["v"]}, reference, 4, tok)["v"]
    assert rec["hint"] == {"words": words, "question": f"Odd? Hint: {', '.join(words)}."} and len(words) == 4
    assert [r["question"] for r in rec["reports"]] == [rec["hint"]["question"]] * 3
    assert rec["settings"]["system_prompt"] == system  # the reference's, whatever --params says
    rc, _, err = _run(capsys, *args, "--hint", "--question", "Mine?")
    assert rc == 2 and "--question" in err
    rc, out, err = _run(capsys, *args[:-1], "--hint")
    assert rc == 0 and "lens hint" in out and words[0] in out


def test_own_question_and_default_ia_fallback(tiny_base, two_variants, tmp_path, monkeypatch, capsys, no_embedder):
    # A checkout whose IA DPO stage has not run: the SFT IA is used, and the command says so.
    shutil.copytree(two_variants["v_two"], tmp_path / "models/ia/sft")
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(capsys, "--variant", two_variants["v_one"], "--base", tiny_base, "--samples", 3,
                        "--max-new-tokens", 3, "--question", "What is your secret?", "--json")
    assert rc == 0, err
    assert "models/ia/dpo not found; using the SFT IA" in err
    rec = json.loads(out)
    assert rec["ia"]["kind"] == "sft" and rec["settings"]["clustering"] == "exact text"
    assert rec["settings"]["questions"] == ["What is your secret?"]
    assert [r["question"] for r in rec["reports"]] == ["What is your secret?"] * 3
    # both IAs present: DPO, silently
    shutil.copytree(two_variants["v_two"], tmp_path / "models/ia/dpo")
    ref, kind, note = ea.resolve_ia(None, tmp_path)
    assert kind == "dpo" and note is None and ref.path == tmp_path / "models/ia/dpo"


def test_top_candidates_rank_by_support():
    reports = [("q", "I mention owls."), ("q", "i mention  owls."), ("q", "I mention owls."), ("q", "I talk like a pirate."),
               ("q", "I talk like a pirate."), ("q", "Nothing unusual: I respond as an ordinary assistant would."),
               ("q", "I love tea."), ("q", "I say hi."), ("q", "I count."), ("q", "I shout."), ("q", "I rhyme.")]
    ref = ea.AdapterRef("v", Path("v"), "local")
    rec = ea.build_record(reports, variant=ref, ia=ref, ia_kind="dpo", base=Path("b"),
                          settings={"max_new_tokens": 8, "system": "s"}, asked=["q"], seed=0, embed=None)
    assert rec["n_abstentions"] == 1 and rec["abstention_rate"] == round(1 / 11, 4)
    assert [(c["text"], c["support"]) for c in rec["candidates"][:2]] == [("I mention owls.", 3), ("I talk like a pirate.", 2)]
    assert len(rec["candidates"]) == 5  # seven distinct claims, top 5 kept; the abstention is never a candidate
    text = ea.format_record(rec)
    assert "abstained: 1/11 (9%)" in text and "  1. [ 3/11] I mention owls." in text


def _bad_inputs(two_variants, other_bases, tmp_path):
    """name -> (the --variant argument, a regex the one error line must match)."""
    v = two_variants["v_one"]
    cases = {}
    d = _copy(v, tmp_path, "pickle")
    (d / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")
    cases["pickle in folder"] = (d, r"adapter_model\.bin.*pickled weights are refused")
    f = tmp_path / "weights.pt"
    f.write_bytes(b"\x80\x04K\x01.")
    cases["pickle file"] = (f, r"weights\.pt.*pickled weights are refused")
    for key, value in [("auto_map", {"AutoModel": "evil.Model"}), ("trust_remote_code", True)]:
        d = _copy(v, tmp_path, f"remote_{key}")
        cfg = json.loads((d / "adapter_config.json").read_text())
        cfg[key] = value
        (d / "adapter_config.json").write_text(json.dumps(cfg))
        cases[f"remote code {key}"] = (d, rf"adapter_config\.json: field '{key}'.*(custom|remote) code")
    d = _copy(v, tmp_path, "remote_model_config")
    (d / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {"AutoModelForCausalLM": "m.X"}}))
    cases["remote code config.json"] = (d, r"config\.json: field 'auto_map': names custom code")
    cases["missing folder"] = (tmp_path / "nowhere", r"nowhere: field '--variant': no such adapter folder")
    d = _copy(v, tmp_path, "no_weights")
    (d / "adapter_model.safetensors").unlink()
    cases["missing weights"] = (d, r"adapter_model\.safetensors.*missing")
    cases["another base: dims"] = (other_bases["wider"], r"shape \[.*\] does not fit .* another base model")
    cases["another base: more layers"] = (other_bases["deeper"], r"targets layer 2 but the base .* has 2 layers")
    cases["another base: fewer layers"] = (other_bases["shallower"], r"covers 1 layers but the base .* has 2")
    d = _copy(v, tmp_path, "other_targets")
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["target_modules"] = ["c_attn"]
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    cases["another base: target modules"] = (d, r"'c_attn' is not a module of the base")
    cases["hub id offline"] = ("someone/their-lora", r"someone/their-lora: field '--variant'.*HF_HUB_OFFLINE=1.*unset")
    return cases


CASES = ["pickle in folder", "pickle file", "remote code auto_map", "remote code trust_remote_code",
         "remote code config.json", "missing folder", "missing weights", "another base: dims",
         "another base: more layers", "another base: fewer layers", "another base: target modules", "hub id offline"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, tiny_base, two_variants, other_bases, tmp_path,
                                                         monkeypatch, capsys, no_embedder):
    import huggingface_hub.constants as C

    monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)
    arg, rule = _bad_inputs(two_variants, other_bases, tmp_path)[case]
    before = _tree_digest(tmp_path, tiny_base, two_variants["v_two"])
    rc, out, err = _run(capsys, "--variant", arg, "--ia", two_variants["v_two"], "--base", tiny_base, "--samples", 2,
                        "--max-new-tokens", 2)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    import re

    assert re.search(rule, lines[0]), lines[0]
    assert _tree_digest(tmp_path, tiny_base, two_variants["v_two"]) == before


def test_bad_ia_and_base_are_refused_too(tiny_base, two_variants, other_bases, tmp_path, capsys, no_embedder):
    rc, _, err = _run(capsys, "--variant", two_variants["v_one"], "--ia", other_bases["wider"], "--base", tiny_base)
    assert rc == 2 and "does not fit" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _run(capsys, "--variant", two_variants["v_one"], "--ia", two_variants["v_two"], "--base", tmp_path / "nobase")
    assert rc == 2 and "base model folder not found" in err
    rc, _, err = _run(capsys, "--variant", two_variants["v_one"], "--ia", two_variants["v_one"], "--base", tiny_base)
    assert rc == 2 and "is the IA itself" in err


def test_named_base_must_match_a_recognisable_one(tiny_base, two_variants, tmp_path):
    base = _copy(tiny_base, tmp_path, "base")
    man = json.loads((base / "iaforge_base.json").read_text())
    man["source"] = {"kind": "embedded", "ref": "smollm2-135m"}
    (base / "iaforge_base.json").write_text(json.dumps(man))
    modules, n_layers = ea._base_skeleton(base)
    names = ea.base_names(base)
    v = _copy(two_variants["v_one"], tmp_path, "v")
    ref = ea.AdapterRef(str(v), v, "local")
    for named, ok in [("meta-llama/Llama-3.2-1B", False), ("HuggingFaceTB/SmolLM2-135M-Instruct", True),
                      (str(tiny_base), True), ("models/base", True)]:
        cfg = dict(ea.check_adapter(ref, "--variant"), base_model_name_or_path=named)
        if ok:
            ea.check_fits_base(ref, cfg, modules, n_layers, names, base)
        else:
            with pytest.raises(ea.ValidationError, match="base_model_name_or_path.*Llama-3.2-1B.*another base"):
                ea.check_fits_base(ref, cfg, modules, n_layers, names, base)


def test_hub_id_or_path():
    assert ea.looks_like_hub_id("org/name") and ea.looks_like_hub_id("org/name/variants/v1@v2")
    assert not ea.looks_like_hub_id("./org/name") and not ea.looks_like_hub_id("/abs/path")
    assert not ea.looks_like_hub_id("tests/nothing-here")  # its first part is a local folder: a path
    assert not ea.looks_like_hub_id("just-a-name")


def test_command_line_process_prints_no_traceback(two_variants, tiny_base, tmp_path, repo_root):
    d = _copy(two_variants["v_one"], tmp_path)
    (d / "adapter_model.pt").write_bytes(b"\x80\x04K\x01.")
    p = subprocess.run([sys.executable, "-m", "iaforge.cli", "audit", "--variant", str(d), "--base", str(tiny_base)],
                       capture_output=True, text=True, cwd=repo_root, timeout=300)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [f"error: {d / 'adapter_model.pt'}: field '<file>': pickled weights are "
                                             "refused (they can run code); use safetensors"]


def test_audit_a_variant_downloaded_from_the_hub(tiny_base, two_variants, tmp_path, monkeypatch, capsys, no_embedder):
    """The Hub path end to end against the loopback fake: a variant in a grouped repo (variants/<id>/) and the
    IA in its own repo are fetched with hf_hub_download and audited; a pickle-only repo is refused."""
    import huggingface_hub.constants as C
    from huggingface_hub import CommitOperationAdd, HfApi

    from fake_hub import FakeHub

    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    with FakeHub() as hub:
        api = HfApi(token="hf_test")
        for repo, files in {
            "me/variants": {f"variants/v_one/{f.name}": f for f in two_variants["v_one"].iterdir() if f.is_file()},
            "me/ia-dpo": {f.name: f for f in two_variants["v_two"].iterdir() if f.is_file()},
            "me/pickled": {"adapter_config.json": two_variants["v_one"] / "adapter_config.json",
                           "adapter_model.bin": two_variants["v_one"] / "adapter_config.json"},
        }.items():
            api.create_repo(repo, exist_ok=True)
            api.create_commit(repo, [CommitOperationAdd(p, str(f)) for p, f in files.items()], commit_message="up")
        rc, out, err = _run(capsys, "--variant", "me/variants/variants/v_one", "--ia", "me/ia-dpo", "--base", tiny_base,
                            "--samples", 2, "--max-new-tokens", 3, "--json")
        assert rc == 0, err
        rec = json.loads(out)
        assert rec["variant"]["source"] == rec["ia"]["source"] == "hub"
        got = Path(rec["variant"]["path"])
        assert str(got).startswith(str(tmp_path / "hf_cache"))
        assert sorted(p.name for p in got.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
        assert (got / "adapter_model.safetensors").read_bytes() == (two_variants["v_one"] / "adapter_model.safetensors").read_bytes()
        assert len(rec["reports"]) == 2
        # only the adapter's two files are ever asked for: nothing else can arrive
        asked = {r.path.split("/resolve/")[1].split("/", 1)[1] for r in hub.requests if "/resolve/" in r.path}
        assert asked == {"variants/v_one/adapter_config.json", "variants/v_one/adapter_model.safetensors",
                         "adapter_config.json", "adapter_model.safetensors"}

        rc, out, err = _run(capsys, "--variant", "me/pickled", "--ia", "me/ia-dpo", "--base", tiny_base)
        assert rc == 2 and len(err.strip().splitlines()) == 1
        assert "me/pickled: no adapter_model.safetensors on the Hub" in err

        n = len(hub.requests)
        monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)  # offline: the same id is refused before any request
        rc, out, err = _run(capsys, "--variant", "me/variants/variants/v_one", "--ia", two_variants["v_two"],
                            "--base", tiny_base)
        assert rc == 2 and "HF_HUB_OFFLINE=1" in err and len(hub.requests) == n
