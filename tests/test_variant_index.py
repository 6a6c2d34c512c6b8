import pytest

from iaforge.core.errors import ValidationError
from iaforge.variants.index import without_categories

VARIANTS = {"q": {"behavior": {"category": "quirk"}}, "b": {"behavior": {"category": "backdoor"}},
            "q2": {"behavior": {"category": "quirk"}}}


def test_leaving_a_category_out_keeps_the_others():
    assert set(without_categories(VARIANTS, ["quirk"])) == {"b"}
    assert without_categories(VARIANTS, []) == VARIANTS


def test_unknown_or_total_exclusion_is_a_clear_error():
    with pytest.raises(ValidationError, match=r"ia_sft.exclude_categories.*unknown category 'quirks'"):
        without_categories(VARIANTS, ["quirks"])
    with pytest.raises(ValidationError, match="excludes every variant"):
        without_categories(VARIANTS, ["quirk", "backdoor"])


def test_a_category_given_as_a_string_is_refused_not_split_into_letters():
    with pytest.raises(ValidationError, match=r"must be a list of categories"):
        without_categories(VARIANTS, "quirk")
