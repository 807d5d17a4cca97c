"""Regular English inflections of the synonym tables' words, so that a swap reaches "changes",
"using", "tried" and "easier" and not only the base forms (issue 13: the grammar rules of
``edits._synonym_fits`` left too few texts with the 5 swap spots a vocabulary rewrite needs).

Only what English spells by rule: -s/-es, -ed, -ing, -er/-est, with the final consonant
doubled for the few words that double it ("stopped", "occurring", "bigger") and a final "e"
or "y" handled ("using", "tried"). A word whose form is irregular ("began", "built", "chose")
has no form here (None): a swap there would misspell it ("begined"), so the caller takes such
forms from an explicit table or not at all.
"""

from __future__ import annotations

import re

# Words whose final consonant doubles before -ed, -ing, -er, -est (a stressed final syllable).
_DOUBLES = frozenset("stop occur permit begin big".split())
# Verbs whose past or past participle is no -ed form ("got", "made", "shown", "seen").
_IRREGULAR_PAST = frozenset("begin get make buy keep give tell think find choose build understand show see".split())
_SIBILANT = re.compile(r"(?:s|x|z|ch|sh)$")
_CONSONANT_Y = re.compile(r"[^aeiou]y$")

KINDS = ("s", "ed", "ing", "er", "est")


def inflect(word: str, kind: str) -> str | None:
    """``word`` (lower case) with the regular ending ``kind`` (one of KINDS), or None when
    English forms it irregularly (only the past is: "began", "found")."""
    if kind == "s":
        if _SIBILANT.search(word):
            return word + "es"
        return word[:-1] + "ies" if _CONSONANT_Y.search(word) else word + "s"
    if kind == "ed" and word in _IRREGULAR_PAST:
        return None
    ending = {"ed": "ed", "ing": "ing", "er": "er", "est": "est"}[kind]
    if word in _DOUBLES:
        return word + word[-1] + ending
    if kind == "ing":
        return word[:-1] + ending if word.endswith("e") and not word.endswith(("ee", "ye", "oe")) else word + ending
    if _CONSONANT_Y.search(word):
        return word[:-1] + "i" + ending
    return word + ending[1:] if word.endswith("e") else word + ending
