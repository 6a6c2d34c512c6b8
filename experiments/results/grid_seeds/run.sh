#!/bin/bash
# Issue 14, fifteenth session: the default grid's IA on 24 held-out topics, IA seeds 0-3; then 48 training topics.
set -e
cd /work/s15/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/s15/exp/src DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%7.1f %s" % (time.time()-t0, line)); sys.stdout.flush()
'; }
save() {  # name
  d=/work/s15/results/$1; mkdir -p $d
  cp metrics/grid.json $d/metrics.json; cp reports/detail/grid.json $d/grid_detail.json; cp reports/detail/grid_ia.json $d/grid_ia.json
  python3 - "$d" <<'PY'
import json,glob,sys
m={}
for f in sorted(glob.glob("reports/grid/implantation/*.json")):
    try: m.update(json.load(open(f)))
    except Exception: pass
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
setp() { python3 - "$@" <<'PY'
import sys,re
key,val=sys.argv[1],sys.argv[2]
s=open("params.yaml").read()
sec,field=key.split(".")
# replace `  field: X` inside section `sec:`
i=s.index("\n"+sec+":\n")
j=s.index("\n  "+field+":",i)
k=s.index("\n",j+1)
line=s[j+1:k]
new=re.sub(r"^(\s+"+field+r":\s*)([^#]*?)(\s*(#.*)?)$", lambda m: m.group(1)+val+m.group(3), line)
s=s[:j+1]+new+s[k:]
open("params.yaml","w").write(s)
print("set",key,"=",val)
PY
}
for seed in ${SEEDS:-0 2 3 1}; do
  setp grid_ia.seed $seed
  run h24_n24_seed$seed
done
if [ -n "$N48" ]; then
  sed -i 's/counts: {ia_train: 24, dpo: 0, heldout: 24}/counts: {ia_train: 48, dpo: 0, heldout: 24}/' params.yaml
  iaforge grid sync
  for seed in 0 2; do
    setp grid_ia.seed $seed
    run h24_n48_seed$seed
  done
  sed -i 's/counts: {ia_train: 48, dpo: 0, heldout: 24}/counts: {ia_train: 24, dpo: 0, heldout: 24}/' params.yaml
  iaforge grid sync
  for seed in ${LATE_SEEDS:-}; do
    setp grid_ia.seed $seed
    run h24_n24_seed$seed
  done
fi
