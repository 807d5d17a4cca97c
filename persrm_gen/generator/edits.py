"""Rule-based rewrites for backends that cannot follow instructions (the embedded base model).

``minimal_edit`` swaps 3-4 words for synonyms and touches nothing else (PersRM-R1's
near-duplicate negative), only where the sentence stays grammatical (:func:`_synonym_fits`:
"the need for" is no "the require for"), inflected forms too ("it changes the" -> "it
modifies the", but "the changes" stays; inflect.py spells them). ``axis_rewrite`` moves a
real text along one stylistic axis (formality, length, punctuation, vocabulary, structure)
while keeping its content, so the pair differs in style only. Both are deterministic given
the Random they receive.

A rewrite that always moves a feature the same way (fewer commas, longer words) is a cue a
judge reads without the author ("the response with more commas is the author's"), so where
the direction is free it is a seeded coin: the punctuation axis strips commas or adds them
(:func:`_punctuation`), length splits or joins sentences (:func:`_length`), formality goes
formal or casual (:func:`_formality`), a minimal edit balances its change in word length
(:func:`_balanced_spots`). A text that could move only one way gets no rewrite there.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

from persrm_gen.generator.inflect import inflect
from persrm_gen.style import n_words, words_of
from persrm_gen.textutil import ASCII_WORD, PARAGRAPH_BREAK, normalized, sentences

# Common words with a near-synonym each, both ways, where :func:`_synonym_fits` allows (_WHERE).
# No ask:request, look:appear, way:method: "ask the user" is no "request the user", "look at"
# no "appear at", "by the way" no "by the method" (and "method" is a term in technical text).
_SYN_PAIRS = """
big:large small:little fast:quick begin:start end:finish help:assist use:employ need:require
get:obtain make:create buy:purchase try:attempt want:wish enough:sufficient maybe:perhaps
easy:simple clear:obvious main:primary change:modify keep:retain give:provide
tell:inform think:believe idea:notion problem:issue part:portion whole:entire
important:significant new:novel old:previous some:several very:quite really:truly
right:correct wrong:incorrect good:fine bad:poor allow:permit stop:halt find:discover
choose:select answer:reply build:construct job:task goal:aim chance:opportunity
rule:guideline usually:typically mostly:largely quickly:rapidly simply:merely today:now
fix:repair check:verify understand:grasp suggest:propose explain:clarify happen:occur
include:contain often:frequently especially:particularly almost:nearly completely:entirely
useful:helpful contains:includes allows:permits provides:offers many:numerous hard:difficult
show:demonstrate seem:appear seems:appears also:additionally wants:wishes problems:issues
specific:particular used:employed countries:nations
""".split()
# One way only, to a shorter (or as long) word. Texts hold the short side of most pairs
# above, so swaps lengthened the words nearly every time, and a minimal edit can balance its
# change in characters (_balanced_spots) only when the text also holds words to shorten.
# The short side of these is common ("but", "about", "so"): both ways, they would lengthen
# again. No however:but: a swap keeps the punctuation, and "However, the plan" became "But,
# the plan". _WHERE keeps the commonest short words where they stand ("new", "some", "make",
# "now", "give"), so the balance tipped the other way (minimal edits with longer words: 0.58
# of the PEPs' moved ones, 0.69 of the speeches', 0.61 of the example corpus's before; 0.26
# of the example corpus's with _WHERE alone, "the longer-worded response is the author's"):
# also:additionally, show:demonstrate and many:numerous are both ways again, where _WHERE
# allows, and used:employed (passive only) with a few more both ways (0.51, 0.46, 0.38 now).
_SHORTER_WAYS = """
because:since currently:now actually:really receive:get moreover:also furthermore:also
therefore:thus regarding:about difficult:hard individuals:people observe:see necessary:needed
different:distinct possible:feasible within:inside instead:rather approximately:about
additional:extra particular:specific existing:current purpose:aim children:kids
remember:recall responsibility:duty country:nation although:though probably:likely
primarily:mainly extremely:very obviously:clearly required:needed requires:needs various:several
""".split()
SYNONYMS: dict[str, str] = {}
for pair in _SYN_PAIRS:
    a, b = pair.split(":")
    SYNONYMS[a] = b
    SYNONYMS.setdefault(b, a)
for pair in _SHORTER_WAYS:
    a, b = pair.split(":")
    SYNONYMS.setdefault(a, b)


class _Where(NamedTuple):
    """Where a word may take its synonym: the word before it (``context``, and none of
    ``not_after``) and the word after it (none of ``not_before``; one of ``only_before`` when
    given). "." stands for no word (a clause end or a mark), "*ing" for a word in -ing."""

    context: str | None = None
    not_after: frozenset[str] = frozenset()
    not_before: frozenset[str] = frozenset()
    only_before: frozenset[str] | None = None


def _where(context=None, not_after="", not_before="", only_before=None) -> _Where:
    return _Where(context, frozenset(not_after.split()), frozenset(not_before.split()),
                  None if only_before is None else frozenset(only_before.split()))


# The contexts (the word before, over adverbs like "not", "also"): "verb" after "to", a modal
# or a subject pronoun ("we need", "to use"), or at a clause start before an object ("Use the
# ..."), so that a noun twin ("the need for", "a big change", "the use of") keeps its word;
# "det" after a determiner, for a noun or adjective whose twin is nothing else ("the aim is",
# not "we aim to"); "adj" after a determiner, a form of "be" or an adverb of degree ("the right
# thing", "is right", "too big"; not "right now", "went down big"); "pred" as "adj" but for a
# determiner ("is significant", not "a significant amount", whose twin means another thing);
# "start" at a clause start ("Instead, ..."); "never": no place where the twin reads right often
# enough. A word not in _WHERE may take its twin anywhere in running prose. Inflected forms
# have contexts of their own (_FORM_CONTEXT, below: "3sg", "past", "active", "ing", "plural").
_NEVER = _where("never")
_OBJ = "the a an this that these those its their our your his her my it them any"  # an object follows
_ADVERB_WORDS = "not also just only still never always often really then now first simply actually usually even already"
_AUX = "is are was were have has had will would can could do did may might must should"
_DETERMINERS = frozenset("a an the this that these those its their our your his her my another any each every no one some".split())
_BE = frozenset("is are was were be been being isn't aren't wasn't weren't it's that's seems seem not".split())
_INTENSIFIERS = frozenset("very quite really so too more most less least pretty fairly rather extremely".split())
_VERB_BEFORE = frozenset("""to will would can could may might must shall should do does did don't doesn't didn't
can't cannot won't wouldn't shouldn't couldn't mustn't i we you they who""".split())
_OBJECTS = frozenset(_OBJ.split()) | {"all", "each"}
_ADVERBS = frozenset(_ADVERB_WORDS.split())
_WHERE: dict[str, _Where] = {
    # A noun as often as a verb, the twin a verb only ("the use of", "a big change", "at the start",
    # "with the help of"), and a verb whose twin wants what the word had not ("need to create" is
    # no "require to create", "help make" no "assist make", "will not change." no "... modify.",
    # "to end users" no "to finish users", "stop using" no "halt using").
    "use": _where("verb"), "need": _where("verb", not_before="to"), "help": _where("verb", only_before="with in"),
    "change": _where("verb", only_before=_OBJ), "end": _where("verb", only_before=_OBJ),
    "finish": _where("verb", only_before=_OBJ), "start": _where("verb", not_before="out over off up"), "try": _where("verb"),
    "attempt": _where("verb"), "stop": _where("verb", not_before="*ing"), "fix": _where("verb"),
    "build": _where("verb", not_before="on upon against up from with out"), "construct": _where("verb"),
    "check": _where("verb", not_before="for out in on up off into with ."), "grasp": _where("verb"),
    "purchase": _where("verb"), "permit": _where("verb"),
    # A verb or a compound's first half as often as a noun, the twin a noun only ("we aim to",
    # "issue a warning", "answer the question", "by chance", "in part", "on purpose").
    "aim": _where("det"), "issue": _where("det"), "answer": _where("det"), "reply": _where("det"),
    "purpose": _where("det"), "chance": _where("det", not_before="of"),
    "part": _where("det", not_after="most"), "whole": _where("det", not_before="of ."),
    # Adjectives that are also adverbs or nouns, or mean another thing elsewhere ("right now",
    # "the right to", "went wrong", "runs fast", "went down big", "good at", "years old", "good
    # enough" no "good sufficient", "significant time" no "important time", "a hard link").
    "right": _where("adj", not_before="to of now away here there hand side . ,"), "correct": _where("adj"),
    "wrong": _where("adj", not_before=". ,"), "good": _where("adj", not_before="at for deal news job enough of as ."),
    "fine": _where("adj"), "bad": _where("adj"), "fast": _where("adj"), "big": _where("adj", not_before="deal"),
    "clear": _where("adj", not_before="of up out"), "enough": _where("adj"), "old": _where("det", not_before="."),
    "previous": _where("det", not_before="."), "small": _where("det"), "hard": _where("pred"),
    "significant": _where("pred"), "existing": _where(not_before="in on at as for with only and or ."),
    # Verbs whose twin takes another complement ("want a" no "wish a", "think about" no "believe
    # about", "find out", "get better", "happen to be", "propose to add", "require notifying").
    "want": _where(only_before="to"), "wish": _where(only_before="to"), "wants": _where(only_before="to"),
    "wishes": _where(only_before="to"), "believe": _where(not_before="in"), "inform": _where(not_before="about of"),
    "think": _where(not_before="about of through twice ahead back hard long carefully up over again big out differently"),
    "find": _where(only_before="that a an the some any"), "get": _where(only_before="a an the this that these those its their our your his her my some any more"),
    "happen": _where(not_before="to"), "occur": _where(not_before="to"), "propose": _where(not_before="to"),
    "choose": _where(not_before="to whether between"), "require": _where(not_before="that *ing"),
    "allow": _where(not_before="for"), "allows": _where(not_before="for"), "provides": _where(not_before="for"),
    "required": _where(not_before="to that *ing"), "requires": _where(not_before="that *ing"),  # "is required to sign"
    "used": _where("pred"), "employed": _where("pred"),  # passive only: "we used to", "employed people"
    "show": _where(only_before="that"), "seem": _where(not_before="like"), "seems": _where(not_before="like"),
    # Function words and adverbs in idioms ("because of", "instead of", "in particular", "not
    # really", "a very", "quite a", "how many", "many are", "also known as", "but also").
    "because": _where(not_after="just not only partly mainly simply largely precisely mostly is was", not_before="of"),
    "instead": _where("start", only_before=","), "today": _where("start"), "particular": _where(not_after="in"),
    "very": _where(not_after="a an the this that its not", not_before="much many few little first last same best end well least most"),
    "quite": _where(not_after="not", not_before="a an the some so right simply possibly frankly as"),
    "really": _where(not_after="not"), "simply": _where(not_after="quite put very more", not_before="put not"),
    "nearly": _where(not_after="not"), "possible": _where(only_before="to for . ,"),
    "important": _where(not_before="to that"), "responsibility": _where("det", not_before="for"),
    "idea": _where(not_after="no good great bad better best"), "issues": _where(not_before="a an the"),
    "specific": _where(not_after="more less very most", not_before="to"), "various": _where(not_after=_OBJ),
    "many": _where(not_after="how so too as very a great good", not_before=f"of more than to who . , {_AUX} {_ADVERB_WORDS}"),
    "also": _where(not_after="but", not_before="known called . ,"),
    # No place where the twin reads right often enough: "make sure", "give me", "keep going",
    # "tell us what", "some time", "a new file" (no "a novel file"), "a little easier", "the rule
    # of law", "right now" (no "right today"), "a poor county", "appear in" (no "seem in").
    "make": _NEVER, "give": _NEVER, "keep": _NEVER, "tell": _NEVER, "some": _NEVER, "new": _NEVER,
    "little": _NEVER, "rule": _NEVER, "now": _NEVER, "poor": _NEVER, "appear": _NEVER, "appears": _NEVER,
    "job": _NEVER, "permits": _NEVER, "offers": _NEVER,  # "lose your job" (no "task"), "job offers"
}  # fmt: skip

# -- inflected forms ("changes", "using", "tried", "easier"): the same pairs, the same rules ---------
# Only the base forms above would leave most texts too few swap spots. A pair inflects when
# both sides are the part of speech below and both forms are regular (inflect.py); an
# irregular form swaps only through _IRREGULAR. A form keeps its base's _WHERE rule (what may
# stand before and after it), but where the base had a context (a noun/verb twin: "the
# change", "a fix") the form's context is its own (_FORM_CONTEXT: "it changes the", "was
# fixed", "by using the"), and an -ing form always has one ("critical thinking", "the
# beginning", "the building" are nouns). A form in _WHERE already keeps its own rule.
_VERBS = frozenset("""begin start end finish help assist use employ need require get obtain make create buy purchase
try attempt want wish change modify keep retain give provide tell inform think believe allow permit stop halt
find discover choose select build construct fix repair check verify understand grasp suggest propose explain
clarify happen occur include contain show demonstrate seem appear receive remember recall observe see""".split())
_NOUNS = frozenset("idea notion problem issue part portion job task goal aim chance opportunity rule guideline "
                   "answer reply purpose responsibility duty".split())  # answer/reply: nouns only ("reply the question")
_ADJECTIVES = frozenset("big large fast quick easy simple".split())  # -er/-est on both sides ("littler", "more difficult": no)
_FORM_KINDS = {"verb": ("s", "ed", "ing"), "noun": ("s",), "adj": ("er", "est")}
# Irregular forms (source:twin:base, one way each): only where the twin fits every place the
# source stands ("began" is past only, so "started" fits it; "started" may be a participle,
# "has started", where "began" does not). No got/obtained ("I've got a question"), saw/seen.
_IRREGULAR = """
began:started:begin begun:started:begin built:constructed:build constructed:built:construct
bought:purchased:buy purchased:bought:purchase found:discovered:find discovered:found:discover
understood:grasped:understand grasped:understood:grasp thought:believed:think believed:thought:believe
chose:selected:choose chosen:selected:choose showed:demonstrated:show shown:demonstrated:show
created:made:create retained:kept:retain
""".split()
_PAST_TENSE_ONLY = frozenset("began begun chose showed".split())  # a verb wherever it stands
# The context of a form whose base needs one (_in_context): a verb's -s after a singular
# subject, its -ed after a subject, "have" or "be", its -ing after "be" or (before an object)
# a preposition or a clause start; a noun's plural after a determiner.
_FORM_CONTEXT = {("verb", "s"): "3sg", ("verb", "ed"): "past", ("verb", "ing"): "ing", ("noun", "s"): "plural"}
_FORM_RULES: dict[str, _Where] = {
    # "a thought", "the thought of": the noun; "chances are" (no "opportunities are").
    "thought": _WHERE["think"]._replace(context="past"),
    "fixed": _where("active"), "finished": _where("active", only_before=_OBJ),  # "is fixed", "we are finished"
    "chances": _where("plural", not_before="of are is"),
    "providing": _where("ing", not_before="that"), "including": _NEVER,  # "providing that", "languages, including Perl"
}


def _form_rule(base: str, pos: str, kind: str) -> _Where:
    rule = _WHERE.get(base, _Where())
    if rule.context == "never":
        return rule
    if kind in ("er", "est"):  # "bigger", "easier" are adjectives or adverbs: no noun twin to avoid
        return rule._replace(context=None)
    if rule.context is None and kind != "ing":
        return rule
    return rule._replace(context=_FORM_CONTEXT[pos, kind])


def _add_forms(a: str, b: str, both_ways: bool) -> None:
    """The inflected forms of the pair a:b in SYNONYMS and _WHERE (an entry there wins)."""
    for pos, words in (("verb", _VERBS), ("noun", _NOUNS), ("adj", _ADJECTIVES)):
        if a not in words or b not in words:
            continue
        for kind in _FORM_KINDS[pos]:
            fa, fb = inflect(a, kind), inflect(b, kind)
            if fa is None or fb is None:
                continue
            for src, dst, base in ((fa, fb, a), (fb, fa, b))[:1 + both_ways]:
                if src not in SYNONYMS:
                    SYNONYMS[src] = dst
                    _WHERE.setdefault(src, _FORM_RULES.get(src) or _form_rule(base, pos, kind))


for pair in _SYN_PAIRS:
    _add_forms(*pair.split(":"), both_ways=True)
for pair in _SHORTER_WAYS:
    _add_forms(*pair.split(":"), both_ways=False)
for entry in _IRREGULAR:  # a participle may be an adjective ("the found bug", "the created file"): "past"
    src, dst, base = entry.split(":")
    SYNONYMS.setdefault(src, dst)
    _WHERE.setdefault(src, _FORM_RULES.get(src) or _WHERE.get(base, _Where())._replace(
        context=None if src in _PAST_TENSE_ONLY else "past"))

_PREV_WORD = re.compile(r"([A-Za-z']+)[ \t]*$")
_NEXT_WORD = re.compile(r"[ \t]*([A-Za-z']+|[^\sA-Za-z']|$)")


def _word_before(text: str, end: int) -> re.Match | None:
    """The word that ends at ``end`` with only spaces between (group 1), or None: at a mark,
    a line start or the text's start there is none."""
    return _PREV_WORD.search(text, max(0, end - 40), end)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" and not word.startswith(("use", "usu", "uni", "one", "eu")) else "a"


def _synonym_fits(text: str, m: re.Match) -> bool:
    """Whether the word at ``m`` may take its synonym there and the sentence stays grammatical.

    Only a word in running prose ("big-endian", "main()", "os.path", "today's", a quoted
    "main" and a name in capitals mid-sentence are left: the swap would break a compound,
    code, a term or a name), after
    no "a"/"an" its twin would not take ("an idea" is no "an notion"), in its _WHERE context."""
    word, before, after = m.group(0).lower(), text[max(0, m.start() - 1):m.start()], text[m.end():m.end() + 2]
    if before in ("-", "_", "/", ".", "'", '"', "`", "#", "@") or after[:1] in ("-", "_", "/", "'", '"', "`", "(", "@") \
            or (after[:1] == "." and after[1:2].isalnum()):
        return False
    prev = _word_before(text, m.start())
    prev_word = prev.group(1).lower() if prev else None
    if prev and m.group(0)[:1].isupper():  # a capital mid-sentence: a name ("New York")
        return False
    if prev_word in ("a", "an") and _article(SYNONYMS[word]) != prev_word:
        return False
    rule = _WHERE.get(word)
    if rule is None:
        return True
    nxt = _NEXT_WORD.match(text, m.end()).group(1).lower()
    nxt = nxt if nxt[:1].isalpha() or nxt == "," else "."
    if prev_word in rule.not_after or nxt in rule.not_before or ("*ing" in rule.not_before and nxt.endswith("ing")):
        return False
    if rule.only_before is not None and nxt not in rule.only_before and not _passive(text, prev, rule):
        return False
    return _in_context(text, prev, rule.context, nxt)


def _in_context(text: str, prev: re.Match | None, context: str | None, nxt: str) -> bool:
    """Whether the word between ``prev`` (the word before it, or None) and ``nxt`` (the word
    after it) is in ``context`` (_WHERE)."""
    if context in (None, "never"):
        return context is None
    if context == "start":
        return prev is None or prev.group(1).lower() == "and"
    if context in _VERB_CONTEXTS:  # "we also need", "do not use"
        prev = _over_adverbs(text, prev)
    word = prev.group(1).lower() if prev else None
    if context == "verb":
        return word in _VERB_BEFORE or (word in (None, "and", "or", "then", "please") and nxt in _OBJECTS)
    if context in _VERB_CONTEXTS:
        return _form_in_context(context, word, nxt)
    if context == "plural":
        return word in _PLURAL_BEFORE
    if context == "pred":
        return word in _BE or word in _INTENSIFIERS
    return word in _DETERMINERS or (context == "adj" and (word in _BE or word in _INTENSIFIERS))


# The contexts of inflected forms (_FORM_CONTEXT): a verb's -s after a singular subject ("it
# changes", not "the changes", "so that changes are", "which changes were made"), its -ed after
# a subject, "have" or "be" (not "a fixed size"; "active": not after "be", "is fixed" meaning
# constant), its -ing after "be", or before an object or "to" after a preposition or at a
# clause start ("by using the", "Using the", "trying to"; not "critical thinking", "the
# beginning of").
_VERB_CONTEXTS = frozenset(("verb", "3sg", "past", "active", "ing"))
_SUBJECT_3SG = frozenset("he she it this which who one everyone everything someone something nobody nothing anyone anything".split())
_SUBJECTS = frozenset("i we you they he she it that which who".split())  # not "this": "this tried and true"
_HAVE = frozenset("have has had having i've we've you've they've hasn't haven't hadn't".split())
_BE_FORMS = frozenset("""am is are was were be been being isn't aren't wasn't weren't it's that's there's he's she's
they're we're you're i'm what's who's""".split())
_GERUND_BEFORE = frozenset("by for of without before after from when while about on in into and or then".split())
# Conjunctions and prepositions before which an -ing word is a verb ("by using symlinks", "when
# using Python"; "for beginning programmers", "of changing requirements" are adjectives).
_ONLY_GERUND_AFTER = frozenset("by when while without before after".split())
_NO_OBJECT = frozenset(f"of and or but up out in on at with from for into as than so {_AUX}".split())
_NOT_AFTER_3SG = frozenset(f"of {_AUX} have".split())  # "which changes were made", "so that uses of"
_PLURAL_BEFORE = _DETERMINERS | frozenset("""many several various all such other few both more most two three
four five six seven eight nine ten""".split())
# (no "this": "we made changes this year")
_DETERMINER_NEXT = frozenset("the a an these those its their our your his her my any".split())
# Words after which such a form is no verb ("the changes the", "of changes the"); "that",
# "this", "one" open no plural ("a patch that changes the", "this uses the").
_NO_VERB_AFTER = (_PLURAL_BEFORE | _GERUND_BEFORE | frozenset("at to with as than".split())) - {"and", "or", "then", "that", "this", "one"}


def _form_in_context(context: str, word: str | None, nxt: str) -> bool:
    """Whether an inflected verb form between ``word`` (the word before it over adverbs, or
    None) and ``nxt`` is in ``context`` (_FORM_CONTEXT).

    Any form between a word that opens no noun phrase and a determiner is a verb: a noun or
    an adjective of the same spelling is not followed by "the" ("a patch that changes the
    API", "the team fixed the bug", "code using the cache"; but "the changes the team made")."""
    if word is not None and word not in _NO_VERB_AFTER and nxt in _DETERMINER_NEXT:
        return True
    if context == "3sg":
        return word in _SUBJECT_3SG and nxt not in _NOT_AFTER_3SG
    if context in ("past", "active"):
        return word in _SUBJECTS or word in _HAVE or (context == "past" and word in _BE_FORMS)
    if word in _BE_FORMS or ((word is None or word in _GERUND_BEFORE) and (nxt in _OBJECTS or nxt == "to")):
        return True
    return word in _ONLY_GERUND_AFTER and nxt[:1].isalpha() and nxt not in _NO_OBJECT  # "by using symlinks"


def _over_adverbs(text: str, prev: re.Match | None) -> re.Match | None:
    """The word before, over adverbs ("we also need", "do not use", "is now changed")."""
    while prev and prev.group(1).lower() in _ADVERBS:
        prev = _word_before(text, prev.start())
    return prev


def _passive(text: str, prev: re.Match | None, rule: _Where) -> bool:
    """Whether a verb's -ed form stands after a form of "be": its object is then the subject
    ("the API is changed to", "should be helped"), so what its base wants after it
    (``only_before``: "change" an object, "help" with or in) does not hold there."""
    prev = _over_adverbs(text, prev)
    return rule.context == "past" and prev is not None and prev.group(1).lower() in _BE_FORMS


_CONTRACTIONS = {
    "do not": "don't", "does not": "doesn't", "did not": "didn't", "is not": "isn't",
    "are not": "aren't", "was not": "wasn't", "were not": "weren't", "cannot": "can't",
    "will not": "won't", "would not": "wouldn't", "should not": "shouldn't", "it is": "it's",
    "that is": "that's", "there is": "there's", "we are": "we're", "they are": "they're",
    "I am": "I'm", "you are": "you're", "have not": "haven't", "has not": "hasn't", "let us": "let's",
}
_FORMAL = {"but": "however,", "so": "therefore", "get": "obtain", "need": "require", "also": "furthermore",
           "show": "demonstrate", "help": "assist", "about": "concerning", "enough": "sufficient"}
# "however" has no casual twin word for word: "However, the plan" would be "But the plan",
# one comma fewer, and on a short text (65 words, 2 commas in examples/authors.jsonl) that
# alone moves the commas a full unit, the punctuation axis's feature; ", however," has no
# "but" at all (", but," reads broken), nor has "however we liked". So it stays as it is.
_INFORMAL = {v.rstrip(","): k for k, v in _FORMAL.items() if k != "but"}
# After these a formal word does not fit: "get rid of", "so far", "but not" ("however, not").
_NOT_AFTER = {"get": "rid|to|into|out|up|back|away|on|off|in|used|started",
              "so": "far|many|much|on|as|long|to|that|is|are|does|do|[,.;:!?)]", "but": "not|also|rather|only|then|instead"}
_NOT_AFTER_RE = {w: re.compile(rf"[ \t]*(?:{after})") for w, after in _NOT_AFTER.items()}
# Words that are no formal twin's verb or adverb often enough: "the need for", "help give",
# "bring about", "is also" ("is furthermore"). Their formal side still becomes them (informal).
_NOT_FORMALIZED = frozenset(("need", "help", "about"))


def _formal_fits(text: str, m: re.Match) -> bool:
    """Whether the word at ``m`` may take its formal twin (_FORMAL) there."""
    word, before = m.group(0).lower(), text[:m.start()].rstrip()
    if word in _NOT_FORMALIZED or ((rx := _NOT_AFTER_RE.get(word)) and rx.match(text, m.end())):
        return False
    if SYNONYMS.get(word) == _FORMAL[word] and not _synonym_fits(text, m):  # the same twin: "good enough"
        return False
    if word in ("also", "but", "so"):  # "However," and "Furthermore," open a sentence or follow a comma
        return before[-1:] in ("", ".", "!", "?") or (word != "also" and before.endswith(","))
    return True


def _match_case(src: str, new: str) -> str:
    if src.isupper() and len(src) > 1:
        return new.upper()
    if src[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _swap_words(text: str, rng: random.Random, table: dict[str, str], n: int,
                fits=None) -> tuple[str, int]:
    """Replace ``n`` randomly chosen words found in ``table`` (only those where ``fits(text,
    match)``, when given); returns (text, replaced)."""
    spots = [m for m in ASCII_WORD.finditer(text) if m.group(0).lower() in table and (fits is None or fits(text, m))]
    chosen = rng.sample(spots, min(n, len(spots)))
    return _replace(text, chosen, table), len(chosen)


def _replace(text: str, spots: list[re.Match], table: dict[str, str]) -> str:
    """``text`` with each word matched at ``spots`` replaced by its entry in ``table``."""
    out, last = [], 0
    for m in sorted(spots, key=lambda m: m.start()):
        out += [text[last:m.start()], _match_case(m.group(0), table[m.group(0).lower()])]
        last = m.end()
    out.append(text[last:])
    return "".join(out)


BALANCE_TRIES = 64  # seeded swap sets a minimal edit looks at for the smallest change in characters


def _balanced_spots(spots: list[re.Match], n: int, rng: random.Random) -> list[re.Match]:
    """``n`` of ``spots`` whose swaps change the text's length in characters the least.

    Random swaps made the edit's words longer nearly every time (texts hold the table's
    short side): "the shorter-worded response is the author's" was a cue a judge could read
    without the author. Among ``BALANCE_TRIES`` seeded draws the first with the smallest
    |change| is kept, a tie between longer and shorter going to a seeded side (a coin per edit)."""
    direction = rng.choice((-1, 1))

    def cost(pick: list[re.Match]) -> tuple[int, int]:
        change = sum(len(SYNONYMS[m.group(0).lower()]) - len(m.group(0)) for m in pick)
        return abs(change), int(change * direction < 0)

    best = rng.sample(spots, n)
    for _ in range(BALANCE_TRIES - 1):
        if cost(best)[0] == 0:
            break
        pick = rng.sample(spots, n)
        if cost(pick) < cost(best):
            best = pick
    return best


def _synonym_spots(text: str) -> list[re.Match]:
    """The words of ``text`` that may take their synonym (SYNONYMS) where they stand."""
    return [m for m in ASCII_WORD.finditer(text) if m.group(0).lower() in SYNONYMS and _synonym_fits(text, m)]


def minimal_edit(text: str, rng: random.Random) -> str | None:
    """3-4 words replaced by near-synonyms where the sentence stays grammatical
    (:func:`_synonym_fits`), the swap set that changes the length in characters least
    (:func:`_balanced_spots`), or None when the text has fewer than 3 candidates."""
    n = rng.choice((3, 4))
    spots = _synonym_spots(text)
    if len(spots) < 3:
        return None
    return _replace(text, _balanced_spots(spots, min(n, len(spots)), rng), SYNONYMS)


_NOT_CLAUSE_END = r"(?![ \t]*(?:[.,;:!?)\]]|$))"


# Stiff, wordier phrasings of common words (informal -> formal, lower case as matched), each
# with the pattern that finds the informal side where the swap stays grammatical: "because
# of" and "should not" have no such twin ("due to the fact that of", "ought to not"). They
# give the formal direction words to add where a text has no contraction to spell out.
_WORDY = (
    (r"\bbecause\b(?![ \t]+of\b)", "because", "due to the fact that"),
    (r"\b(?-i:should)\b(?![ \t]+not\b|n't)", "should", "ought to"),  # "Should we ...?" asks
    (r"\bso that\b", "so that", "in order that"),
)
_CASED = re.IGNORECASE


def _formal(text: str, rng: random.Random) -> str:
    """Contractions spelled out, wordy phrasings (_WORDY), formal words (_FORMAL)."""
    for long, short in _CONTRACTIONS.items():
        text = text.replace(short, long).replace(short.capitalize(), long.capitalize())
    for pattern, _, stiff in _WORDY:
        text = re.sub(pattern, lambda m, stiff=stiff: _match_case(m.group(0), stiff), text, flags=_CASED)
    return _swap_words(text, rng, _FORMAL, 99, _formal_fits)[0]


def _informal(text: str, rng: random.Random) -> str:
    """Contractions, plain phrasings ("in order to" -> "to", _WORDY backwards), plain words
    (_INFORMAL: "however" is kept, see there)."""
    for long, short in _CONTRACTIONS.items():  # never at a clause end: "as it is." is not "as it's."
        text = re.sub(rf"\b{long}\b{_NOT_CLAUSE_END}", short, text)
        text = re.sub(rf"\b{long.capitalize()}\b{_NOT_CLAUSE_END}", short.capitalize(), text)
    for _, plain, stiff in (*_WORDY, (None, "to", "in order to")):
        text = re.sub(rf"\b{stiff}\b", lambda m, plain=plain: _match_case(m.group(0), plain), text, flags=_CASED)
    return _swap_words(text, rng, _INFORMAL, 99)[0]


def _formality(text: str, rng: random.Random) -> str:
    """Formal and stiff (:func:`_formal`) or casual (:func:`_informal`), by a coin from ``rng``.

    Spelling contractions out adds a word each ("isn't" -> "is not") and making them takes
    one away, so a direction that changes the word count is taken only when the other moves
    it the opposite way (then the coin decides); else a direction that keeps the count is
    taken, and a text with neither gets no rewrite (the task takes its next axis). Why: contracting every formal text (most real text) made the negative the
    shorter response on nearly every pair ("pick the longer response" right on 0.82 of them).
    """
    ways = [out for out in ((_formal(text, rng), _informal(text, rng))) if out != text]
    moves = {_sign(n_words(out) - n_words(text)) for out in ways}
    if len(ways) < 2 or moves == {1} or moves == {-1}:  # one way: a one-sided cue
        return text if any(moves) else (ways or [text])[0]
    if moves == {0} or moves == {-1, 1}:
        return ways[rng.random() < 0.5]
    return next(out for out in ways if n_words(out) == n_words(text))  # one keeps the count, one not


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


# Where a sentence may be split so that both halves are full clauses: at a semicolon, or at a
# comma before a coordinating conjunction; never at a bare comma (lists, appositions, "However,").
_CLAUSE_BREAK_RE = re.compile(r"(?:;|,(?=\s+(?:and|but|so)\s))\s+(?:(?:and|but|so)\s+)?(?=\w)")
# A left half that opens like this is a subordinate or introductory phrase, not a full clause.
_SUBORDINATE = frozenset((
    "when", "whenever", "if", "unless", "although", "though", "because", "since", "while", "whereas", "as",
    "after", "before", "until", "once", "whether", "whatever", "whoever", "wherever", "however", "in", "on",
    "at", "for", "with", "by", "from", "to", "of", "under", "during",
))  # fmt: skip
# A right half must open with a subject: ", and then went home" must not become "Then went home."
_SUBJECT_START = frozenset((
    "i", "we", "you", "he", "she", "it", "they", "this", "that", "these", "those", "there", "the", "a", "an",
    "its", "their", "our", "my", "his", "her", "your", "some", "many", "most", "all", "each", "every", "no",
    "such", "one", "both", "neither", "either",
))  # fmt: skip
MIN_SPLIT_WORDS = 4  # each half of a split has at least this many words
MIN_JOIN_WORDS = 3  # and each sentence of a join
_ABBREVIATION_RE = re.compile(r"(?:\b(?:etc|e\.g|i\.e|vs|cf|al|Mr|Mrs|Ms|Dr|St|No)|\b[A-Z])\.$")


def _split_sentence(sent: str) -> str:
    """One sentence with each clause break that leaves two full clauses turned into a full stop."""
    out, start = [], 0
    for m in _CLAUSE_BREAK_RE.finditer(sent):
        left, right = sent[start:m.start()], sent[m.end():]
        nxt = _CLAUSE_BREAK_RE.search(right)
        right_clause = right[: nxt.start()] if nxt else right
        lw, rw = words_of(left), words_of(right_clause)
        if len(lw) < MIN_SPLIT_WORDS or len(rw) < MIN_SPLIT_WORDS:
            continue
        if lw[0].casefold() in _SUBORDINATE and "," not in left:  # "When it ran; ..." is no clause
            continue
        if "," in left and len(words_of(left.rsplit(",", 1)[1])) <= 3:  # "Linux, Windows, and the ..."
            continue
        if rw[0].casefold() not in _SUBJECT_START and not rw[0][:1].isupper():
            continue
        out += [left, ". ", right[:1].upper()]
        start = m.end() + 1
    return "".join(out) + sent[start:]


def _can_lower(word: str, text: str) -> bool:
    """A sentence-initial word that may lose its capital when two sentences are joined."""
    low = word.casefold()
    return word != "I" and word[1:] == word[1:].lower() and (
        low in _SUBJECT_START or low in _SUBORDINATE or re.search(rf"(?<![.!?]\s)\b{re.escape(low)}\b", text) is not None
    )


def _join_sentences(line: str, text: str) -> str:
    """Every second sentence boundary in a line becomes ", and" (both sentences full clauses)."""
    sents = sentences(line)
    if len(sents) < 2:
        return line
    out, i = [], 0
    while i < len(sents):
        first = sents[i]
        second = sents[i + 1] if i + 1 < len(sents) else None
        if (second and first.endswith(".") and not _ABBREVIATION_RE.search(first)
                and len(words_of(first)) >= MIN_JOIN_WORDS and len(words_of(second)) >= MIN_JOIN_WORDS and second[:1].isalpha()):
            head = second.split()[0]
            second = (head[:1].lower() + second[1:]) if _can_lower(words_of(head)[0], text) else second
            out.append(f"{first[:-1]}, and {second}")
            i += 2
        else:
            out.append(first)
            i += 1
    lead = line[: len(line) - len(line.lstrip())]
    return lead + " ".join(out)


def _length(text: str, rng: random.Random) -> str:
    """Sentence length: split sentences where two full clauses meet, or join them with ", and".

    Only the split and join points change (a full stop and a capital, or ", and"); lines and
    paragraphs stay as they are. Which way goes by a coin from ``rng``, and only a text with a
    spot to split is rewritten (nearly every text can also be joined); any other is left to
    the task's next axis (the text as it is). Why: a split at ", and"
    drops the "and" and a join adds one, and splitting every text whose sentences averaged 14
    words or more (most real text) made the negative the one with fewer words on most pairs
    ("pick the longer response" right on 0.88 of them). Joining a text that cannot be split
    instead (even with "; ", which keeps the word count) made the negative the one with longer
    sentences and fewer capitals on every such pair: a context-blind judge picked the author's
    text on 0.92 of the example corpus's length pairs (0.69 with the coin on splittable texts only).
    """
    lines = text.split("\n")
    split = "\n".join("".join(_split_sentence(s) for s in _keep_spacing(line)) for line in lines)
    if split == text:
        return text
    if rng.random() < 0.5:
        joined = "\n".join(_join_sentences(line, text) for line in lines)
        if joined != text:
            return joined
    return split


def _keep_spacing(line: str) -> list[str]:
    """The line cut after each sentence end, so that joining with "" gives it back unchanged."""
    parts, start = [], 0
    for s in sentences(line):
        i = line.index(s, start)
        parts.append(line[start:i + len(s)])
        start = i + len(s)
    parts.append(line[start:])
    return parts



# Words that open a clause (a subject): after one of these, a comma before "but" or after
# "However" sets off a full clause. Lower case only: a capital after a new comma reads as a
# run-on sentence (and "but Python" may be a list of names).
_CLAUSE_OPENERS = (
    "i", "we", "you", "he", "she", "it", "they", "this", "these", "those", "there", "the", "a", "an",
    "its", "their", "our", "my", "his", "her", "your", "one", "each", "every", "no", "people", "many",
    "most", "some", "all", "both", "such", "nobody", "nothing", "everyone", "everything",
)  # fmt: skip
_OPENER = "(?:" + "|".join(_CLAUSE_OPENERS) + "|I)"
# Sentence-initial words and phrases English sets off with a comma ("However, the ..."), when a
# subject or a subordinate clause ("Thus, if ...") follows.
_INTRODUCTORY = (
    "However", "In fact", "For example", "For instance", "Of course", "Today", "Now", "Then", "Still",
    "Also", "Thus", "Therefore", "Instead", "Otherwise", "Meanwhile", "Nevertheless", "Nonetheless",
    "Finally", "First", "Second", "Third", "Similarly", "Likewise", "Moreover", "Furthermore",
    "Additionally", "Consequently", "Hence", "Indeed", "Besides", "Clearly", "Unfortunately",
    "Fortunately", "Sometimes", "Usually", "Typically", "Generally", "Currently", "Traditionally",
    "Historically", "Ideally", "Again", "Well", "Yes", "In short", "In general", "In practice",
    "In particular", "In addition", "In other words", "In contrast", "In the end", "In theory",
    "In this case", "In that case", "In any case", "In reality", "At the same time", "On the other hand",
    "As a result", "After all", "Above all", "At first", "By contrast", "By default", "For now", "Until now",
    "In this regard", "In this way", "In the future", "At some point", "As such", "Oftentimes", "Most notably",
    "Lastly", "Further",
)  # fmt: skip
# Any other sentence-initial adverb in -ly ("Unfortunately the ..."), but for words that only
# end like one ("Only the first", "Early timings").
_LY_ADVERB = r"(?!(?:Only|Early|Family|Italy|Holy|July|Supply|Apply|Reply|Assembly|Daily|Likely|Unlikely)\b)[A-Z][a-z]{2,}ly"
_INTRO_RE = re.compile(
    rf"(?:^[ \t]*(?:[-*][ \t]+)?|(?<=[.!?])[\"')\]]*[ \t]+)({'|'.join(sorted(_INTRODUCTORY, key=len, reverse=True))}|{_LY_ADVERB})"
    rf"(?=[ \t]+(?:{_OPENER}|if|when|while|although|because|since|once|unless)\b)", re.M)
# A conjunction joining two clauses, the second opening with a subject: "hard but it is".
# "and" only before a personal pronoun ("and we"), else it mostly joins nouns ("the cat and the dog").
_JOIN_RE = re.compile(
    rf"(?<=[^\W_])[ \t]+(?:(?:but|yet|so|although|whereas|even though|because)[ \t]+(?={_OPENER}\b)"
    r"|and[ \t]+(?=(?:I|we|he|she|they)\b))")
# Words before which the conjunction is no clause join: "nothing but the", "not yet the",
# "not because the", "you and I". ("so that" never matches: "that" opens no clause here.)
_NOT_A_JOIN = frozenset((
    "nothing", "anything", "everything", "all", "none", "not", "last", "as", "even", "me", "you", "him",
    "her", "us", "them", "it", "both", "between", "and", "or", "but", "so", "just", "only", "partly",
    "mainly", "simply", "largely", "precisely", "is", "was", "be", "do", "does", "did", "doing", "done", "more",
))  # fmt: skip
# " which " opening a relative clause after a noun ("generators which do not"); not after a
# preposition ("in which") or a verb that asks ("decide which").
_WHICH_RE = re.compile(r"(?<=[^\W_])[ \t]+which[ \t]+([a-z']+)([^,.;:!?()\n]*)")
_NOT_BEFORE_WHICH = frozenset((
    "in", "of", "on", "at", "by", "for", "with", "to", "from", "into", "about", "under", "through", "upon",
    "during", "and", "or", "but", "that", "than", "all", "each", "some", "none", "both", "know", "knows",
    "knew", "decide", "decides", "determine", "determines", "choose", "chooses", "see", "tell", "ask",
    "asks", "show", "shows", "specify", "specifies", "indicate", "indicates", "select", "check", "matter",
    "wonder", "learn", "find", "say", "says", "pick", "regardless", "depending", "is", "was", "are", "were",
))  # fmt: skip
# A finite verb later in the clause is the main clause going on: "the file which holds it is
# big" must not become "the file, which holds it is big" (an aside with no closing comma).
_FINITE = frozenset("is are was were has have had will would can could may might must should does do did".split())
# The word after a relative "which": an auxiliary or an adverb. Any other word may be a noun
# ("recommend which files"), and "which" then asks, where a comma does not belong.
_AFTER_WHICH = _FINITE | frozenset((
    "doesn't", "don't", "didn't", "isn't", "aren't", "wasn't", "weren't", "can't", "won't", "wouldn't",
    "often", "also", "only", "then", "now", "still", "usually", "typically", "immediately", "already",
    "never", "always", "just", "currently", "generally", "normally",
))  # fmt: skip


# A parenthetical adverbial inside a sentence, set off by a pair of commas ("growth and, at
# the same time, help"), when no mark is next to it and it does not go on ("as a result of").
_ASIDE_RE = re.compile(
    r"(?<=[^\W_])([ \t]+)(at the same time|in practice|in fact|of course|for example|for instance|in other words"
    r"|after all|as a result|on the other hand|in turn|therefore|moreover|furthermore|nevertheless|indeed)"
    r"(?=[ \t]+(?!(?:of|as|that|to|than)\b)[a-z])")
# " and " joining two full clauses: a finite verb on both sides ("I must state it and the
# committee will ..."), the second opening with a subject.
_AND_CLAUSE_RE = re.compile(rf"(?<=[^\W_])[ \t]+and[ \t]+(?={_OPENER}\b)")


# A sentence that opens with a subordinate clause ("Once they have acquired a domain they
# should ..."): the comma goes where the main clause starts, a personal pronoun followed by a
# finite verb. The opening clause must have a verb of its own, and the main clause no second
# one ("If the value it has is None" has no main clause at "it").
_LEADING_CLAUSE_RE = re.compile(
    r"(?:^[ \t]*|(?<=[.!?])[\"')\]]*[ \t]+)(?:If|When|Whenever|Because|Once|Since|Although|Though|While|After"
    r"|Before|Unless|Until)\b[^,;:.!?()\n]*", re.M)
_MAIN_CLAUSE_RE = re.compile(
    r"(?<=[^\W_])(?=[ \t]+(?:I|we|you|he|she|it|they|there)[ \t]+"
    r"(?:is|are|was|were|has|have|had|will|would|can|could|may|might|must|should|does|do|did)(?:n't)?\b)")
_ENDS_CLAUSE = frozenset("that which who whom whose if when because since although though while unless whether".split())


def _leading_clause_spots(text: str) -> list[tuple[int, int, str]]:
    spots = []
    for m in _LEADING_CLAUSE_RE.finditer(text):
        for b in _MAIN_CLAUSE_RE.finditer(m.group(0)):
            left = words_of(m.group(0)[:b.end()])
            if len(left) < MIN_SPLIT_WORDS:  # "Once they have ...": the subordinate clause's own subject
                continue
            right = words_of(m.group(0)[b.end():])[2:]
            cut = next((i for i, w in enumerate(right) if w.casefold() in _ENDS_CLAUSE), len(right))
            finite = sum(w.casefold() in _FINITE for w in left[1:])  # a second: the main clause began before
            if finite == 1 and "then" not in left and not _has_finite(right[:cut]):
                spots.append((m.start() + b.end(), m.start() + b.end(), ","))
            break
    return spots


def _has_finite(words: list[str]) -> bool:
    return any(w.casefold() in _FINITE for w in words)


def _and_spots(text: str) -> list[tuple[int, int, str]]:
    spots = []
    for m in _AND_CLAUSE_RE.finditer(text):
        left = re.split(r"[,;:.!?()\n]|--|—", text[:m.start()])[-1]
        right = re.split(r"[,;:.!?()\n]|--|—", text[m.end():])[0]
        lw, rw = words_of(left), words_of(right)
        if len(lw) >= MIN_SPLIT_WORDS and len(rw) >= 3 and _has_finite(lw) and _has_finite(rw[1:]) \
                and lw[0].casefold() not in _SUBORDINATE:
            spots.append((m.start(), m.start(), ","))
    return spots


def _which_spots(text: str) -> list[tuple[int, int, str]]:
    spots = []
    for m in _WHICH_RE.finditer(text):
        before = words_of(text[max(0, m.start() - 40):m.start()])
        rest = {w.casefold() for w in words_of(m.group(2))}
        if before and before[-1].casefold() not in _NOT_BEFORE_WHICH and m.group(1) in _AFTER_WHICH \
                and not rest & _FINITE:
            spots.append((m.start(), m.start(), ","))
    return spots


def _comma_spots(text: str) -> list[tuple[int, int, str]]:
    """Where a comma may be added without changing a word: (start, end, replacement) of each."""
    spots = [(m.end(1), m.end(1), ",") for m in _INTRO_RE.finditer(text)]
    for m in _JOIN_RE.finditer(text):
        before = words_of(text[max(0, m.start() - 40):m.start()])
        if before and before[-1].casefold() not in _NOT_A_JOIN:
            spots.append((m.start(), m.start(), ","))
    spots += _which_spots(text) + _and_spots(text) + _leading_clause_spots(text)
    for m in _ASIDE_RE.finditer(text):
        spots.append((m.start(), m.start(), ","))
        spots.append((m.end(), m.end(), ","))
    taken, out = -1, []
    for start, end, rep in sorted(spots):  # one change per place
        if start > taken:
            out.append((start, end, rep))
            taken = end
    return out


def _add_commas(text: str) -> str:
    """``text`` with a comma at each of its :func:`_comma_spots`."""
    out, last = [], 0
    for start, end, rep in _comma_spots(text):
        out += [text[last:start], rep]
        last = end
    return "".join(out) + text[last:]


def _punctuation(text: str, rng: random.Random) -> str:
    """Punctuation only: the words, lines and paragraphs stay as they are.

    A text whose commas can move both ways loses them all ("strip") or gains a comma at each
    spot where English allows one without a new word (:func:`_comma_spots`: "However, the",
    "hard, but it"), by a coin from ``rng``. Why: stripping every punctuation-rich text made the
    negative the one with fewer commas on every pair, and a judge that never sees the author
    (``dataset.blind_audit``: commas per word, length in characters) picked the author's text
    on 0.91 of the example corpus's pairs and 0.97 of a PEPs slice's. Only commas move: only
    stripping removed parentheses and dashes (a cue on every pair that had any), and exclamation
    marks or a dash before "and" in one direction would tell the directions apart again.

    A text whose commas can move one way only gets no rewrite (the task takes its next axis):
    a punctuation-rich text with no spot for a new comma (most PEPs) stripped would let the
    text decide the direction again (on a PEPs slice four fewer-comma negatives for each
    more-comma one, the judge at 0.65); a sparse text (no comma to strip) used to get
    exclamation marks on every other sentence, and a "!" is in nearly no author's text, so
    the blind judge read the negative off it (``exclamations_dashes``: 0.40 -> 0.70 on the
    mixed example + PEPs builds' axis-punctuation pairs once the judge could see it).
    """
    add = rng.random() < 0.5
    stripped, added = re.sub(r",(?=\s)", "", text), _add_commas(text)
    if stripped != text and added != text:
        return added if add else stripped
    return text


VOCABULARY_MIN = 5  # words a vocabulary rewrite swaps at least: fewer is a minimal edit (3-4)


def _vocabulary(text: str, rng: random.Random) -> str:
    """A sixth of the words (at least VOCABULARY_MIN) swapped for synonyms where the sentence
    stays grammatical (:func:`_synonym_fits`); the text as it is
    (no rewrite) when it holds fewer: swapping all of 3-4 spots is the task's minimal edit
    again, the same text twice (an exact duplicate the validators drop)."""
    n = max(VOCABULARY_MIN, len(ASCII_WORD.findall(text)) // 6)
    edited, done = _swap_words(text, rng, SYNONYMS, n, _synonym_fits)
    return edited if done >= VOCABULARY_MIN else text


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


def axis_applies(text: str, axis: str) -> bool:
    """Whether ``axis`` can move ``text`` without leaving a context-blind cue on every pair.

    Structure applies only to a text of several blocks (paragraphs, lines, list items): on
    one paragraph, any change of structure adds line breaks, so "the response with line
    breaks is the negative" would be right on every such pair without a look at the author
    (the blind audit scored axis-structure 1.00 on corpora of one-paragraph samples)."""
    if axis != "structure":
        return True
    return len([b for b in PARAGRAPH_BREAK.split(text.strip()) if b.strip()]) > 1 or \
        len([ln for ln in text.strip().splitlines() if ln.strip()]) > 1


def axis_rewrite(text: str, axis: str, rng: random.Random) -> str | None:
    """The text moved along ``axis``, or None when the rewrite changed nothing the validators
    would see (``textutil.normalized``: a one-sentence text whose only change is its final
    stop, or a bullet before it, is the same text to the identical-pair check)."""
    out = AXIS_REWRITES[axis](text, rng).strip()
    return out if out and normalized(out) != normalized(text) else None
