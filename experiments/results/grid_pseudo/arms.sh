#!/bin/bash
# Session 19 (issue 14): after build.sh (24 training + 24 held-out variants, IA seed 0 baseline), bring the
# pseudo-variant code into the worktree, then: baseline IA seed 2; 24 real + 72 steered pseudo-variants (the answer
# set of the 96-topic curve point), IA seeds 0 and 2; the training-free readout on held-out and training variants.
set -e
while pgrep -f build.sh >/dev/null; do sleep 20; done
cd /work/s19/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/s19/exp/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
for f in src/iaforge/core/config.py src/iaforge/ia/grid_sft.py src/iaforge/ia/pseudo_variants.py src/iaforge/ia/pseudo_pool.py stages/grid_ia.py dvc.yaml experiments/grid_pseudo.py; do
  cp /work/main/$f /work/s19/exp/$f
done
python3 - <<'PY'
import re
p='params.yaml'; s=open(p).read()
if 'pseudo:' not in s:
    s=s.replace("  max_steps: 300\n", "  max_steps: 300\n  pseudo: {count: 0, layer: 23, scale: 0.12, epochs: 3}\n", 1)
open(p,'w').write(s)
PY
echo "== dvc status before commit"; dvc status | head -40
# only config.py changed for the stages upstream of grid_ia: their outputs stand
dvc commit -f base prompts base_responses $(python3 -c "
import yaml; s=yaml.safe_load(open('params.yaml'))['grid_shards']
print(' '.join(f'grid_variants@{k} grid_implantation@{k}' for k in s))") >/dev/null
echo "== dvc status after commit"; dvc status | head -20
NS=24 SEEDS=2 /work/s19/build.sh
sed -i 's/  pseudo: {count: 0,/  pseudo: {count: 72,/' params.yaml
NS=24 SEEDS="0 2" EXTRA="--ablation pseudo72" /work/s19/build.sh
sed -i 's/  pseudo: {count: 72,/  pseudo: {count: 0,/' params.yaml
export OMP_NUM_THREADS=2
python -u experiments/grid_pseudo.py --root /work/s19/exp --split heldout --all-topics --out /work/s19/readout_heldout.json
python -u experiments/grid_pseudo.py --root /work/s19/exp --split ia_train --all-topics --out /work/s19/readout_train.json
echo ARMS DONE
