#!/bin/bash
# Issue 14, sixteenth session: the scaling curve past 48 training topics (72, 96) on 24 held-out topics, IA seeds 0 and 2.
set -e
cd /work/s16/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/s16/exp/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%7.1f %s" % (time.time()-t0, line)); sys.stdout.flush()
'; }
save() {  # name
  d=/work/s16/results/$1; mkdir -p $d
  cp metrics/grid.json $d/metrics.json; cp reports/detail/grid.json $d/grid_detail.json; cp reports/detail/grid_ia.json $d/grid_ia.json
  python3 - "$d" <<'PY'
import json,glob,sys
m={}
for f in sorted(glob.glob("reports/grid/implantation/*/*.json")):
    m.update(json.load(open(f)))
json.dump(m,open(sys.argv[1]+"/implantation.json","w"),indent=1)
PY
}
run() {  # name
  echo "=== $1 START $(date -u +%FT%TZ)"
  t0=$(date +%s)
  dvc repro grid_eval 2>&1 | stamp
  echo "=== $1 END $(date -u +%FT%TZ) wall=$(( $(date +%s) - t0 ))"
  save $1
}
setseed() { sed -i "/^grid_ia:/,/^grid_dpo:/s/^  seed: .*/  seed: $1/" params.yaml; grep -A1 "^grid_ia:" params.yaml | tail -1; }
setn() { sed -i "s/counts: {ia_train: [0-9]*, dpo: 0, heldout: 24}/counts: {ia_train: $1, dpo: 0, heldout: 24}/" params.yaml; iaforge grid sync; }
for n in ${NS:-72 96}; do
  setn $n
  for seed in ${SEEDS:-0 2}; do
    setseed $seed
    run h24_n${n}_seed$seed
  done
done
