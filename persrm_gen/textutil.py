"""Small text helpers shared by the stages: sentences, words, trimming, seeded choices."""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from functools import lru_cache

# --------------------------------------------------------------- words and sentences
# Every word and sentence pattern of the package lives here, named for what it counts. They
# are not one pattern because they answer different questions, and each one's answers are
# part of a built dataset (or of a trained row): merging two would change those bytes.
#
# Words, four ways:
#   str.split()  (word_count, head_words, cap_words): whitespace-separated, punctuation kept
#       attached; the unit of every user-facing word cap (--max-sample-words and the like).
#   STYLE_WORD: letters and digits of any script, with apostrophe-joined parts kept together
#       ("don't", "l'homme" are one word), because contractions and the type-token ratio are
#       style features; underscores split.
#   MINHASH_TOKEN: letters and digits of any script, split at apostrophes too ("don't" ->
#       "don", "t"): the shingle unit of near-duplicate and leak checks, where a contraction
#       must overlap with its expanded form.
#   ASCII_WORD: an ASCII-letter run standing alone as a \w word ("café", "a_b", "x2" hold
#       none): the unit of the rule-based word swaps, whose synonym tables are English ASCII.
#
# Sentences, three ways:
#   SENTENCE_BREAK (sentences, cap_words, edits): . ! ? then closing quotes/brackets, space,
#       and a capital or digit next: "e.g. the" is not a break; the punctuation stays with
#       its sentence, so joining the parts rebuilds the text.
#   STYLE_SENTENCE_SPLIT (style features): any space after . ! ? (whatever follows) or a
#       blank line: sentence length is measured on what the author wrote, lower case too.
#   SENTENCE_END_ANY_SCRIPT / WORD_END (trainers' fitting): where a trimmed writing sample
#       may end, ellipses and CJK full stops included, matched at the end of the sentence
#       so the cut keeps its punctuation.
# FINISHED_END: the text looks finished, i.e. ends a sentence (. ! ? and any closing quotes or
#   brackets): one pattern for the candidates' clean-end trim (``generator.form.ends_clean``)
#   and the blind audit's ``clean_end`` feature, so what the trim fixes is what the audit measures.
FINISHED_END = re.compile(r"[.!?][\"'”’)\]]*\s*$")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
STYLE_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n\s*\n")
SENTENCE_END_ANY_SCRIPT = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*(?=\s|$)")
WORD_END = re.compile(r"\S(?=\s|$)")
STYLE_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
MINHASH_TOKEN = re.compile(r"[^\W_]+")
ASCII_WORD = re.compile(r"\b[A-Za-z]+\b")


def sentences(text: str) -> list[str]:
    """Split prose into sentences (a regex is enough for choosing openings and trimming)."""
    text = text.strip()
    if not text:
        return []
    parts, start = [], 0
    for m in SENTENCE_BREAK.finditer(text):
        parts.append(text[start:m.start() + len(m.group(0).rstrip())].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def word_count(text: str) -> int:
    return len(text.split())


_NON_SPACE = re.compile(r"\S+")


def head_words(text: str, n: int) -> str:
    """``text`` up to and including its ``n``-th word (whitespace-separated, as in
    ``word_count``), formatting kept: a bound on what later steps read of a huge sample."""
    end = 0
    for end_match, _ in zip(_NON_SPACE.finditer(text), range(n)):
        end = end_match.end()
    return text[:end]


def cap_words(text: str, max_words: int) -> str:
    """Whole sentences up to ``max_words``; a first sentence longer than that (text with no
    sentence punctuation) is cut after ``max_words`` words, so no sample is unbounded."""
    # Only the first max_words + 1 words can matter: a sentence reaching past them never fits.
    sents = sentences(head_words(text, max_words + 1))
    out: list[str] = []
    for s in sents:
        if out and word_count(" ".join(out + [s])) > max_words:
            break
        out.append(s)
    if out and word_count(out[0]) > max_words:
        return head_words(out[0], max_words)
    return " ".join(out)


def trim_to_sentence(text: str, min_chars: int = 15) -> str:
    """Cut a generation after its last complete sentence, so negatives are not told apart
    from real text merely by stopping mid-sentence."""
    text = text.strip()
    last = max(text.rfind(". "), text.rfind("! "), text.rfind("? "), text.rfind(".\n"))
    if text.endswith((".", "!", "?", '."', ".)")):
        return text
    if last >= min_chars:
        return text[: last + 1].strip()
    return text


def rng_for(seed: int, *parts: object) -> random.Random:
    """A Random seeded by the run's seed and a purpose, stable across runs and orderings."""
    key = ":".join([str(seed), *map(str, parts)])
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def stable_id(*parts: object, n: int = 16) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:n]


# --------------------------------------------------------------- sameness
def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


@lru_cache(maxsize=4096)  # a pair's texts are normalized by the row check and again by the duplicate checks
def normalized(text: str) -> str:
    """Casefold, collapse whitespace, strip punctuation (and spaces) at both ends: the
    validators' "same text" (identical pairs, exact duplicates), here so that a rule-based
    rewrite can tell it changed nothing the validators would see."""
    t = " ".join(text.casefold().split())
    if t[:1].isalnum() and t[-1:].isalnum():  # fast path: nothing to strip
        return t
    start, end = 0, len(t)
    while start < end and (_is_punct(t[start]) or t[start].isspace()):
        start += 1
    while end > start and (_is_punct(t[end - 1]) or t[end - 1].isspace()):
        end -= 1
    return t[start:end]
