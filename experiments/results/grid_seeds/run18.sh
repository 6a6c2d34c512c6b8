#!/bin/bash
# Issue 14, eighteenth session: the curve's low end (8 and 16 training topics) on the same 24 held-out topics, the
# default recipe (300 IA steps), IA seeds 0 and 2, in the seventeenth session's worktree (its 48+24 variants are in
# main's DVC cache; 8 and 16 topics are the first 2 and 4 shards of them, so only grid_ia and grid_eval run).
set -e
cd /work/s17/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/s17/exp/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%s %7.1f %s" % (time.strftime("%H:%M:%S"), time.time()-t0, line)); sys.stdout.flush()
'; }
python -u experiments/scaling.py --counts ${NS:-8 16} --seeds ${SEEDS:-0 2} --heldout 24 --repro --root /work/s17/exp 2>&1 | stamp

# Then, in order (each waited for the one before): a third seed at 16 and 48, seeds 4 and 5 at 16 and 24, seed 4 at 48:
#   NS="16 48" SEEDS="3" ./run18.sh;  NS="16 24" SEEDS="4 5" ./run18.sh;  NS="48" SEEDS="4" ./run18.sh
# The worktree: /work/s17/exp, a detached worktree of 4c6d48a (the grid code the 48+24 variants were trained with;
# its grid_ia and grid_eval code paths are main's) with `dvc cache dir --local /work/main/.dvc/cache`.
