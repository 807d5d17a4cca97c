"""Judgments: A/B placement, and the reasoning trace that ends in the verdict.

Placement is shuffled with the run's seed and balanced per author, so position never
predicts the label. Traces come from measured style evidence (any backend) or from an
instruction model (``--rationales llm``); a trace is only kept for ``sft`` when its
verdict is the label, and an evidence trace only when the evidence itself agrees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from persrm_gen.answer import make_trace
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.style import FEATURES, W_FEAT, W_FW, W_NGRAM, W_VOCAB
from persrm_gen.textutil import rng_for

MAX_FEATURES_IN_TRACE = 6  # supporting measurements itemized; the rest are summed in one line
MAX_CONTRARY_IN_TRACE = 4


def assign_labels(items: Sequence[tuple[str, str]], seed: int) -> dict[str, str]:
    """``items`` are (author_id, pair_id); returns pair_id -> "A"|"B", balanced per author."""
    by_author: dict[str, list[str]] = defaultdict(list)
    for author_id, pair_id in items:
        by_author[author_id].append(pair_id)
    labels: dict[str, str] = {}
    for author_id, ids in sorted(by_author.items()):
        rng = rng_for(seed, "ab", author_id)
        first = rng.choice("AB")
        pattern = [first, "B" if first == "A" else "A"] * (len(ids) // 2 + 1)
        order = sorted(ids)
        rng.shuffle(order)
        labels.update({pid: pattern[i] for i, pid in enumerate(order)})
    return labels


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _weighed(comparison, verdict: str) -> list[dict]:
    """Every measurement that separates the responses, signed for the verdict.

    ``weight`` is the measurement's share of the style distance (style.py's formula):
    positive when it puts the verdict's response closer to the author, negative when it
    points to the other response. Rounded to 3 decimals here, so the totals a trace states
    are exactly the sum of the weights it shows. Ties (weight 0.000) are left out.
    """
    mine_first = verdict == "A"

    def two(a: float, b: float) -> tuple[float, float]:
        return (a, b) if mine_first else (b, a)

    items = []
    for f in comparison.features:
        if f.closer not in ("A", "B"):
            continue
        mine, theirs = two(f.a_value, f.b_value)
        unit = "" if f.unit in ("", "ratio") else f" {f.unit}"  # "12.5 words", "0.45"
        sign = 1 if f.closer == verdict else -1
        items.append({"kind": "feature", "description": f.description, "unit": unit, "author": _fmt(f.author_value),
                      "mine": _fmt(mine), "theirs": _fmt(theirs), "weight": sign * W_FEAT * f.weight / len(FEATURES)})
    fw_mine, fw_theirs = two(comparison.function_word_distance_a, comparison.function_word_distance_b)
    items.append({"kind": "function_words", "mine": _fmt(fw_mine), "theirs": _fmt(fw_theirs),
                  "weight": W_FW * (fw_theirs - fw_mine)})
    ng_mine, ng_theirs = two(comparison.ngram_similarity_a, comparison.ngram_similarity_b)
    items.append({"kind": "ngram", "mine": _fmt(ng_mine), "theirs": _fmt(ng_theirs),
                  "weight": W_NGRAM * (ng_mine - ng_theirs)})
    vo_mine, vo_theirs = two(comparison.vocab_overlap_a, comparison.vocab_overlap_b)
    items.append({"kind": "vocab", "mine": f"{100 * vo_mine:.0f}%", "theirs": f"{100 * vo_theirs:.0f}%",
                  "weight": W_VOCAB * (vo_mine - vo_theirs)})
    for it in items:
        it["weight"] = round(it["weight"], 3) + 0.0  # + 0.0 turns -0.0 into 0.0
        it["shown_weight"] = f"{abs(it['weight']):.3f}"
    return [it for it in items if it["weight"] != 0]


@dataclass(frozen=True)
class Tally:
    """What a trace weighs: the evidence for its verdict against the evidence for the other side."""

    support: float
    contrary: float

    @property
    def favours_verdict(self) -> bool:
        return self.support > self.contrary


def tally(comparison, verdict: str) -> Tally:
    return _tally(_weighed(comparison, verdict))


def _tally(items: list[dict]) -> Tally:
    return Tally(round(sum(i["weight"] for i in items if i["weight"] > 0), 3),
                 round(-sum(i["weight"] for i in items if i["weight"] < 0), 3))


def trace_problem(comparison, verdict: str) -> str | None:
    """Why the evidence trace for ``verdict`` may not go into sft (a drop reason), or None.

    ``sft_evidence_disagrees``: the style distance puts the other response closer.
    ``trace_contradicts_verdict``: the distance agrees, but the measurements the trace
    names do not outweigh those it names as contrary (ties, left out of the trace, decided it).
    """
    return _problem(comparison, verdict, lambda: tally(comparison, verdict))


def _problem(comparison, verdict: str, tally_of) -> str | None:
    if comparison.predicted != verdict:
        return "sft_evidence_disagrees"
    if not tally_of().favours_verdict:
        return "trace_contradicts_verdict"
    return None


def evidence_view(comparison, verdict: str) -> dict:
    """Variables for ``rationale_evidence.j2`` seen from the verdict's side."""
    return _view(comparison, verdict)[0]


def _view(comparison, verdict: str) -> tuple[dict, str | None]:
    """(evidence_view, trace_problem): the measurements weighed once for both (a build
    weighed every pair four times)."""
    items = _weighed(comparison, verdict)
    favour = sorted((i for i in items if i["weight"] > 0), key=lambda i: -i["weight"])
    against = sorted((i for i in items if i["weight"] < 0), key=lambda i: i["weight"])
    shown_f, shown_a = favour[:MAX_FEATURES_IN_TRACE], against[:MAX_CONTRARY_IN_TRACE]
    rest_f, rest_a = favour[len(shown_f):], against[len(shown_a):]
    t = _tally(items)
    problem = _problem(comparison, verdict, lambda: t)
    mine, theirs = (comparison.distance_a, comparison.distance_b) if verdict == "A" else (comparison.distance_b, comparison.distance_a)
    return {
        "verdict": verdict,
        "other": "B" if verdict == "A" else "A",
        "favour": shown_f,
        "against": shown_a,
        "rest": {"favour_count": len(rest_f), "against_count": len(rest_a),
                 "favour": f"{sum(i['weight'] for i in rest_f):.3f}", "against": f"{-sum(i['weight'] for i in rest_a):.3f}"},
        "support": f"{t.support:.3f}",
        "contrary": f"{t.contrary:.3f}",
        "favour_count": len(favour),
        "against_count": len(against),
        "consistent": problem is None,
        "distance": {"mine": _fmt(mine), "theirs": _fmt(theirs)},
    }, problem


def evidence_trace(renderer: PromptRenderer, comparison, verdict: str) -> str:
    """A full trace (<think>...</think><answer>X</answer>) argued from the measurements."""
    return evidence_trace_and_problem(renderer, comparison, verdict)[0]


def evidence_trace_and_problem(renderer: PromptRenderer, comparison, verdict: str) -> tuple[str, str | None]:
    """(``evidence_trace``, ``trace_problem``) from one weighing of the measurements."""
    view, problem = _view(comparison, verdict)
    return make_trace(renderer.text("rationale_evidence", **view), verdict), problem
