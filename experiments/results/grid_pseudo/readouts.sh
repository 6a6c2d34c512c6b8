#!/bin/bash
# Session 19: the two IA-free readouts again, after the base-pass fix (the first run compared each variant with the
# alphabetically first variant, not the base model).
set -e
cd /work/s19/exp
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/main/src HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 IAFORGE_PROGRESS=0 OMP_NUM_THREADS=1
D=/work/main/experiments/results/grid_pseudo
python -u /work/main/experiments/grid_pseudo.py --root /work/s19/exp --split heldout --all-topics --out $D/readout_heldout.json
python -u /work/main/experiments/grid_pseudo.py --root /work/s19/exp --split ia_train --all-topics --out $D/readout_train.json
python -u /work/main/experiments/grid_pseudo.py --root /work/s19/exp --split ia_train --distractors 100 --out $D/diagnose_ia_train.json
echo READOUTS DONE
