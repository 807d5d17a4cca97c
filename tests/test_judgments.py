from collections import Counter

from persrm_gen.answer import format_ok, parse_verdict
from persrm_gen.generator.parsing import UnparseableOutput, clean_continuation, clean_rewrite
from persrm_gen.generator.judgments import assign_labels, evidence_trace
from persrm_gen.style import compare
from persrm_gen.prompts.renderer import PromptRenderer

import pytest


def test_labels_are_balanced_per_author_and_seeded():
    items = [(f"a{i % 3}", f"p{i}") for i in range(31)]
    labels = assign_labels(items, seed=7)
    for author in ("a0", "a1", "a2"):
        c = Counter(labels[p] for a, p in items if a == author)
        assert abs(c["A"] - c["B"]) <= 1
    assert labels == assign_labels(list(reversed(items)), seed=7)  # order of arrival does not matter
    assert labels != assign_labels(items, seed=8)


def test_evidence_trace_argues_for_the_verdict_from_measurements():
    context = ["I write short lines. Very short. Always.", "Short is good. I like it. Done."]
    a = "Short lines. I like them. Done now."
    b = "Whereas the committee, having deliberated at considerable length over the many subtle questions presented, concluded, with some reluctance, that further study was warranted."
    cmp = compare(context, a, b)
    trace = evidence_trace(PromptRenderer(), cmp, "A")
    assert format_ok(trace) and parse_verdict(trace) == "A"
    assert "average sentence length" in trace.lower() and "Response A" in trace


def test_rewrite_cleaning_removes_preambles_and_rejects_empty():
    assert clean_rewrite("Here is the rewritten text:\n\nWe go now.") == "We go now."
    assert clean_rewrite('"Quoted answer."') == "Quoted answer."
    assert clean_rewrite("It began. And then more.", opening="It began.") == "And then more."
    with pytest.raises(UnparseableOutput):
        clean_rewrite("Sure, here you go:\n\n")
    with pytest.raises(UnparseableOutput):
        clean_rewrite("<answer>A</answer>")


def test_continuations_stop_at_the_next_document_and_end_on_a_sentence():
    raw = " went on for a while. It ended well. And then\nText 5:\nother"
    assert clean_continuation(raw) == "went on for a while. It ended well."
