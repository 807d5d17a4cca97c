"""Small text helpers shared by the stages: sentences, words, trimming, seeded choices."""

from __future__ import annotations

import hashlib
import random
import re

_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """Split prose into sentences (a regex is enough for choosing openings and trimming)."""
    text = text.strip()
    if not text:
        return []
    parts, start = [], 0
    for m in _SENT_END.finditer(text):
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
