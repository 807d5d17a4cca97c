"""Rule-based negatives for base models: minimal edits and axis rewrites."""

import random

from persrm_gen.generator.edits import AXIS_REWRITES, axis_rewrite, minimal_edit
from persrm_gen.textutil import sentences

TEXT = ("We need to make a big change to the way the import system works. It is not hard, but it is "
        "important; the old method was slow, and people often had to find a way around it (usually by hand). "
        "I think we should start now.")


def _diff_words(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a.split(), b.split())) + abs(len(a.split()) - len(b.split()))


def test_minimal_edit_replaces_three_or_four_words_and_nothing_else():
    for seed in range(20):
        edited = minimal_edit(TEXT, random.Random(seed))
        assert edited is not None
        assert len(edited.split()) == len(TEXT.split())
        assert 3 <= _diff_words(TEXT, edited) <= 4
        assert [c for c in edited if not c.isalnum() and c != " "] == [c for c in TEXT if not c.isalnum() and c != " "]


def test_minimal_edit_is_deterministic_and_refuses_texts_without_candidates():
    assert minimal_edit(TEXT, random.Random(3)) == minimal_edit(TEXT, random.Random(3))
    assert minimal_edit("Xylophones zigzag quietly.", random.Random(0)) is None


def test_each_axis_changes_the_text_along_its_axis():
    rng = random.Random(0)
    assert "shouldn't" in axis_rewrite(TEXT, "formality", rng) or "isn't" in axis_rewrite(TEXT, "formality", rng)
    longer = axis_rewrite(TEXT, "length", rng)
    assert len(sentences(longer)) != len(sentences(TEXT))
    punct = axis_rewrite(TEXT, "punctuation", rng)
    assert punct.count(",") + punct.count(";") + punct.count("(") < TEXT.count(",") + TEXT.count(";") + TEXT.count("(")
    assert axis_rewrite(TEXT, "structure", rng).startswith("- ")
    assert _diff_words(TEXT, axis_rewrite(TEXT, "vocabulary", rng)) >= 5
    assert set(AXIS_REWRITES) == {"formality", "length", "punctuation", "vocabulary", "structure"}


def test_structure_axis_turns_a_list_back_into_prose():
    bullets = "- First point here.\n- Second point here.\n- Third one."
    assert axis_rewrite(bullets, "structure", random.Random(0)) == "First point here. Second point here. Third one."
