"""Negatives in the positive's form: its length, its paragraphing and the way it ends.

A pair should differ in style, not in form. A judge that sees only the two responses and
picks the longer one, or the one that does not stop mid-sentence, or the one laid out in
paragraphs, learns a shortcut, not the author (issue 13). So every negative is brought to
the chosen text's form before it becomes a pair:

- length: within ``TOLERANCE`` (±15%) of the chosen text's words, cut only where a
  sentence ends, at the end nearest the chosen text's length; a text that cannot be cut into
  that window (too short, or no sentence end inside it) is refused with :class:`FormMismatch`
  (``length_mismatch``), which the candidates stage re-samples on API backends and otherwise
  drops and counts. The nearest end is not as often shorter as longer (a model that stops
  early gives shorter texts), so a caller may ask for a ``side`` of the chosen text's length
  (:func:`sides` says which ones a text can reach): the candidates stage balances the sides
  of the negatives that are whole texts of their own (``generator.candidates.LENGTH_SIDES``);
- ending: when the chosen text ends a sentence, so does the negative; when it stops
  without sentence punctuation (a list, a title), the negative's final stop is dropped too;
- layout: the negative's sentences are laid out in as many paragraphs (or lines) as the
  chosen text has, in the same proportions; a strategy whose axis is the layout
  (``axis-structure``) keeps its own.

Words are counted as the style features count them (``style.n_words``): a bullet or a
dash is not a word, so a bulleted list is not "longer" than the prose it came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from persrm_gen.generator.parsing import UnparseableOutput
from persrm_gen.style import n_words, words_of
from persrm_gen.textutil import FINISHED_END, PARAGRAPH_BREAK, sentences

TOLERANCE = 0.15  # a negative has within ±15% of the chosen text's words
TOKENS_PER_WORD = 1.5  # generous for English with current tokenizers: the budget must reach the window
TOKEN_SLACK = 16  # room for a sentence end past the window's top, cut off again by ``fit``
LAYOUT_AXIS = "axis-structure"  # the one strategy whose point is the layout

# Where a sentence ends: . ! ? and any closing quotes or brackets, before a space or the end.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s|$)")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s", re.MULTILINE)


class FormMismatch(UnparseableOutput):
    """A candidate that cannot be brought to the chosen text's length at a sentence end."""

    reason = "length_mismatch"


def ends_clean(text: str) -> bool:
    """True when the text ends a sentence (not cut off mid-sentence)."""
    return bool(FINISHED_END.search(text))


def bounds(words: int) -> tuple[int, int]:
    """The word window a negative of a ``words``-word chosen text must land in."""
    return math.ceil(words * (1 - TOLERANCE)), max(1, math.floor(words * (1 + TOLERANCE)))


def token_budget(words: int, cap: int) -> int:
    """``max_tokens`` for a generation meant to land in ``bounds(words)``: enough tokens to
    pass the window's top (``fit`` cuts back to a sentence end), at least 48, but never
    above ``cap`` (--max-new-tokens): the cap wins over the floor."""
    return min(cap, max(48, math.ceil(bounds(words)[1] * TOKENS_PER_WORD) + TOKEN_SLACK))


@dataclass(frozen=True)
class Form:
    """What a negative must share with the chosen text."""

    words: int
    clean_end: bool
    blocks: tuple[int, ...]  # sentences per paragraph (or per line), in order
    separator: str  # between blocks: "\n\n" (paragraphs) or "\n" (lines)
    listed: bool  # laid out as a list: its layout is left to the negative's own

    @classmethod
    def of(cls, text: str) -> Form:
        text = text.strip()
        paragraphs = [p for p in PARAGRAPH_BREAK.split(text) if p.strip()]
        if len(paragraphs) > 1:
            blocks, sep = paragraphs, "\n\n"
        else:
            blocks, sep = [ln for ln in text.split("\n") if ln.strip()] or [text], "\n"
        return cls(words=n_words(text), clean_end=ends_clean(text),
                   blocks=tuple(max(1, len(sentences(b))) for b in blocks), separator=sep,
                   listed=len(_LIST_LINE.findall(text)) >= 2)


def fits(text: str, form: Form) -> bool:
    """True when ``fit`` can bring ``text`` to ``form``."""
    try:
        fit(text, form, layout=False)
    except FormMismatch:
        return False
    return True


LONGER, SHORTER = "longer", "shorter"  # the sides of the chosen text's length a negative may take


def fit(text: str, form: Form, *, layout: bool = True, side: str | None = None) -> str:
    """``text`` brought to ``form`` (length, ending, and with ``layout`` its paragraphing);
    with ``side`` (LONGER or SHORTER) at the end nearest the chosen text's length on that
    side of it when the text has one in the window (else as without).

    Raises :class:`FormMismatch` when no sentence end puts it inside the length window.
    """
    text = text.strip()
    lo, hi = bounds(form.words)
    if side is not None:
        on_side = [(abs(w - form.words), end) for w, end in _ends(text, form) if _on(side, w, form.words)]
        if on_side:
            text = text[:min(on_side)[1]].rstrip()
    if n_words(text) > hi or (form.clean_end and not ends_clean(text)):
        text = _cut(text, lo, hi, form.words)
    if n_words(text) < lo:
        raise FormMismatch(f"{n_words(text)} words, the chosen text has {form.words} (±{TOLERANCE:.0%})")
    if not form.clean_end:
        text = re.sub(r"[.!?]+(?=[\"'”’)\]]*$)", "", text).rstrip()
    if layout and not form.listed:
        text = lay_out(text, form)
    return text


def sides(text: str, form: Form) -> frozenset[str]:
    """The sides of the chosen text's length (LONGER, SHORTER) that ``fit`` can bring
    ``text`` to; a cut of exactly its length is on neither."""
    return frozenset(side for side in (LONGER, SHORTER)
                     if any(_on(side, w, form.words) for w, _ in _ends(text.strip(), form)))


def _on(side: str, words: int, goal: int) -> bool:
    return words > goal if side == LONGER else words < goal


def _ends(text: str, form: Form) -> list[tuple[int, int]]:
    """(words, offset) of every place ``text`` may end inside the length window: its sentence
    ends, and its own end when ``form`` allows that ending."""
    lo, hi = bounds(form.words)
    out, words, start = [], 0, 0
    for m in _SENTENCE_END.finditer(text):
        words += n_words(text[start:m.end()])
        start = m.end()
        if words > hi:
            return out
        if words >= lo:
            out.append((words, m.end()))
    total = words + n_words(text[start:])
    if start < len(text) and lo <= total <= hi and not form.clean_end:
        out.append((total, len(text)))
    return out


def cap_length(text: str, words: int) -> str:
    """``text`` cut at its last sentence end within ``bounds(words)``'s top, when it is longer
    (a generated positive: its negatives are brought to whatever length it has)."""
    hi = bounds(words)[1]
    if n_words(text) <= hi:
        return text
    try:
        return _cut(text, 1, hi, words)
    except FormMismatch:
        return text


def _cut(text: str, lo: int, hi: int, goal: int) -> str:
    """The prefix ending a sentence with between ``lo`` and ``hi`` words, as near ``goal`` as
    any: the nearest, not the longest, so that negatives are as often shorter as longer."""
    best, best_gap, words, start = None, None, 0, 0
    for m in _SENTENCE_END.finditer(text):
        # sentence ends never split a word; words_of, not the memoised n_words: a sentence
        # is counted once, and caching each one would only push whole texts out of its cache
        words += len(words_of(text[start:m.end()]))
        start = m.end()
        if words > hi:
            break
        if words >= lo and (best_gap is None or abs(words - goal) < best_gap):
            best, best_gap = m.end(), abs(words - goal)
    if best is None:
        raise FormMismatch(f"no sentence end between {lo} and {hi} words")
    return text[:best].rstrip()


def lay_out(text: str, form: Form) -> str:
    """The text's sentences in as many blocks as the chosen text has, in its proportions."""
    flat = re.sub(r"\s*\n\s*", " ", text.strip())
    if len(form.blocks) == 1:
        return flat
    sents = sentences(flat)
    if len(sents) < len(form.blocks):
        return form.separator.join(sents)
    total = sum(form.blocks)
    # block i ends after round(share of sentences up to and including block i) sentences
    ends, seen = [], 0
    for i, b in enumerate(form.blocks):
        seen += b
        lowest = (ends[-1] if ends else 0) + 1
        highest = len(sents) - (len(form.blocks) - 1 - i)
        ends.append(min(highest, max(lowest, round(seen / total * len(sents)))))
    out, start = [], 0
    for end in ends:
        out.append(" ".join(sents[start:end]))
        start = end
    return form.separator.join(out)
