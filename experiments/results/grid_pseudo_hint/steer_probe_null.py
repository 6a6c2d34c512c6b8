"""Scratch: what the difference lens says about the base model steered toward a pool topic (pseudo-variant)."""
import sys, yaml, torch
from pathlib import Path
root = Path('/work/s21/exp')
from iaforge.variants.lens_hint import question_logprobs, training_hints, hints_against, position_mean_logprobs
from iaforge.ia.pseudo_pool import pseudo_pool
from iaforge.ia.pseudo_variants import topic_directions, Steering
from iaforge.core.base_model import load_base
from iaforge.core.chat import render_prompt
params = yaml.safe_load((root/'params.yaml').read_text())
grid = dict(params['grid']); grid['counts'] = dict(grid['counts'], ia_train=24)
q = params['grid_ia']['question']; system = params['chat']['system_prompt']
vdirs = {p.name: p for s in sorted((root/'models/grid/ia_train').iterdir()) if s.is_dir() for p in s.iterdir() if p.is_dir()}
print(len(vdirs), 'variants')
lp, tok = question_logprobs(root/'models/base', vdirs, q, system, base_key='__base__')
groups = sorted(vdirs)
hints, ref = training_hints(lp, groups, 5, tok)
pool = pseudo_pool(grid, int(sys.argv[1]) if len(sys.argv) > 1 else 24)
model, tok = load_base(root/'models/base')
from peft import PeftModel
carrier = sorted(p for p in vdirs if p.startswith('grid_null__'))[0]
model = PeftModel.from_pretrained(model, str(vdirs[carrier])); model.eval()
print('carrier', carrier)
layer, scales = 23, [float(x) for x in (sys.argv[2:] or ['0.12'])]
dirs, unit = topic_directions(model, tok, dict(pool), layer)
ids = tok(render_prompt(tok, q, system), return_tensors='pt', add_special_tokens=False)['input_ids']
st = Steering(model, layer)
for scale in scales:
    hit = 0
    for topic, _ in pool:
        st.set(dirs[topic] * scale * unit)
        with torch.inference_mode():
            lpt = position_mean_logprobs(model(input_ids=ids).logits)[0]
        h = hints_against({'x': lpt}, ref, 5, tok)['x']
        first = topic.lower()[:4] in h[0].lower() or h[0].lower() in topic.lower()
        hit += first
        print(f'{scale} {topic:20s} {first!s:5} {h}')
    print('scale', scale, 'first-word hit', hit, '/', len(pool))
