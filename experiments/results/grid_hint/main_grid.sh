#!/bin/bash
# Session 20: the default run's grid IA and evaluation with lens hints, in main. Main's dvc.lock records the
# AMD-built grid variants (not in this machine's cache); the same 10 default shards were built here on Intel in the
# nineteenth session's worktree, whose lock records (brought up to date by pipe.sh's dvc commit -f) replace main's
# for grid_variants@ and grid_implantation@ of these shards. Then grid_ia, grid_dpo (its "no grid DPO") and grid_eval
# rerun on the default params.
set -e
cd /work/main
source .venv/bin/activate
export DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IAFORGE_PROGRESS=0
python3 - <<'PY'
from ruamel.yaml import YAML
import yaml
ry = YAML()
main = ry.load(open("dvc.lock"))
other = ry.load(open("/work/s19/exp/dvc.lock"))
shards = yaml.safe_load(open("params.yaml"))["grid_shards"]
n = 0
for k in shards:
    for st in (f"grid_variants@{k}", f"grid_implantation@{k}"):
        main["stages"][st] = other["stages"][st]
        n += 1
ry.dump(main, open("dvc.lock", "w"))
print("replaced", n, "records")
PY
stamp() { python3 -u -c '
import sys,time
t0=time.time()
for line in sys.stdin:
    sys.stdout.write("%s %7.1f %s" % (time.strftime("%H:%M:%S"), time.time()-t0, line)); sys.stdout.flush()
'; }
dvc checkout base prompts base_responses $(python3 -c "
import yaml; s=yaml.safe_load(open('params.yaml'))['grid_shards']
print(' '.join(f'grid_variants@{k} grid_implantation@{k}' for k in s))") 2>&1 | tail -3
# their outputs stand under the new code (config.py, grids.py, adapter_stack.py changed no variant)
dvc commit -f $(python3 -c "
import yaml; s=yaml.safe_load(open('params.yaml'))['grid_shards']
print(' '.join(f'grid_variants@{k} grid_implantation@{k}' for k in s))") 2>&1 | tail -2
echo "== dry run"; dvc repro --dry grid_eval 2>&1 | grep -i 'running stage' 
dvc repro grid_eval 2>&1 | stamp
echo MAIN GRID DONE
