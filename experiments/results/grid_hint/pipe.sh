#!/bin/bash
# Session 20: the lens-hinted grid IA through the real stages, in the nineteenth session's worktree (24 training +
# 24 held-out variants built on this Intel machine; DVC cache shared with main): bring main's code (0d48daa and
# later) into it, record the unchanged upstream outputs under the new code (dvc commit -f), then
# experiments/scaling.py with grid_ia.hint.k 5 and the hinted conditions, IA seeds 0 and 2, saved as ablation "hint5".
set -e
while pgrep -f main_grid.sh >/dev/null; do sleep 15; done
cd /work/s19/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/s19/exp/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
rm -rf /work/s19/exp/src /work/s19/exp/stages && cp -r /work/main/src /work/main/stages /work/s19/exp/
cp /work/main/dvc.yaml /work/main/experiments/scaling.py /work/s19/exp/
cp /work/main/experiments/scaling.py /work/s19/exp/experiments/scaling.py
rm -f /work/s19/exp/scaling.py
python3 - <<'PY'
p='params.yaml'; s=open(p).read()
if 'hint:' not in s:
    s=s.replace("  pseudo: {count: 0, layer: 23, scale: 0.12, epochs: 3}\n", "  pseudo: {count: 0, layer: 23, scale: 0.12, epochs: 3}\n  hint: {k: 5}\n", 1)
s=s.replace("  conditions: [no_ia, prefill, sft, sft_contrast, no_ia_contrast]\n", "  conditions: [no_ia, prefill, sft, sft_contrast, no_ia_contrast, sft_hint, no_ia_hint]\n", 1)
open(p,'w').write(s)
PY
grep -n 'hint: {k\|sft_hint' params.yaml
# the 24/24 shard list (scaling.py sets the same before each run), so the commit covers every shard the runs use
python3 - <<'PY'
import re
p='params.yaml'; s=open(p).read()
s=re.sub(r"(?m)^(\s+)counts: \{ia_train: \d+, dpo: \d+, heldout: \d+\}", r"\1counts: {ia_train: 24, dpo: 0, heldout: 24}", s, count=1)
open(p,'w').write(s)
PY
python -m iaforge.cli grid sync
dvc commit -f base prompts base_responses $(python3 -c "
import yaml; s=yaml.safe_load(open('params.yaml'))['grid_shards']
print(' '.join(f'grid_variants@{k} grid_implantation@{k}' for k in s))") >/dev/null
echo "== dvc status after commit"; dvc status | head -30
python -u experiments/scaling.py --counts 24 --seeds 0 2 --heldout 24 --repro --root /work/s19/exp --runs-dir /work/s20/runs --ablation hint5
echo PIPE DONE
