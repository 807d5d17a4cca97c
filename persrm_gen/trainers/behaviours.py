"""Tag reasoning traces with cognitive behaviours and the style criteria they cite.

The four behaviours are those of Gandhi et al. (2025), "Cognitive behaviors that enable
self-improving reasoners": verification, backtracking, subgoal setting and backward
chaining. Tagging is by phrase patterns, which is cheap and transparent but only a
proxy: run it on two checkpoints (before and after RFT) and compare the rates, rather
than reading one rate as an absolute measure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from persrm_gen.answer import reasoning_of

_I = re.IGNORECASE

BEHAVIOURS: dict[str, re.Pattern] = {
    "verification": re.compile(
        r"\b(let me (check|verify|confirm)|double[- ]check|to (verify|confirm)|checking (this|that|again)"
        r"|this (confirms|is consistent with)|consistent with (the|her|his|their) samples|sanity check)\b",
        _I,
    ),
    "backtracking": re.compile(
        r"\b(wait|actually|on second thought|let me reconsider|i was wrong|that's not right|re-?examin\w*"
        r"|however, (looking|on closer)|instead,? (i|let))\b",
        _I,
    ),
    "subgoal_setting": re.compile(
        r"\b(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|next|finally),"
        r"|\b(?:step \d|let me (?:start|begin|break)|i will (?:first|compare|look)|to decide, i)\b",
        _I,
    ),
    "backward_chaining": re.compile(
        r"\b(if (the author|this author|they|she|he) (wrote|had written)|working backwards?"
        r"|for (response )?[AB] to be (the author's|theirs|hers|his)|would (need|have) to|which would mean)\b",
        _I,
    ),
}

# The style axes a trace may cite; the first four mirror the dataset's divergence axes.
CRITERIA: dict[str, re.Pattern] = {
    "formality": re.compile(r"\b(formal\w*|informal\w*|register|colloquial\w*|casual\w*)\b", _I),
    "length": re.compile(r"\b(sentence length|long(er)? sentences|short(er)? sentences|length|concise|verbose)\b", _I),
    "punctuation": re.compile(r"\b(punctuation|comma\w*|semicolon\w*|dash(es)?|exclamation\w*|parenthes\w*)\b", _I),
    "vocabulary": re.compile(r"\b(vocabular\w*|word choice|diction|jargon|lexic\w*|idiom\w*)\b", _I),
    "structure": re.compile(r"\b(structure\w*|paragraph\w*|bullet\w*|list\w*|heading\w*|organi[sz]\w*)\b", _I),
    "tone": re.compile(r"\b(tone|voice|rhythm|cadence|humou?r\w*|sarcas\w*|emotion\w*)\b", _I),
}


def tag_trace(text: str) -> dict[str, int]:
    """Occurrences of each behaviour and criterion in the trace's reasoning section."""
    reasoning = reasoning_of(text) or text
    tags = {name: len(p.findall(reasoning)) for name, p in BEHAVIOURS.items()}
    tags.update({f"criterion:{name}": len(p.findall(reasoning)) for name, p in CRITERIA.items()})
    return tags


def behaviour_report(traces: Iterable[str]) -> dict:
    """Share of traces showing each behaviour/criterion at least once, and mean occurrences."""
    tagged = [tag_trace(t) for t in traces]
    n = len(tagged)
    names = list(BEHAVIOURS) + [f"criterion:{c}" for c in CRITERIA]
    return {
        "n_traces": n,
        "rates": {k: (sum(1 for t in tagged if t[k]) / n if n else 0.0) for k in names},
        "mean_counts": {k: (sum(t[k] for t in tagged) / n if n else 0.0) for k in names},
    }


def compare_behaviours(before: dict, after: dict) -> dict[str, float]:
    """Change in each rate from ``before`` to ``after`` (e.g. SFT checkpoint -> RFT checkpoint)."""
    return {k: round(after["rates"][k] - before["rates"].get(k, 0.0), 4) for k in after["rates"]}
