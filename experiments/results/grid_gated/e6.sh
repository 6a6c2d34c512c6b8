#!/bin/bash
# Session 21: the default grid (24 training / 8 held-out topics, 4 + 4 nulls) with gated variants: grid.train.epochs 6
# (the recipe's gate: experiments/grid_recipe.py e6) instead of 2, 8 variants a process (shard_size 8), then the
# default hinted IA and its evaluation. Worktree of main at 6d3b3f4, DVC cache shared with main.
set -e
while pgrep -f "arms.py" >/dev/null; do sleep 10; done
cd /work/s21/exp
source /work/main/.venv/bin/activate
export DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%s %7.1f %s" % (time.strftime("%H:%M:%S"), time.time()-t0, line)); sys.stdout.flush()
'; }
dvc repro grid_eval 2>&1 | stamp
echo E6 DONE
