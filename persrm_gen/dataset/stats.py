"""``persrm-gen stats``: what a built dataset holds, and how a no-LLM judge does on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from persrm_gen.dataset.blind_audit import Extra, audit
from persrm_gen.style import baseline_judge


def compute_stats(pairs: Sequence[dict], rejections: dict[str, int] | None = None,
                  predicted: Mapping[str, str] | None = None, fluency: Extra | None = None) -> dict:
    """The stats dict shared by the card, the manifest-side report and ``persrm-gen stats``.

    ``predicted``: the style judge's verdict per pair id where the caller measured it already
    (a build's rationales stage does); the judge runs on the rest. ``blind_audit`` is the
    context-blind judge (``dataset.blind_audit``; ``fluency`` adds its optional cue)."""
    margins = np.array([p["style_margin"] for p in pairs], dtype=float)
    # key -> [right calls, pairs]: counts, not a list of bools per pair alive through the audit
    correct: dict[str, list[int]] = {}
    correct_by_strategy: dict[str, list[int]] = {}
    for p in pairs:
        verdict = predicted.get(p["id"]) if predicted else None
        hit = (verdict or baseline_judge(p["context"], p["response_a"], p["response_b"])) == p["label"]
        for tally in (correct.setdefault(p["split"], [0, 0]), correct.setdefault("all", [0, 0]),
                      correct_by_strategy.setdefault(p["strategy"], [0, 0])):
            tally[0] += hit
            tally[1] += 1
    authors: dict[str, set] = {}
    for p in pairs:
        authors.setdefault(p["split"], set()).add(p["author_id"])
        authors.setdefault("all", set()).add(p["author_id"])
    by_strategy_split: dict[str, dict[str, int]] = {}
    for p in pairs:
        row = by_strategy_split.setdefault(p["strategy"], {})
        row[p["split"]] = row.get(p["split"], 0) + 1
    return {
        "n_pairs": len(pairs),
        "by_split": _count(p["split"] for p in pairs),
        "by_strategy": _count(p["strategy"] for p in pairs),
        "by_genre": _count(p["genre"] for p in pairs),
        "by_strategy_split": {k: dict(sorted(v.items())) for k, v in sorted(by_strategy_split.items())},
        "ab_balance": {"A": sum(p["label"] == "A" for p in pairs), "B": sum(p["label"] == "B" for p in pairs)},
        "style_margin": _distribution(margins),
        "rejections": dict(sorted((rejections or {}).items())),
        "baseline_accuracy": {k: _share(*v) for k, v in sorted(correct.items())},
        "baseline_by_strategy": {k: _share(*v) for k, v in sorted(correct_by_strategy.items())},
        "blind_audit": audit(pairs, fluency),
        "authors": {k: len(v) for k, v in sorted(authors.items())},
        "sft_usable": sum(bool(p.get("rationale_ok", True)) for p in pairs),
    }


def _share(hits: int, n: int) -> float:
    """``hits / n`` rounded as the card prints it (the mean of the per-pair bools, to the bit)."""
    return round(hits / n, 4)


def _count(values) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _distribution(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {k: 0.0 for k in ("mean", "p10", "p50", "p90", "min", "max", "positive")}
    q = np.percentile(x, [10, 50, 90])
    return {
        "mean": round(float(x.mean()), 4), "p10": round(float(q[0]), 4), "p50": round(float(q[1]), 4),
        "p90": round(float(q[2]), 4), "min": round(float(x.min()), 4), "max": round(float(x.max()), 4),
        "positive": round(float((x > 0).mean()), 4),
    }
