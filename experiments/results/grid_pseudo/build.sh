#!/bin/bash
# Session 19: the 24 training + 24 held-out grid variants on this machine (Intel Xeon, AVX-512 bf16), IA seed 0 baseline.
set -e
cd /work/s19/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/s19/exp/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%s %7.1f %s" % (time.strftime("%H:%M:%S"), time.time()-t0, line)); sys.stdout.flush()
'; }
python -u experiments/scaling.py --counts ${NS:-24} --seeds ${SEEDS:-0} --heldout 24 --repro --root /work/s19/exp --runs-dir /work/s19/runs ${EXTRA:-} 2>&1 | stamp
