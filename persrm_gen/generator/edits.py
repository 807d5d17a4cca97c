"""Rule-based rewrites for backends that cannot follow instructions (the embedded base model).

``minimal_edit`` swaps 3-4 words for synonyms and touches nothing else (PersRM-R1's
near-duplicate negative). ``axis_rewrite`` moves a real text along one stylistic axis
(formality, length, punctuation, vocabulary, structure) while keeping its content, so
the pair differs in style only. Both are deterministic given the Random they receive.
"""

from __future__ import annotations

import random
import re

from persrm_gen.textutil import ASCII_WORD, sentences

# Common words with a near-synonym each. Direction does not matter for minimal edits.
_SYN_PAIRS = """
big:large small:little fast:quick begin:start end:finish help:assist show:demonstrate
use:employ need:require get:obtain make:create buy:purchase try:attempt want:wish
about:regarding enough:sufficient often:frequently maybe:perhaps also:additionally
but:however so:therefore hard:difficult easy:simple clear:obvious main:primary
change:modify keep:retain give:provide ask:request tell:inform think:believe
idea:notion problem:issue way:method part:portion whole:entire important:significant
new:novel old:previous many:numerous some:several very:quite really:truly
right:correct wrong:incorrect good:fine bad:poor allow:permit stop:halt
find:discover choose:select answer:reply look:appear see:observe build:construct
people:individuals job:task goal:aim chance:opportunity rule:guideline usually:typically
mostly:largely quickly:rapidly simply:merely today:now fix:repair check:verify
understand:grasp suggest:propose explain:clarify happen:occur include:contain
""".split()
SYNONYMS: dict[str, str] = {}
for pair in _SYN_PAIRS:
    a, b = pair.split(":")
    SYNONYMS[a] = b
    SYNONYMS.setdefault(b, a)

_CONTRACTIONS = {
    "do not": "don't", "does not": "doesn't", "did not": "didn't", "is not": "isn't",
    "are not": "aren't", "was not": "wasn't", "were not": "weren't", "cannot": "can't",
    "will not": "won't", "would not": "wouldn't", "should not": "shouldn't", "it is": "it's",
    "that is": "that's", "there is": "there's", "we are": "we're", "they are": "they're",
    "I am": "I'm", "you are": "you're", "have not": "haven't", "has not": "hasn't", "let us": "let's",
}
_FORMAL = {"but": "however,", "so": "therefore", "get": "obtain", "need": "require", "also": "furthermore",
           "show": "demonstrate", "help": "assist", "about": "concerning", "enough": "sufficient"}
_INFORMAL = {v.rstrip(","): k for k, v in _FORMAL.items()}


def _match_case(src: str, new: str) -> str:
    if src.isupper() and len(src) > 1:
        return new.upper()
    if src[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _swap_words(text: str, rng: random.Random, table: dict[str, str], n: int) -> tuple[str, int]:
    """Replace ``n`` randomly chosen words found in ``table``; returns (text, replaced)."""
    spots = [m for m in ASCII_WORD.finditer(text) if m.group(0).lower() in table]
    chosen = sorted(rng.sample(spots, min(n, len(spots))), key=lambda m: m.start())
    out, last = [], 0
    for m in chosen:
        out += [text[last:m.start()], _match_case(m.group(0), table[m.group(0).lower()])]
        last = m.end()
    out.append(text[last:])
    return "".join(out), len(chosen)


def minimal_edit(text: str, rng: random.Random) -> str | None:
    """3-4 words replaced by near-synonyms, or None when the text has too few candidates."""
    n = rng.choice((3, 4))
    edited, done = _swap_words(text, rng, SYNONYMS, n)
    return edited if done >= 3 else None


def _formality(text: str, rng: random.Random) -> str:
    contracted = sum(text.count(v) for v in _CONTRACTIONS.values())
    if contracted:  # informal author text: make it formal
        for long, short in _CONTRACTIONS.items():
            text = text.replace(short, long).replace(short.capitalize(), long.capitalize())
        return _swap_words(text, rng, {k: v for k, v in _FORMAL.items()}, 99)[0]
    for long, short in _CONTRACTIONS.items():
        text = re.sub(rf"\b{long}\b", short, text)
        text = re.sub(rf"\b{long.capitalize()}\b", short.capitalize(), text)
    return _swap_words(text, rng, _INFORMAL, 99)[0]


def _length(text: str, rng: random.Random) -> str:
    """Sentence length: split long sentences at clause breaks, or merge short ones."""
    sents = sentences(text)
    mean = sum(len(s.split()) for s in sents) / max(1, len(sents))
    if mean >= 14:
        return re.sub(r"[,;:]\s+(and |but |which |so )?(\w)", lambda m: ". " + m.group(2).upper(), text)
    merged = []
    for i in range(0, len(sents), 2):
        pair = sents[i:i + 2]
        if len(pair) == 2:
            first = pair[0].rstrip(".!?")
            second = pair[1][:1].lower() + pair[1][1:]
            merged.append(f"{first}, and {second}")
        else:
            merged.append(pair[0])
    return " ".join(merged)


def _punctuation(text: str, rng: random.Random) -> str:
    marks = sum(text.count(c) for c in ",;:()-")
    if marks >= max(3, len(text) // 120):  # punctuation-rich: strip it down
        text = re.sub(r"\s*[;:]\s*", ". ", text)
        text = re.sub(r"\s*\(([^)]*)\)", r" \1", text)
        text = text.replace(" - ", " ").replace("--", " ").replace(",", "")
        return re.sub(r"\s{2,}", " ", text)
    sents = sentences(text)
    return " ".join(s[:-1] + "!" if s.endswith(".") and i % 2 == 0 else s for i, s in enumerate(sents)).replace(" and ", " -- and ")


def _vocabulary(text: str, rng: random.Random) -> str:
    n = max(5, len(ASCII_WORD.findall(text)) // 6)
    return _swap_words(text, rng, SYNONYMS, n)[0]


def _structure(text: str, rng: random.Random) -> str:
    """Prose becomes a bulleted list of its sentences; a list becomes one paragraph."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if sum(ln.lstrip().startswith(("-", "*", "1.", "2.")) for ln in lines) >= 2:
        return " ".join(re.sub(r"^\s*(?:[-*]|\d+\.)\s*", "", ln) for ln in lines)
    return "\n".join(f"- {s}" for s in sentences(text))


AXIS_REWRITES = {
    "formality": _formality,
    "length": _length,
    "punctuation": _punctuation,
    "vocabulary": _vocabulary,
    "structure": _structure,
}

# What an instruction model is asked to do for each axis (prompts/axis.j2).
AXIS_DIRECTIONS = {
    "formality": "if it is informal make it formal and stiff; if it is formal make it casual and chatty",
    "length": "if its sentences are long, break them into short ones; if they are short, join them into long ones",
    "punctuation": "if it uses much punctuation (commas, semicolons, dashes, parentheses), drop most of it; otherwise add a lot",
    "vocabulary": "replace much of its vocabulary with different word choices of the same meaning",
    "structure": "if it is prose, turn it into a bulleted list; if it is a list, turn it into one paragraph",
}


def axis_rewrite(text: str, axis: str, rng: random.Random) -> str | None:
    """The text moved along ``axis``, or None when the rewrite changed nothing."""
    out = AXIS_REWRITES[axis](text, rng).strip()
    return out if out and out != text.strip() else None
