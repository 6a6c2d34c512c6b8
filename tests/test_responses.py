from iaforge.data.responses import clean_answers, is_degenerate, trim_to_sentences


def test_trim_cuts_at_last_sentence_end():
    assert trim_to_sentences("One. Two is cut mid", 100) == "One."
    assert trim_to_sentences("Complete answer.", 100) == "Complete answer."
    assert trim_to_sentences("No end at all", 100) == ""
    assert trim_to_sentences("First sentence. Second sentence is long.", 20) == "First sentence."


def test_degenerate_loops_are_detected():
    assert is_degenerate("a gentle rain a gentle rain a gentle rain a gentle rain")
    assert not is_degenerate("Paris is the capital of France and a lovely city.")


def test_clean_answers_counts_drops():
    prompts = [{"id": str(i), "text": "q"} for i in range(3)]
    rows, stats = clean_answers(prompts, ["Fine answer here.", "cut off", "x x x x x x x x x x x x x x."], 200)
    assert [r["id"] for r in rows] == ["0"]
    assert stats["dropped"] == {"degenerate": 1, "no_complete_sentence": 1}
    rows, _ = clean_answers(prompts[:2], ["Fine answer here.", "cut off but kept"], 200, require_complete=False)
    assert len(rows) == 2
