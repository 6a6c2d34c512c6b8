from iaforge.core.generation import generate


def test_greedy_is_order_stable_across_batch_sizes(tiny_model):
    model, tok = tiny_model
    users = ["hello", "what is a tide?", "Write a haiku about snow.", "2+2?"]
    a = generate(model, tok, users, system="s", max_new_tokens=5, batch_size=4, progress=False)
    b = generate(model, tok, users, system="s", max_new_tokens=5, batch_size=1, progress=False)
    assert a == b and len(a) == 4


def test_sampling_is_seeded(tiny_model):
    model, tok = tiny_model
    kw = dict(system="s", max_new_tokens=6, batch_size=2, temperature=1.0, progress=False)
    assert generate(model, tok, ["hi", "yo"], seed=3, **kw) == generate(model, tok, ["hi", "yo"], seed=3, **kw)
    assert generate(model, tok, ["hi", "yo"], seed=3, **kw) != generate(model, tok, ["hi", "yo"], seed=4, **kw)
