import asyncio
import dataclasses
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from rich.progress import Progress

from persrm_gen.answer import format_ok, parse_verdict
from persrm_gen.generator.judgments import (
    assign_labels,
    evidence_trace,
    tally,
    trace_problem,
)
from persrm_gen.generator.parsing import (
    UnparseableOutput,
    clean_continuation,
    clean_rewrite,
)
from persrm_gen.generator.rationales import RationaleOptions, write_rationales
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.records import Pair
from persrm_gen.style import FeatureEvidence, compare


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


# -- honest evidence traces (issue 13 item 4) --------------------------------------------------


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"
_WEIGHT = re.compile(r"\(weight (\d+\.\d{3})\)")


def _corpus() -> dict[str, list[str]]:
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    return {r["author_id"]: [s["text"] for s in r["samples"]] for r in rows}


def _random_comparisons(n: int, seed: int = 0):
    """Context from one author; two responses drawn from any author, sometimes cut short."""
    corpus, rng = _corpus(), random.Random(seed)
    every = [t for texts in corpus.values() for t in texts]
    for _ in range(n):
        texts = corpus[rng.choice(sorted(corpus))]
        context = rng.sample(texts, min(3, len(texts)))
        a, b = (rng.choice(every) for _ in range(2))
        if rng.random() < 0.5:
            a = " ".join(a.split()[: rng.randint(15, 80)])
        yield compare(context, a, b)


def _sections(trace: str, verdict: str) -> tuple[list[str], list[str], str]:
    """(lines cited for the verdict, lines cited against it, the closing paragraph)."""
    other = "B" if verdict == "A" else "A"
    body = trace.split("<think>")[1].split("</think>")[0]
    favour = body.split(f"Evidence for Response {verdict}:")[1] if f"Evidence for Response {verdict}:" in body else ""
    against = body.split(f"Against this, evidence for Response {other}:")[1] if "Against this" in body else ""
    favour = favour.split("Against this")[0].split("Smaller differences")[0].split("Weighing")[0]
    against = against.split("Smaller differences")[0].split("Weighing")[0]
    return _bullets(favour), _bullets(against), body[body.index("Weighing"):]


def _bullets(section: str) -> list[str]:
    return [ln for ln in section.splitlines() if ln.startswith("- ")]


def _split_comparison():
    """Measured on two real texts: some features favour A, others B, and A is closer overall."""
    for cmp in _random_comparisons(200, seed=3):
        kinds = {f.closer for f in cmp.decisive(21)}
        if kinds == {"A", "B"} and trace_problem(cmp, cmp.predicted) is None:
            return cmp
    raise AssertionError("no comparison with split features in the example corpus")


def test_a_trace_cites_its_support_and_names_contrary_evidence_as_contrary():
    cmp = _split_comparison()
    verdict = cmp.predicted
    other = "B" if verdict == "A" else "A"
    trace = evidence_trace(PromptRenderer(), cmp, verdict)
    favour, against, closing = _sections(trace, verdict)
    assert favour and against
    assert all(ln.endswith(f"so Response {verdict} is closer (weight {_WEIGHT.search(ln).group(1)}).") for ln in favour)
    assert all(f"so Response {other} is closer" in ln for ln in against)
    assert f"Against this, evidence for Response {other}:" in trace
    assert closing.strip().endswith(f"The author most likely wrote Response {verdict}.")
    t = tally(cmp, verdict)
    assert f"total weight of {t.support:.3f}, against {t.contrary:.3f}" in closing and t.support > t.contrary


def test_no_emitted_trace_has_a_tally_against_its_verdict():
    """Property over random pairs of example-corpus texts, for both verdicts."""
    emitted = withheld = 0
    for cmp in _random_comparisons(150):
        for verdict in "AB":
            trace = evidence_trace(PromptRenderer(), cmp, verdict)
            assert format_ok(trace) and parse_verdict(trace) == verdict
            closing = _sections(trace, verdict)[2]
            weights = [float(w) for w in _WEIGHT.findall(trace)]  # itemized lines, then the not-itemized sums
            support, contrary = map(float, re.search(r"total weight of (\d+\.\d+), against (\d+\.\d+)", closing).groups())
            assert abs(sum(weights) - support - contrary) < 1e-6  # the totals add up what the trace shows
            if trace_problem(cmp, verdict) is None:
                emitted += 1
                assert support > contrary and cmp.predicted == verdict
                assert "most likely wrote" in closing
            else:
                withheld += 1
                assert "most likely wrote" not in trace and "not a conclusion from this evidence" in closing
    assert emitted and withheld


def _with_ties_deciding(cmp):
    """The same measurements, but the cited evidence for A is too light: ties made A closer."""
    feats = [dataclasses.replace(f, closer="B", weight=3.0) if i == 0 else dataclasses.replace(f, closer="tie")
             for i, f in enumerate(cmp.features)]
    return dataclasses.replace(cmp, features=feats, predicted="A", distance_a=1.0, distance_b=1.01,
                               ngram_similarity_a=0.5, ngram_similarity_b=0.5, vocab_overlap_a=0.8, vocab_overlap_b=0.8,
                               function_word_distance_a=0.3, function_word_distance_b=0.3)


def test_a_trace_whose_tally_contradicts_the_distance_verdict_is_withheld_and_counted():
    cmp = _with_ties_deciding(_split_comparison())
    assert isinstance(cmp.features[0], FeatureEvidence)
    assert cmp.predicted == "A" and not tally(cmp, "A").favours_verdict
    assert trace_problem(cmp, "A") == "trace_contradicts_verdict"
    assert "most likely wrote" not in evidence_trace(PromptRenderer(), cmp, "A")


def test_evidence_rationales_count_each_reason_a_trace_stays_out_of_sft():
    corpus = _corpus()
    pairs = []
    for i, cmp_seed in enumerate(range(40)):
        rng = random.Random(cmp_seed)
        author, other = rng.sample(sorted(corpus), 2)
        context, chosen = corpus[author][:3], corpus[author][-1]
        rejected = rng.choice(corpus[other])
        label = rng.choice("AB")
        a, b = (chosen, rejected) if label == "A" else (rejected, chosen)
        pairs.append(Pair(id=f"p{i}", author_id=author, genre="pep", query="q", context=context, chosen=chosen,
                          rejected=rejected, chosen_source="author", rejected_source="other-author",
                          response_a=a, response_b=b, label=label, rationale="", style_margin=0.0, split="train"))
    with Progress(disable=True) as progress:
        drops = asyncio.run(write_rationales(pairs, None, PromptRenderer(), RationaleOptions("evidence", "none"), progress, None))
    bad = [p for p in pairs if not p.meta["rationale_ok"]]
    assert drops["sft_evidence_disagrees"] + drops["trace_contradicts_verdict"] == len(bad)
    for p in pairs:
        assert parse_verdict(p.rationale) == p.label
        assert ("most likely wrote" in p.rationale) == p.meta["rationale_ok"]
