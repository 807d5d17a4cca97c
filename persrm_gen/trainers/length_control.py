"""Length-controlled evaluation: accuracy by the length ratio of the two responses.

A reward model can score well by learning "the longer response wins" instead of the
author's style, and preference data often rewards that shortcut (RLHF evaluation
reports length-controlled win rates for this reason). So eval splits every judge's
accuracy by how much longer the longer response is, by whether the chosen (the
author's) response is the shorter or the longer one, and reports how often the judge
picks the longer response. Beside them stands what the rule "pick the longer" would
score on the same pairs: a judge whose numbers track that row has learnt length.

Length is the whitespace word count (``textutil.word_count``); the ratio is longer over
shorter, at least 1. The first bucket, ``[1.0, 1.2)``, holds length-matched pairs: a
negative within 15% of the positive's words lies there. Counts are judgments (each pair
twice, once per A/B order), as elsewhere in the eval report.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from persrm_gen.textutil import word_count

EDGES = (1.0, 1.2, 1.5, 2.0)  # lower bounds of the ratio buckets; the last is open-ended
SIDES = ("chosen_shorter", "chosen_longer", "same_length")


@dataclass(frozen=True)
class Bucket:
    low: float
    high: float

    @property
    def label(self) -> str:
        return f"[{self.low:.1f}, {self.high:.1f})" if math.isfinite(self.high) else f"[{self.low:.1f}, inf)"


BUCKETS = tuple(Bucket(lo, hi) for lo, hi in zip(EDGES, (*EDGES[1:], math.inf), strict=True))


class Judged(NamedTuple):
    """One judgment as length control needs it: the two responses as shown, the label, the verdict."""

    response_a: str
    response_b: str
    label: str
    verdict: str | None  # None: unparsable, counted wrong


def _ratio(a_words: int, b_words: int) -> float:
    short, long = sorted((a_words, b_words))
    if long == 0:
        return 1.0
    return long / short if short else math.inf


def bucket_of(response_a: str, response_b: str) -> str:
    """The label of the ratio bucket the pair falls in (an empty response against words: the last)."""
    ratio = _ratio(word_count(response_a), word_count(response_b))
    return BUCKETS[bisect_right(EDGES, ratio) - 1].label


def _longer(j: Judged) -> str | None:
    """``A`` or ``B``, whichever has more words; None for a tie."""
    a, b = word_count(j.response_a), word_count(j.response_b)
    return None if a == b else ("A" if a > b else "B")


def _side(j: Judged) -> str:
    longer = _longer(j)
    return "same_length" if longer is None else ("chosen_longer" if longer == j.label else "chosen_shorter")


def _rate(hits: Sequence[float]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def _cell(judged: Sequence[Judged]) -> dict:
    """n, accuracy, and the longer-pick rate over parsed verdicts on pairs of unequal length."""
    picks = [j.verdict == _longer(j) for j in judged if j.verdict is not None and _longer(j) is not None]
    return {"n": len(judged), "accuracy": _rate([j.verdict == j.label for j in judged]), "longer_pick_rate": _rate(picks)}


def _by(judged: Iterable[Judged], key, labels: Sequence[str]) -> dict[str, list[Judged]]:
    groups: dict[str, list[Judged]] = {label: [] for label in labels}
    for j in judged:
        groups[key(j)].append(j)
    return groups


def _by_ratio(judged: Sequence[Judged]) -> dict[str, list[Judged]]:
    return _by(judged, lambda j: bucket_of(j.response_a, j.response_b), [b.label for b in BUCKETS])


def length_report(judged: Sequence[Judged]) -> dict:
    """One judge's length-controlled numbers (rates are None where a group is empty)."""
    overall = _cell(judged)
    sides = _by(judged, _side, SIDES)
    return {
        "accuracy": overall["accuracy"],
        "longer_pick_rate": overall["longer_pick_rate"],
        "n_unequal": sum(1 for j in judged if _longer(j) is not None),
        "by_ratio": {label: _cell(group) for label, group in _by_ratio(judged).items()},
        "by_chosen_length": {
            side: {"n": len(group), "accuracy": _rate([j.verdict == j.label for j in group])}
            for side, group in sides.items()
        },
    }


def _pick_longer_credit(j: Judged) -> float:
    """What "pick the longer" scores on one judgment: 1 or 0, a coin's 0.5 on a tie."""
    longer = _longer(j)
    return 0.5 if longer is None else float(longer == j.label)


def pick_longer_reference(judged: Sequence[Judged]) -> dict:
    """The pairs' own length signal: the accuracy of "pick the longer" overall and per bucket."""
    return {
        "measure": "words (whitespace-separated); ratio = longer / shorter",
        "buckets": [b.label for b in BUCKETS],
        "accuracy": _rate([_pick_longer_credit(j) for j in judged]),
        "by_ratio": {
            label: {"n": len(group), "accuracy": _rate([_pick_longer_credit(j) for j in group])}
            for label, group in _by_ratio(judged).items()
        },
        "by_chosen_length": {s: len(g) for s, g in _by(judged, _side, SIDES).items()},
    }
