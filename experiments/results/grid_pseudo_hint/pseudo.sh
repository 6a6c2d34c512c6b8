#!/bin/bash
# usage: pseudo.sh NAME N_TRAIN COUNT EPOCHS SCALE [SEED]  -- the gated grid's hinted IA with pseudo-variants steered on the nulls
set -e
NAME=$1; N=$2; COUNT=$3; EP=$4; SCALE=$5; SEED=${6:-0}
cd /work/s21/exp
source /work/main/.venv/bin/activate
export DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
cp params.yaml /work/s22/params.before.$NAME
python - "$N" "$COUNT" "$EP" "$SCALE" "$SEED" <<'PY'
import re, sys
n, count, ep, scale, seed = sys.argv[1:]
s = open('params.yaml').read()
s = re.sub(r"(\n  counts: \{ia_train: )\d+", r"\g<1>" + n, s, count=1)
s, k = re.subn(r"\n  pseudo: \{[^}]*\}", "\n  pseudo: {count: %s, layer: 23, scale: %s, epochs: %s, carrier: %s}" % (count, scale, ep, "nulls" if int(count) else "base"), s, count=1)
assert k == 1
s = re.sub(r"(\ngrid_ia:\n(?:.*\n)*?  seed: )\d+", r"\g<1>" + seed, s, count=1)
open('params.yaml', 'w').write(s)
PY
grep -n "counts:\|pseudo:" params.yaml | head -3
iaforge grid sync
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%s %7.1f %s" % (time.strftime("%H:%M:%S"), time.time()-t0, line)); sys.stdout.flush()
'; }
dvc repro grid_eval 2>&1 | grep --line-buffered -v "Loading weights\|warn" | stamp
python -c "
import sys; sys.path.insert(0,'/work/main/experiments')
from pathlib import Path
import scaling
scaling.save_run(Path('/work/s21/exp'), Path('/work/s22/runs/h24_n${N}_${NAME}_seed${SEED}'))
"
cp /work/s22/params.before.$NAME params.yaml
echo PSEUDO $NAME DONE
