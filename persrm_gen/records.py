"""Typed records that flow one way through the build stages."""

from __future__ import annotations

from dataclasses import dataclass, field

# Negative strategies a user can choose with --negatives. "axes" expands to one
# strategy per axis ("axis-formality", ...), each recorded on its pair.
STRATEGIES = ("mimic", "randomize", "minimal-edit", "other-author", "axes")
AXES = ("formality", "length", "punctuation", "vocabulary", "structure")
# --positive (BuildOptions.positive): the chosen text is the author's real continuation, a
# style-matched generation, or (the default) either, a seeded MIXED_SHARE of the targets
# generated. Mixed by default because the context-blind audit (benchmarks/README.md
# "Quality") reads "the human text wins" off real-vs-generated pairs: mimic and randomize
# 0.85-0.88 under real, 0.51 and 0.30 under mixed 0.8 (227 pairs, three corpora), at about
# 28 % more generations on the example corpus (105 vs 82).
MIXED_SHARE = 0.8
# Which side of a pair is real text (the author's, or another author's): with --positive
# mixed a generated positive faces generated negatives ("neither").
REAL_SIDES = ("chosen", "rejected", "both", "neither")


@dataclass(frozen=True)
class Task:
    """One target sample of one author: what the reward model is asked about."""

    id: str  # stable: derived from author and sample ids
    author_id: str
    sample_id: str
    genre: str
    split: str
    query: str  # the writing task: the sample's prompt, or its opening to continue
    target: str  # the author's real response to the query
    context: tuple[str, ...]  # K few-shot samples of the same author, never the target
    query_is_prompt: bool = False  # True when the sample carried its own prompt
    opening: str = ""  # the opening the target continues ("" when the sample had a prompt)


@dataclass(frozen=True)
class Candidate:
    task_id: str
    text: str
    source: str  # "author" | "generated" | "other-author"
    strategy: str  # "real", "style-matched", "mimic", "randomize", "minimal-edit", "other-author", "axis-<name>"


@dataclass
class Pair:
    """Canonical row of the ``pairs`` config (see ../shared/design.md)."""

    id: str
    author_id: str
    genre: str
    query: str
    context: list[str]
    chosen: str
    rejected: str
    chosen_source: str
    rejected_source: str
    response_a: str
    response_b: str
    label: str  # "A" | "B"
    rationale: str  # full trace: <think>...</think><answer>X</answer>
    style_margin: float
    split: str
    # provenance
    strategy: str = ""
    chosen_strategy: str = "real"
    real_side: str = "chosen"  # which response is real (human) text: REAL_SIDES
    sample_id: str = ""
    rationale_source: str = "evidence"  # "evidence" (measured) | "llm"
    backend: str = ""
    model: str = ""
    meta: dict = field(default_factory=dict)
