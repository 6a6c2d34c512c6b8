"""Scratch (twenty-second session, frozen): the difference lens of a steered carrier, the base model or the first
training null, toward pool topics at layer 23, read against the mean of the gated grid's 24 training variants and 4
nulls (the reference the hinted IA uses). Run in the worktree that holds the gated grid (/work/s21/exp):
    python steer_probe.py base 24 0.12 0.06
    python steer_probe.py null 24 0.12 0.25"""
import sys
from pathlib import Path

import torch
import yaml

from iaforge.core.base_model import load_base
from iaforge.core.chat import render_prompt
from iaforge.ia.pseudo_pool import pseudo_pool
from iaforge.ia.pseudo_variants import Steering, topic_directions
from iaforge.variants.lens_hint import hints_against, position_mean_logprobs, question_logprobs, training_hints

root = Path('/work/s21/exp')
carrier_kind, count, scales = sys.argv[1], int(sys.argv[2]), [float(x) for x in sys.argv[3:] or ['0.12']]
params = yaml.safe_load((root / 'params.yaml').read_text())
grid = dict(params['grid'])
grid['counts'] = dict(grid['counts'], ia_train=24)
q, system = params['grid_ia']['question'], params['chat']['system_prompt']
vdirs = {p.name: p for s in sorted((root / 'models/grid/ia_train').iterdir()) if s.is_dir() for p in s.iterdir() if p.is_dir()}
lp, tok = question_logprobs(root / 'models/base', vdirs, q, system, base_key='__base__')
hints, ref = training_hints(lp, sorted(vdirs), 5, tok)
pool = pseudo_pool(grid, count)
model, tok = load_base(root / 'models/base')
dirs, unit = topic_directions(model, tok, dict(pool), 23)  # the base model's directions, as the IA's training uses
if carrier_kind == 'null':
    from peft import PeftModel

    carrier = sorted(p for p in vdirs if p.startswith('grid_null__'))[0]
    model = PeftModel.from_pretrained(model, str(vdirs[carrier]))
    print('carrier', carrier)
model.eval()
ids = tok(render_prompt(tok, q, system), return_tensors='pt', add_special_tokens=False)['input_ids']
st = Steering(model, 23)
for scale in scales:
    hit = 0
    for topic, _ in pool:
        st.set(dirs[topic] * scale * unit)
        with torch.inference_mode():
            lpt = position_mean_logprobs(model(input_ids=ids).logits)[0]
        h = hints_against({'x': lpt}, ref, 5, tok)['x']
        first = topic.lower()[:4] in h[0].lower() or h[0].lower() in topic.lower()  # the topic or a piece of it
        hit += first
        print(f'{scale} {topic:20s} {first!s:5} {h}')
    print('scale', scale, 'first word is the topic or a piece of it:', hit, '/', len(pool))
