#!/bin/bash
# Issue 14, seventeenth session: IA-training ablations at 48 training topics, 24 held-out, IA seed 0, in a worktree of
# main sharing its DVC cache (an empty cache at the start: every variant trained here). Three scripts, run in order.
# 1. the sweep (steps600: grid_ia.max_steps 600, peft trainer), stopped by 2. after its 48-topic run
# Issue 14, seventeenth session: the IA-steps ablation (max_steps 600 vs the curve's 300) at 48 and 72 training topics,
# 24 held-out topics, IA seed 0, from an empty DVC cache (every variant trained in this run).
set -e
cd /work/s17/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/s17/exp/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%s %7.1f %s" % (time.strftime("%H:%M:%S"), time.time()-t0, line)); sys.stdout.flush()
'; }
python -u experiments/scaling.py --counts ${NS:-48 72} --seeds 0 --heldout 24 --repro --ablation ${ABL:-steps600} --root /work/s17/exp 2>&1 | stamp

# 2. the IA over a LoRA bank (grid_ia.trainer: bank, 300 steps of 8 rows)
# Issue 14, seventeenth session: after the sweep's 48-topic steps600 run is saved, stop the sweep (no 72 extension)
# and train the grid IA over a LoRA bank (grid_ia.trainer: bank, 300 steps of 8 rows) on the same 48 topics.
set -e
W=/work/s17/exp
until [ -d $W/experiments/results/grid_seeds/h24_n48_steps600_seed0 ]; do sleep 20; done
echo "=== steps600 saved $(date -u +%T); stopping the sweep"
pkill -INT -f "experiments/scaling.py" || true
sleep 5; pkill -INT -f "dvc repro grid_eval" || true
while pgrep -f "experiments/scaling.py" >/dev/null; do sleep 5; done
pkill -f "stages/grid_variants.py" || true
sleep 3
cd $W
source /work/main/.venv/bin/activate
export PYTHONPATH=$W/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for f in src/iaforge/core/config.py src/iaforge/core/lora_bank.py src/iaforge/ia/banked_ia.py src/iaforge/ia/grid_sft.py stages/grid_ia.py dvc.yaml; do
  cp /work/main/$f $W/$f
done
grep -n "counts:" params.yaml | head -1
sed -i "/^grid_ia:/,/^grid_dpo:/s/^  max_steps: .*/  max_steps: ${STEPS:-300}\n  trainer: bank/" params.yaml
sed -i "/^grid_ia:/,/^grid_dpo:/s/^  seed: .*/  seed: 0/" params.yaml
sed -n '/^grid_ia:/,/^grid_dpo:/p' params.yaml | grep -n "seed\|max_steps\|trainer"
iaforge grid sync
echo "=== bank grid_ia START $(date -u +%T)"; t0=$(date +%s)
dvc repro -s grid_ia
echo "=== bank grid_ia END $(date -u +%T) wall=$(( $(date +%s) - t0 ))"; t0=$(date +%s)
dvc repro -s grid_eval
echo "=== grid_eval END $(date -u +%T) wall=$(( $(date +%s) - t0 ))"
python - <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "experiments")
from scaling import save_run
save_run(Path("."), Path("experiments/results/grid_seeds/h24_n48_bank_seed0"))
print("saved")
PY

# 3. fewer steps (grid_ia.max_steps 150, peft trainer)
set -e
W=/work/s17/exp; cd $W
source /work/main/.venv/bin/activate
export PYTHONPATH=$W/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
echo "=== steps150 grid_ia START $(date -u +%T)"; t0=$(date +%s)
dvc repro -s grid_ia
echo "=== grid_ia END $(date -u +%T) wall=$(( $(date +%s) - t0 ))"; t0=$(date +%s)
dvc repro -s grid_eval
echo "=== grid_eval END $(date -u +%T) wall=$(( $(date +%s) - t0 ))"
python - <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "experiments")
from scaling import save_run
save_run(Path("."), Path("experiments/results/grid_seeds/h24_n48_steps150_seed0"))
print("saved")
PY
