"""Strict parsing of what generators write: continuations and instruction-model rewrites."""

from __future__ import annotations

import re

from persrm_gen.textutil import trim_to_sentence

# Base-model continuations run on into the next few-shot document; these end them.
CONTINUATION_STOPS = ("\nText ", "\n\n\n", "\n#")

_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|absolutely|here(?:'s| is| are)|below is)\b[^\n]*?(?::|\.|!)(?:\s*\n+|\s*$)",
    re.IGNORECASE,
)
_HEADER = re.compile(r"^\s*(?:#+\s*)?(?:response|rewritten text|edited text|text|answer)\s*:\s*\n?", re.IGNORECASE)
_TRAILER = re.compile(r"\n+\s*(?:i hope|let me know|note:|this (?:version|rewrite))[^\n]*$", re.IGNORECASE)


class UnparseableOutput(ValueError):
    """The model's output could not be turned into a clean candidate; retried like a fault."""


def clean_continuation(text: str) -> str:
    for stop in CONTINUATION_STOPS:
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut]
    return trim_to_sentence(text.strip())


def clean_rewrite(text: str, *, opening: str = "") -> str:
    """An instruction model's answer without preambles, headers, quotes or sign-offs.

    Raises UnparseableOutput when nothing usable is left, so the client can re-sample.
    """
    out = text.strip()
    out = _PREAMBLE.sub("", out, count=1)
    out = _HEADER.sub("", out, count=1)
    out = _TRAILER.sub("", out).strip()
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'`":
        out = out[1:-1].strip()
    if out.startswith("```"):
        out = re.sub(r"^```[a-z]*\n?|```$", "", out).strip()
    if opening and out.startswith(opening.strip()):
        out = out[len(opening.strip()):].lstrip()
    if not out or "<answer>" in out.lower():
        raise UnparseableOutput("empty or malformed rewrite")
    return out
