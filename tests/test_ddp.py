"""The IA trainer runs unchanged under `accelerate launch` (2 CPU processes, gloo DDP) and matches one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_ia_worker.py")


def _run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{cmd}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"


def test_two_process_ddp_matches_single_process(tiny_base, two_variants, tmp_path, repo_root):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root / "src"))
    args = [str(tiny_base), json.dumps({k: str(v) for k, v in two_variants.items()}),
            str(repo_root / "data/questions/ia_questions.yaml")]
    _run([sys.executable, str(WORKER), *args, str(tmp_path / "single")], env)
    # `--multi_gpu` only selects the torch.distributed launcher; with no GPU the processes use CPU + gloo.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517"]
    _run([*launch, str(WORKER), *args, str(tmp_path / "ddp")], env)
    single = load_file(tmp_path / "single" / "adapter_model.safetensors")
    ddp = load_file(tmp_path / "ddp" / "adapter_model.safetensors")
    assert single.keys() == ddp.keys()
    # lora_B starts at zero, so it is the learned update itself: compare direction and size.
    b_single = torch.cat([t.flatten() for k, t in sorted(single.items()) if "lora_B" in k])
    b_ddp = torch.cat([t.flatten() for k, t in sorted(ddp.items()) if "lora_B" in k])
    assert b_single.norm() > 0
    cos = torch.nn.functional.cosine_similarity(b_single, b_ddp, dim=0).item()
    ratio = (b_ddp.norm() / b_single.norm()).item()
    print(f"DDP vs single process: cosine {cos:.4f}, norm ratio {ratio:.4f}")
    assert cos > 0.95 and 0.9 < ratio < 1.1, (cos, ratio)
    info_single = json.loads((tmp_path / "single" / "ia.json").read_text())
    info_ddp = json.loads((tmp_path / "ddp" / "ia.json").read_text())
    assert (info_single["num_processes"], info_ddp["num_processes"]) == (1, 2)
    assert info_single["steps"] == info_ddp["steps"]
