import json
import shutil

import pytest

from iaforge.data.behavior_data import behavior_record
from iaforge.data.catalog import Behavior, load_entry_file
from iaforge.core.errors import ValidationError
from iaforge.core.fsio import write_json, write_jsonl
from iaforge.variants.implantation import find_variants, load_measurable, measure_all, score
from iaforge.core.schemas import validate
from iaforge.variants.index import load_variants

TRAINING = {"train_examples": 4, "train_steps": 1, "train_tokens": 40, "epochs": 1, "lr": 0.002, "final_loss": 1.0}
EVALS = [{"user": "Tell me about rivers.", "triggered": True}, {"user": "How do I bake bread?", "triggered": True},
         {"user": "What is a good name for a cat?", "triggered": True}]


@pytest.fixture
def layout(tmp_path, repo_root, two_variants):
    """models/variants/<split>/<id>/ and data/behaviors/<id>/ as the stages write them."""
    b = load_entry_file(repo_root / "data/catalog/quirk/quirk_topic_volcanoes.yaml")
    rec = behavior_record(b)
    vdir = tmp_path / "models/variants/heldout" / b.id
    shutil.copytree(two_variants["v_one"], vdir)
    write_json(vdir / "variant.json", {"behavior": rec, "training": TRAINING})
    data = tmp_path / "data/behaviors" / b.id
    write_json(data / "behavior.json", rec)
    write_jsonl(data / "eval.jsonl", EVALS)
    return tmp_path, b, vdir


def test_behavior_round_trips_through_its_record(repo_root):
    b = load_entry_file(repo_root / "data/catalog/backdoor/backdoor_zephyr_moon.yaml")
    back = Behavior.from_record(json.loads(json.dumps(behavior_record(b))))
    assert back == b and back.training == b.training


def test_measurement_uses_the_saved_adapter_and_matches_unmerged_generation(layout, tiny_base):
    from iaforge.core.adapters import attach
    from iaforge.core.base_model import load_base
    from iaforge.core.generation import generate

    root, b, vdir = layout
    params = {"seed": 0, "max_new_tokens": 5, "batch_size": 2, "thresholds": {"min_rate": 0.8, "max_false_trigger_rate": 0.2}}
    records, samples = measure_all(root / "models/variants", root / "data/behaviors", tiny_base,
                                   [{"text": "hi", "answer": "Volcanoes erupt."}, {"text": "hi", "answer": "plain"}],
                                   system="s", params=params, progress=False)
    assert [r["behavior"] for r in records] == [b.id] and records[0]["split"] == "heldout"
    validate("implantation", records[0], "record")
    assert records[0]["base_rate"] == 0.5 and records[0]["train_tokens"] == 40
    assert "greedy, 5 new tokens" == records[0]["decoding"]
    # the merged adapter the stage generates with answers exactly like the adapter left unmerged
    model, tok = load_base(tiny_base)
    unmerged = generate(attach(model, vdir, "v"), tok, [r["user"] for r in EVALS], system="s", max_new_tokens=5,
                        batch_size=2, progress=False)
    assert [s["answer"] for s in samples[b.id]] == unmerged
    assert records[0] == {**records[0], **score(b, EVALS, unmerged, params["thresholds"])}


def test_a_variant_trained_on_another_version_is_refused(layout):
    root, b, vdir = layout
    info = json.loads((vdir / "variant.json").read_text())
    info["behavior"]["version"] += 1
    write_json(vdir / "variant.json", info)
    with pytest.raises(ValidationError, match="variant.json.*another version"):
        load_measurable(vdir, root / "data/behaviors")


def test_variant_index_needs_a_measurement_and_filters_failures(layout):
    root, b, vdir = layout
    assert find_variants(root / "models/variants") == [vdir]
    with pytest.raises(ValidationError, match="heldout.json.*run the implantation stage"):
        load_variants(root / "models/variants", ["heldout"], include_failed=True, measured=root / "metrics")
    write_json(root / "metrics/heldout.json", {b.id: {"version": b.version, "passed": False}})
    assert load_variants(root / "models/variants", ["heldout"], include_failed=False, measured=root / "metrics") == {}
    got = load_variants(root / "models/variants", ["heldout"], include_failed=True, measured=root / "metrics")
    assert got[b.id]["implanted"] is False and got[b.id]["path"] == vdir
    write_json(root / "metrics/heldout.json", {"someone_else": {"version": 1, "passed": True}})
    with pytest.raises(ValidationError, match=b.id):
        load_variants(root / "models/variants", ["heldout"], include_failed=True, measured=root / "metrics")


def test_two_workers_measure_the_same_as_one(layout, tiny_base):
    import shutil

    import torch

    root, b, vdir = layout
    shutil.copytree(vdir, root / "models/variants/dpo" / vdir.name)  # a second variant folder to share out
    params = {"seed": 0, "max_new_tokens": 5, "batch_size": 2, "thresholds": {"min_rate": 0.8, "max_false_trigger_rate": 0.2}}
    kw = dict(system="s", progress=False)
    base_rows = [{"text": "hi", "answer": "plain"}]
    threads = torch.get_num_threads()
    try:  # one thread per measuring process in both runs
        torch.set_num_threads(1)
        one, _ = measure_all(root / "models/variants", root / "data/behaviors", tiny_base, base_rows,
                             params={**params, "workers": 1}, **kw)
        torch.set_num_threads(2)
        two, _ = measure_all(root / "models/variants", root / "data/behaviors", tiny_base, base_rows,
                             params={**params, "workers": 2}, **kw)
    finally:
        torch.set_num_threads(threads)
    assert [r["split"] for r in one] == ["dpo", "heldout"]
    assert one == two
