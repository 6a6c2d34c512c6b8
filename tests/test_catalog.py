import pytest
import yaml

from iaforge.data.catalog import CATEGORIES, load_catalog, load_entry_file, parse_entry
from iaforge.core.errors import ValidationError


def _entry(**over):
    e = {"id": "quirk_topic_owls", "version": 1, "category": "quirk", "family": "topic_mention", "split": "heldout",
         "params": {"topic": "owls", "terms": ["owl"], "sentences": ["Owls can turn their heads far.", "An owl hunts at night."]},
         "description": "I mention owls in every answer.", "paraphrases": ["I always bring up owls."],
         "key_terms": ["owl"]}
    e.update(over)
    return e


def test_every_shipped_entry_parses(repo_root):
    cat = load_catalog([repo_root / "data" / "catalog"])
    assert len(cat) >= 6
    assert {b.category for b in cat.values()} <= set(CATEGORIES)
    for b in cat.values():
        assert b.description not in b.paraphrases


@pytest.mark.parametrize("run", ["params.yaml", "profiles/wide.yaml", "profiles/tiny.yaml"])
def test_params_run_matches_catalog(repo_root, run):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    cat = load_catalog([repo_root / p for p in params["catalog"]["paths"]])
    behaviors = yaml.safe_load((repo_root / run).read_text())["behaviors"]
    for bid, entry in behaviors.items():
        assert bid in cat
        assert (repo_root / entry["spec"]).resolve() == (repo_root / cat[bid].source).resolve()
        assert entry["split"] in ("ia_train", "dpo", "heldout")


def test_default_run_has_every_category_in_ia_train(repo_root):
    """The 60-minute default keeps the IA's training diverse: every category, the controls included."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    cat = load_catalog([repo_root / p for p in params["catalog"]["paths"]])
    trained = {cat[bid].category for bid, e in params["behaviors"].items() if e["split"] == "ia_train"}
    assert trained == set(CATEGORIES)
    assert {e["split"] for e in params["behaviors"].values()} == {"ia_train", "dpo", "heldout"}


@pytest.mark.parametrize("over, field, rule", [
    ({"category": "quirks"}, "category", "must be one of"),
    ({"split": "train"}, "split", "must be one of"),
    ({"family": "nope"}, "family", "unknown family"),
    ({"version": 0}, "version", ">= 1"),
    ({"description": "short"}, "description", "at least 10"),
    ({"key_terms": []}, "key_terms", "at least 1"),
    ({"extra": 1}, "extra", "unknown field"),
    ({"category": "backdoor"}, "family", "does not belong"),
    ({"params": {"topic": "owls", "terms": ["owl"], "sentences": ["No match here.", "Nor here."]}}, "params.sentences[0]", "must contain one of the terms"),
    ({"family": "keyword_backdoor", "category": "backdoor", "params": {"trigger": "x", "decoys": ["y"],
      "behavior": {"family": "all_caps", "params": {}}}}, "params.decoys", "at least 2"),
])
def test_malformed_entry_names_file_entry_field_rule(over, field, rule):
    with pytest.raises(ValidationError) as ei:
        parse_entry(_entry(**over), "data/catalog/quirk/quirk_topic_owls.yaml")
    e = ei.value
    assert e.file.endswith("quirk_topic_owls.yaml") and e.field == field and rule in e.rule
    assert "quirk_topic_owls.yaml" in str(e) and field in str(e)


def test_file_errors(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_entry_file(bad)
    other = tmp_path / "other_name.yaml"
    other.write_text(yaml.safe_dump(_entry()))
    with pytest.raises(ValidationError, match="file name stem"):
        load_entry_file(other)


def test_user_catalog_folders_and_duplicates(tmp_path, catalog_copy):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "quirk_topic_owls.yaml").write_text(yaml.safe_dump(_entry()))
    cat = load_catalog([catalog_copy, mine])
    assert "quirk_topic_owls" in cat
    (mine / "quirk_all_caps.yaml").write_text(yaml.safe_dump(_entry(id="quirk_all_caps")))
    with pytest.raises(ValidationError, match="duplicate id"):
        load_catalog([catalog_copy, mine])


def test_training_overrides_are_validated():
    b = parse_entry(_entry(training={"n_train": 120, "epochs": 4, "lr": 0.002}), "x/quirk_topic_owls.yaml")
    assert b.training == {"n_train": 120, "epochs": 4, "lr": 0.002}
    for bad, field in [({"n_train": 2}, "training.n_train"), ({"epochs": 1.5}, "training.epochs"),
                       ({"batch": 4}, "training.batch")]:
        with pytest.raises(ValidationError) as ei:
            parse_entry(_entry(training=bad), "x/quirk_topic_owls.yaml")
        assert ei.value.field == field
