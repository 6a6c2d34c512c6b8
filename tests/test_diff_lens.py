"""The difference lens (evaluation/diff_lens.py)."""

from __future__ import annotations

import pytest
import torch

from iaforge.evaluation.diff_lens import first_hit, mean_logprob_difference, predicted_topic, token_names, top_tokens


class _Tok:
    def decode(self, ids):
        return f" tok{ids[0]}"


def test_the_raised_token_tops_the_lens_and_identical_models_raise_nothing():
    base = torch.randn(6, 50)
    lora = base.clone()
    lora[1:, 7] += 4.0           # the LoRA pushes token 7 at every position but the first
    lora[0, 9] += 50.0           # the first position is left out: it predicts from the template's first token
    diff = mean_logprob_difference(lora, base)
    top = top_tokens(diff, _Tok(), k=3)
    assert top[0]["id"] == 7 and top[0]["token"] == " tok7" and top[0]["score"] > 3
    assert 9 not in [t["id"] for t in top]
    assert torch.allclose(mean_logprob_difference(base, base), torch.zeros(50))


@pytest.mark.parametrize("token,terms,rule,named", [
    (" pearls", ["pearl", "pearls"], "word", True),
    (" Pearls", ["pearl", "pearls"], "word", True),
    (" steam", ["steam locomotive", "steam engine"], "word", True),
    (" pian", ["piano", "pianos"], "word", False),
    (" pian", ["piano", "pianos"], "prefix", True),
    (" fl", ["flute", "flutes"], "prefix", False),      # under 3 letters: too many words start so
    (" pine", ["pineapple"], "prefix", True),
    ("<|im_end|>", ["pearl"], "prefix", False),
    (" 7", ["7"], "word", False),                       # never punctuation or digits
])
def test_token_names_a_topic_by_word_or_by_prefix(token, terms, rule, named):
    assert token_names(token, terms, rule=rule) is named


def test_first_hit_and_the_predicted_topic_over_a_pool():
    tokens = [" the", " hail", " tornadoes", " pearls"]
    assert first_hit(tokens, ["tornado", "tornadoes"]) == 3
    assert first_hit(tokens, ["hailstorm", "hailstorms"]) is None
    assert first_hit(tokens, ["hailstorm", "hailstorms"], rule="prefix") == 2
    pool = {"tornadoes": ["tornado", "tornadoes"], "pearls": ["pearl", "pearls"], "hailstorms": ["hailstorm"]}
    assert predicted_topic(tokens, pool) == "tornadoes"
    assert predicted_topic(tokens, pool, rule="prefix") == "hailstorms"
    assert predicted_topic([" the"], pool) is None
    with pytest.raises(ValueError):
        token_names(" x", ["x"], rule="exact")
