"""Judgments: A/B placement, and the reasoning trace that ends in the verdict.

Placement is shuffled with the run's seed and balanced per author, so position never
predicts the label. Traces come from measured style evidence (any backend) or from an
instruction model (``--rationales llm``); a trace is only kept for ``sft`` when its
verdict is the label, and an evidence trace only when the evidence itself agrees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from persrm_gen.answer import make_trace
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.textutil import rng_for

MAX_FEATURES_IN_TRACE = 6


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


def evidence_view(comparison, verdict: str) -> dict:
    """Variables for ``rationale_evidence.j2`` seen from the verdict's side."""
    other = "B" if verdict == "A" else "A"

    def side(f):
        mine, theirs = (f.a_value, f.b_value) if verdict == "A" else (f.b_value, f.a_value)
        unit = "" if f.unit in ("", "ratio") else f" {f.unit}"  # "12.5 words", "0.45"
        return {"description": f.description, "unit": unit, "author": _fmt(f.author_value), "mine": _fmt(mine), "theirs": _fmt(theirs)}

    decided = [f for f in comparison.features if f.closer in ("A", "B")]
    favour = [side(f) for f in decided if f.closer == verdict]
    against = [side(f) for f in decided if f.closer != verdict]

    def pair(a: float, b: float, pct: bool = True) -> dict:
        mine, theirs = (a, b) if verdict == "A" else (b, a)
        f = (lambda v: f"{100 * v:.0f}%") if pct else _fmt
        return {"mine": f(mine), "theirs": f(theirs)}

    return {
        "verdict": verdict,
        "other": other,
        "favour": favour[:MAX_FEATURES_IN_TRACE],
        "against": against[:2],
        "favour_count": len(favour),
        "n_features": len(decided),
        "ngram": pair(comparison.ngram_similarity_a, comparison.ngram_similarity_b, pct=False),
        "vocab": pair(comparison.vocab_overlap_a, comparison.vocab_overlap_b),
        "distance": pair(comparison.distance_a, comparison.distance_b, pct=False),
    }


def evidence_trace(renderer: PromptRenderer, comparison, verdict: str) -> str:
    """A full trace (<think>...</think><answer>X</answer>) argued from the measurements."""
    return make_trace(renderer.text("rationale_evidence", **evidence_view(comparison, verdict)), verdict)
