"""Rule-based negatives for base models: minimal edits and axis rewrites."""

import json
import random
import re
from pathlib import Path

import pytest

from persrm_gen.generator.edits import AXIS_REWRITES, axis_rewrite, minimal_edit
from persrm_gen.style import n_words, words_of
from persrm_gen.textutil import sentences

TEXT = ("We need to make a big change to the way the import system works. It is not hard, but it is "
        "important; the old method was slow, and people often had to find a way around it (usually by hand). "
        "I think we should start now.")


def _diff_words(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a.split(), b.split())) + abs(len(a.split()) - len(b.split()))


def test_minimal_edit_replaces_three_or_four_words_and_nothing_else():
    for seed in range(20):
        edited = minimal_edit(TEXT, random.Random(seed))
        assert edited is not None
        assert len(edited.split()) == len(TEXT.split())
        assert 3 <= _diff_words(TEXT, edited) <= 4
        assert [c for c in edited if not c.isalnum() and c != " "] == [c for c in TEXT if not c.isalnum() and c != " "]


def test_minimal_edit_is_deterministic_and_refuses_texts_without_candidates():
    assert minimal_edit(TEXT, random.Random(3)) == minimal_edit(TEXT, random.Random(3))
    assert minimal_edit("Xylophones zigzag quietly.", random.Random(0)) is None


def test_each_axis_changes_the_text_along_its_axis():
    rng = random.Random(0)
    formal = {axis_rewrite(TEXT, "formality", random.Random(seed)) for seed in range(6)}  # both ways, a coin
    assert any("isn't" in f for f in formal) and any("ought to start" in f and "need to" in f for f in formal)
    longer = axis_rewrite(TEXT, "length", rng)
    assert len(sentences(longer)) != len(sentences(TEXT))
    # TEXT has no spot for a new comma: its commas could only go, and the axis leaves it (see below)
    assert axis_rewrite(TEXT, "punctuation", random.Random(0)) is None
    addable = TEXT.replace("I think", "However I think")
    punct = axis_rewrite(addable, "punctuation", rng)
    assert punct.count(",") != addable.count(",") and _words(punct) == _words(addable)
    assert axis_rewrite(TEXT, "structure", rng).startswith("- ")
    assert _diff_words(TEXT, axis_rewrite(TEXT, "vocabulary", rng)) >= 5
    assert set(AXIS_REWRITES) == {"formality", "length", "punctuation", "vocabulary", "structure"}


def test_casual_formality_keeps_however_rather_than_leave_a_dangling_comma():
    """"However, the plan works." became "But, the plan works." and ", however," became
    ", but,": the casual side of the table kept the comma the formal side adds. "But the plan
    works." drops a comma, which on a short text moves the commas a full unit (the axis test
    below, example 14), so "however" stays; the other plain words still come."""
    from persrm_gen.generator.edits import _informal

    assert axis_rewrite("However, the plan works.", "formality", random.Random(0)) is None
    text = ("However, the plan works. The cost, however, is high. It failed; however, we tried. "
            "It is sufficient to try. We ran it however we liked.")
    for seed in range(3):
        out = _informal(text, random.Random(seed))
        assert out == text.replace("It is sufficient", "It's enough"), out


def test_structure_axis_turns_a_list_back_into_prose():
    bullets = "- First point here.\n- Second point here.\n- Third one."
    assert axis_rewrite(bullets, "structure", random.Random(0)) == "First point here. Second point here. Third one."


# -- axis rewrites stay grammatical and change only their axis (issue 13 item 2) ------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"
_LONG = ("However, the latter were slower than anyone had expected at the time of the first release. "
         "When the old importer ran, it scanned every directory on the path; the new one keeps a cache of "
         "each directory listing. We measured it on three machines, and the results were the same everywhere.")


def _example_texts() -> list[str]:
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    return [s["text"] for r in rows for s in r["samples"]]


def _fragments(text: str) -> int:
    return sum(len(words_of(s)) <= 2 for s in sentences(text))


_BROKEN = {
    "doubled punctuation": re.compile(r"[,;:]\s*[,.;:!?]|[.!?]\s*[,;:]|(?<!\.)\.\s*\.(?!\.)"),
    "capital after a comma or semicolon": re.compile(r"[,;]\s+(?!I\b)[A-Z][a-z]"),
    "lower case after a full stop": re.compile(r"(?<![.\w][a-z])(?<!\b[a-z])\.\s+[a-z]"),
}


def _broken(before: str, after: str) -> list[str]:
    """What the rewrite broke that was not broken before (counts may only go down)."""
    out = [f"{name}: {len(rx.findall(after))} > {len(rx.findall(before))}" for name, rx in _BROKEN.items()
           if len(rx.findall(after)) > len(rx.findall(before))]
    if _fragments(after) > _fragments(before):
        out.append(f"fragment sentences: {_fragments(after)} > {_fragments(before)}")
    return out


def _words(text: str, drop: frozenset = frozenset()) -> list[str]:
    return [w.casefold() for w in words_of(text) if w.casefold() not in drop]


def test_length_axis_never_splits_after_a_leading_adverb_or_an_introductory_phrase():
    out = axis_rewrite(_LONG, "length", random.Random(0))
    assert out is not None and len(sentences(out)) > len(sentences(_LONG))
    assert out.startswith("However, the latter were")
    assert "When the old importer ran, it scanned" in out
    assert "it scanned every directory on the path. The new one keeps" in out
    assert "three machines. The results were the same everywhere." in out
    assert not _broken(_LONG, out)


def test_length_axis_joins_sentences_within_a_paragraph_and_keeps_names_capitalized():
    from persrm_gen.generator.edits import _join_sentences

    text = "Python is small. It runs anywhere.\n\nWe like it. Guido wrote it. The end came later."
    assert _join_sentences("Python is small. It runs anywhere.", text) == "Python is small, and it runs anywhere."
    assert _join_sentences("We like it. Guido wrote it. The end came later.", text) == \
        "We like it, and Guido wrote it. The end came later."


def test_length_axis_splits_or_joins_by_a_coin_and_leaves_a_text_it_cannot_split():
    # nothing to split: joining alone would lengthen the sentences of every such negative
    assert axis_rewrite("Python is small. It runs anywhere. We like it a lot.", "length", random.Random(0)) is None
    outs = {axis_rewrite(_LONG, "length", random.Random(seed)) for seed in range(8)}
    assert {len(sentences(o)) > len(sentences(_LONG)) for o in outs} == {True, False}
    assert any(", and when the old importer ran" in o for o in outs), outs


def _word_moves(axis: str, seeds: int = 6) -> list[int]:
    """Change in words of each rewrite along ``axis`` over the example corpus, each text with
    its own seeds (a build seeds each task apart)."""
    out = []
    for i, text in enumerate(_example_texts()):
        for seed in range(seeds):
            rewritten = axis_rewrite(text, axis, random.Random(1000 * seed + i))
            if rewritten is not None:
                out.append(n_words(rewritten) - n_words(text))
    return out


@pytest.mark.parametrize("axis", ["length", "formality"])
def test_axis_rewrites_have_more_words_about_as_often_as_fewer(axis):
    """Issue 13: splitting long sentences (dropping the joining "and") and contracting formal
    text ("is not" -> "isn't") made the negative the shorter response on nearly every pair
    (main: length 12 of 42 count-changing rewrites longer, formality 18 of 96)."""
    moves = _word_moves(axis)
    moved = [m for m in moves if m]
    assert len(moves) >= 30 and len(moved) >= 20
    assert 0.3 <= sum(m > 0 for m in moved) / len(moved) <= 0.7, (sum(m > 0 for m in moved), len(moved))
    # what "pick the longer response" scores (a tie counts half): near a coin
    assert 0.4 <= sum((m < 0) + (m == 0) / 2 for m in moves) / len(moves) <= 0.6


def test_punctuation_axis_keeps_the_words_and_the_line_breaks():
    text = "Short one, and another one here.\nHowever the third line is longer.\n\nLast paragraph, and its end."
    for seed in range(6):
        out = axis_rewrite(text, "punctuation", random.Random(seed))
        assert out.count("\n") == text.count("\n") and "!" not in out and _words(out) == _words(text)
    # a sparse text (no comma to strip) gets no rewrite: exclamation marks were a one-way cue
    assert axis_rewrite("Short one. Another one here.\nA third line and more.", "punctuation", random.Random(0)) is None


@pytest.mark.parametrize("axis", sorted(AXIS_REWRITES))
def test_every_axis_on_the_example_corpus_stays_grammatical_and_on_its_axis(axis):
    changed = 0
    for i, text in enumerate(_example_texts()):
        for seed in range(3):
            out = axis_rewrite(text, axis, random.Random(seed))
            if out is None:
                continue
            changed += 1
            assert not _broken(text, out), (axis, i, _broken(text, out), out)
            if axis == "punctuation" or axis == "structure":
                assert _words(out) == _words(text)  # only marks, line starts and bullets move
            if axis == "length":  # words change only where sentences are split or joined
                assert _words(out, _CONJ) == _words(text, _CONJ)
            if axis != "structure":
                assert out.count("\n\n") == text.strip().count("\n\n")  # paragraphing is kept
    assert changed >= 10


_CONJ = frozenset({"and", "but", "so"})


# -- each axis moves only its own measured features (persrm_gen/style.py) ---------------------

# What each axis may move: its own features, and what moving it must move with it (a sentence
# split gets a capital and loses its comma or semicolon; "do not" -> "don't" shortens words and
# drops two function words). Every other feature moves less than FEATURE_TOLERANCE.
AXIS_FEATURES = {
    "formality": {"contractions", "function_words", "word_length"},
    "length": {"sentence_length", "sentence_length_std", "commas", "semicolons", "capitalized_words"},
    "punctuation": {"commas", "semicolons", "colons", "dashes", "parentheses", "exclamations", "questions", "quotes"},
    "vocabulary": {"word_length", "function_words", "type_token_ratio"},
    "structure": {"line_breaks", "paragraphs"},
}
FEATURE_TOLERANCE = 1.0  # in each feature's own floor (its minimum spread in style.py): under a z-unit


@pytest.mark.parametrize("axis", sorted(AXIS_REWRITES))
def test_every_axis_moves_its_own_features_and_no_other_on_the_example_corpus(axis):
    from persrm_gen.style import FEATURES, featurize

    assert set(AXIS_FEATURES) == set(AXIS_REWRITES)
    own_moved = 0
    for i, text in enumerate(_example_texts()):
        for seed in range(3):
            out = axis_rewrite(text, axis, random.Random(seed))
            if out is None:
                continue
            before, after = featurize(text), featurize(out)
            moves = {f.name: abs(after[f.name] - before[f.name]) / f.floor for f in FEATURES}
            strays = {k: round(v, 2) for k, v in moves.items() if k not in AXIS_FEATURES[axis] and v >= FEATURE_TOLERANCE}
            assert not strays, (axis, i, strays, out)
            if axis == "vocabulary":  # measured by overlap with the author's words, not a surface feature
                own_moved += _diff_words(text, out) >= 5
            else:
                own_moved += max(moves[k] for k in AXIS_FEATURES[axis]) >= FEATURE_TOLERANCE
    assert own_moved >= 10  # and it does move its axis


def test_bullets_are_line_breaks_not_dashes():
    from persrm_gen.style import featurize

    listed = axis_rewrite(TEXT, "structure", random.Random(0))
    assert featurize(listed)["dashes"] == featurize(TEXT)["dashes"] == 0
    assert featurize("It was fast - very fast.")["dashes"] > 0


def test_minimal_edit_carries_no_word_length_cue_on_the_example_corpus():
    """The synonym table's common side is short (use, help, show, also...), and texts mostly
    hold it: swapping 3-4 spots at random made the negative's words longer nearly every time,
    a response-only cue (blind_audit's word_chars) for "the shorter-worded one is the author's"."""
    from persrm_gen.dataset.blind_audit import FEATURES, text_features

    wc = FEATURES.index("word_chars")
    diffs = []
    for text in _example_texts():
        for seed in range(3):
            out = minimal_edit(text, random.Random(seed))
            if out is not None:
                diffs.append(text_features(out)[wc] - text_features(text)[wc])
    moved = [d for d in diffs if abs(d) > 1e-9]
    assert len(diffs) >= 30
    if len(moved) > len(diffs) / 2:  # most edits change the mean word length: no consistent sign
        assert 0.35 <= sum(d > 0 for d in moved) / len(moved) <= 0.65, (sum(d > 0 for d in moved), len(moved))


def test_a_vocabulary_rewrite_is_never_a_minimal_edit():
    """A text with only 3-4 synonym spots got all of them swapped by both rewrites: the same
    text twice for one task, so the validators dropped one pair as an exact duplicate."""
    for text in _example_texts():
        for seed in range(3):
            out = axis_rewrite(text, "vocabulary", random.Random(seed))
            if out is not None:
                assert _diff_words(text, out) >= 5
            assert out is None or out != minimal_edit(text, random.Random(seed))
    assert axis_rewrite("We need a big change; it is not hard.", "vocabulary", random.Random(0)) is None


# -- an axis negative the identical-pair check would drop is never made (issue 13) -----------------

def test_an_axis_rewrite_that_changes_only_what_normalization_strips_is_no_rewrite():
    # one sentence and no marks: the only punctuation change is its final stop ("." -> "!"),
    # and a one-sentence bullet is the sentence behind a "- ": both the same text normalized
    assert axis_rewrite("The project team has been working on a new version of the loader.", "punctuation",
                        random.Random(0)) is None
    assert axis_rewrite("The project team has been working on a new version of the loader.", "structure",
                        random.Random(0)) is None


def test_the_structure_axis_applies_only_to_a_text_of_several_blocks():
    from persrm_gen.generator.edits import axis_applies

    # one paragraph: any change of structure adds line breaks, so "the text with line breaks
    # is the negative" would be a context-blind shortcut right on every pair
    assert not axis_applies(TEXT, "structure")
    assert axis_applies(TEXT.replace(" It is not hard", "\n\nIt is not hard"), "structure")
    assert axis_applies("- First point here.\n- Second point here.", "structure")
    assert all(axis_applies(TEXT, a) for a in AXIS_REWRITES if a != "structure")


# -- the punctuation axis moves commas both ways (issue 13: a context-blind cue) ---------------

ADDABLE = ("The old importer was slow and it was scanning every directory. However it was not hard but it "
           "took a while, and people waited. Once they have the cache they should use it.")


def _punctuation_pairs(seeds: int = 3) -> list[tuple[str, str, int]]:
    """(chosen, its punctuation rewrite, author index) over the example corpus, each text with
    its own seeds (a build seeds each task apart)."""
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    texts = [(s["text"], a) for a, r in enumerate(rows) for s in r["samples"]]
    out = []
    for i, (text, author) in enumerate(texts):
        for seed in range(seeds):
            rewritten = axis_rewrite(text, "punctuation", random.Random(1000 * seed + i))
            if rewritten is not None:
                out.append((text, rewritten, author))
    return out


def test_punctuation_rewrites_have_more_commas_about_as_often_as_fewer():
    """Only stripping made every negative the one with fewer commas (0 of 60 with more)."""
    moves = [out.count(",") - text.count(",") for text, out, _ in _punctuation_pairs(6)]
    moved = [m for m in moves if m]
    assert len(moved) >= 20
    assert 0.3 <= sum(m > 0 for m in moved) / len(moved) <= 0.7, (sum(m > 0 for m in moved), len(moved))


def test_the_add_direction_keeps_the_words_and_lines_and_puts_no_comma_where_one_is():
    added = [(text, out) for text, out, _ in _punctuation_pairs(6) if out.count(",") > text.count(",")]
    added += [(ADDABLE, out) for seed in range(20)
              if (out := axis_rewrite(ADDABLE, "punctuation", random.Random(seed))).count(",") > ADDABLE.count(",")]
    assert len(added) >= 20
    doubled = re.compile(r",\s*[,.;:!?)]|[(]\s*,")
    for text, out in added:
        assert _words(out) == _words(text) and out.count("\n") == text.count("\n"), out
        assert len(doubled.findall(out)) <= len(doubled.findall(text)), out
        assert not _broken(text, out), (_broken(text, out), out)
    assert ("The old importer was slow, and it was scanning every directory. However, it was not hard, but it took "
            "a while, and people waited. Once they have the cache, they should use it.") in {out for _, out in added}


def test_the_add_direction_leaves_lists_objects_and_questions_alone():
    for text in ("Nothing but the best will do. It is not yet the time. You and I will go.",
                 "We know which is better. The file which holds it is big. Choose the cats and the dogs.",
                 "If the value it has is None we stop. So that it works we wait. Only the first is used.",
                 "It is best to mandate which files are kept. To do so they must read it. A file which is read is kept."):
        text += " In short, that is all."  # a comma to strip: the add direction is open
        for seed in range(8):
            out = axis_rewrite(text, "punctuation", random.Random(seed))
            assert out is None or out.count(",") <= 1, out


def test_a_blind_judge_cannot_tell_the_chosen_text_from_its_punctuation_rewrite():
    """dataset.blind_audit's judge (commas per word, length in characters, ...), fitted by
    author-grouped cross-validation as ``audit`` does: 0.87-0.91 when every rewrite stripped."""
    from persrm_gen.dataset.blind_audit import _Coded, _hits, cross_validated, pair_features

    pairs = _punctuation_pairs(6)
    authors = _Coded.of(str(author) for _, _, author in pairs)
    cv = cross_validated(authors, pair_features([c for c, _, _ in pairs], [r for _, r, _ in pairs]))
    assert len(pairs) >= 40 and cv is not None
    assert float(_hits(cv).mean()) <= 0.65


def test_no_word_swap_leaves_a_dangling_comma_after_but():
    # "However, the plan" -> "But, the plan": a synonym swap keeps the punctuation, and "But"
    # takes no comma; "however" is not swapped at all
    text = "However, the plan works. We need a big change, and it is important to start now."
    for seed in range(40):
        for out in (minimal_edit(text, random.Random(seed)), axis_rewrite(text, "vocabulary", random.Random(seed))):
            assert out is None or "But," not in out, out


# -- a synonym swap keeps the sentence grammatical (issue 13: "We require to create a big modify") --

_PAD = " We use it, and it is important and very useful."
# (sentence, what no swap may make of it): nouns that share their spelling with a verb whose
# twin is a verb only ("the need for", "a big change"), verbs whose twin takes another
# complement ("need to create" is not "require to create", "want a" not "wish a"), idioms
# ("in the end", "by the way"), articles ("an idea" is not "an notion"), names and compounds.
UNGRAMMATICAL_SWAPS = [
    ("We need to create a big change to the way the import system works, and the need for it is clear.",
     ["require to", "big modify", "large modify", "a modify", "the require", "the method the", "by the method"]),
    ("The use of this module is rare; with the help of the docs, people find their way around it by the way.",
     ["the employ", "the assist", "their method", "by the method"]),
    ("At the start of the project, in the end, it was a good idea to check that an issue was fixed for a user.",
     ["the begin", "the finish", "in the finish", "an problem", "an notion"]),
    ("I want a new parser, so we try to keep the code simple and make sure it is fast enough for New York.",
     ["wish a", "novel parser", "retain the", "create sure", "fast sufficient", "quick sufficient", "Novel York"]),
    ("Give me an answer: we will stop using the old API because of the change, which is a big deal.",
     ["provide me", "an reply", "halt using", "since of", "the modify", "a large deal"]),
    ("This is a very important problem, and it is important to look at it in particular, part by part.",
     ["a quite", "an significant", "a issue", "appear at", "in specific", "portion by"]),
    ("We aim to fix it; the aim is a small fix for the big-endian build, and we will build on it.",
     ["we goal", "large-endian", "a repair", "construct on", "the construct"]),
    ("Instead of a request, you should ask the user to tell us what they think about it, and we did it instead.",
     ["rather of", "request the user", "inform us", "believe about", "it rather"]),
    ("They want to know why something went wrong, and who will check for errors in some code.",
     ["went incorrect", "verify for", "several code"]),
    ("We propose to add it, so this may happen to work as part of the plan, and we will give it a try.",
     ["suggest to", "occur to", "as portion", "provide it", "a attempt"]),
    # inflected forms: plural nouns that share their spelling with a verb's -s, -ing nouns,
    # -ed adjectives, and the base's complements ("needs to" is no "requires to"); each with
    # _PAD's four safe spots, so that edits are made and a wrong spot would be among them
    ("The changes to the build need review; it needs to run, and the needs of users come first." + _PAD,
     ["the modifies", "requires to", "the requires"]),
    ("So that changes are safe, which changes were made? The uses of it are many, and critical thinking helps." + _PAD,
     ["that modifies", "which modifies", "the employs", "employs of", "critical believing"]),
    ("At the beginning, the building had a fixed size and a finished look; the findings are in the ending." + _PAD,
     ["the starting", "the constructing", "repaired size", "ended look", "the finishing"]),
    ("The size is fixed, we are finished, and it ended up there; the starting point was a thought." + _PAD,
     ["is repaired", "are ended", "finished up", "beginning point", "a believed"]),
    ("It is a bigger deal when chances are high, and they stopped using it because it needed to change." + _PAD,
     ["larger deal", "opportunities are", "halted using", "required to"]),
    ("This PEP is starting out small; we use it, it needs a fix, and it is important for beginning "
     "programmers and changing requirements." + _PAD,
     ["beginning out", "for starting", "modifying requirements"]),
]


def _swaps(text: str, seeds: int = 150) -> set[str]:
    outs = set()
    for seed in range(seeds):
        outs.add(minimal_edit(text, random.Random(seed)))
        outs.add(axis_rewrite(text, "vocabulary", random.Random(seed)))
    return outs - {None}


@pytest.mark.parametrize(("text", "bad"), UNGRAMMATICAL_SWAPS)
def test_no_synonym_swap_makes_a_known_ungrammatical_phrase(text, bad):
    for out in _swaps(text):
        found = [b for b in bad if re.search(rf"\b{re.escape(b)}\b", out, re.IGNORECASE) and b.lower() not in text.lower()]
        assert not found, (found, out)


def test_a_word_takes_its_synonym_where_its_part_of_speech_allows():
    # the verbs swap ("we need a", "to use the"); the nouns of the same spelling stay
    text = "We need a parser and the need for it is clear; to use the cache is the use of it."
    want = "We require a parser and the need for it is obvious; to employ the cache is the use of it."
    assert {minimal_edit(text, random.Random(seed)) for seed in range(10)} == {want}


def test_the_formal_direction_keeps_the_grammar_its_synonym_table_twin_keeps():
    # the formality axis swaps get/enough/show for the same twins as the vocabulary axis: the
    # same contexts must keep them ("good enough" is no "good sufficient")
    from persrm_gen.generator.edits import _formal

    text = "It is good enough for us, so we get better results. They get confused. We show you how it works."
    bad = ["good sufficient", "obtain better", "obtain confused", "demonstrate you"]
    for seed in range(20):
        out = _formal(text, random.Random(seed))
        assert not [b for b in bad if b in out], out
    assert "we need enough time to get the result" not in _formal("we need enough time to get the result", random.Random(0))


# -- inflected forms swap under their base's rules (issue 13: yield after the grammar rules) -------

def test_inflected_forms_take_their_twins_spelled_by_rule():
    from persrm_gen.generator.edits import SYNONYMS

    want = {"changes": "modifies", "changing": "modifying", "changed": "modified", "modifies": "changes",
            "stopping": "halting", "stopped": "halted", "tried": "attempted", "trying": "attempting",
            "tries": "attempts", "using": "employing", "employing": "using", "needs": "requires",
            "occurred": "happened", "occurring": "happening", "happened": "occurred", "easier": "simpler",
            "bigger": "larger", "largest": "biggest", "ideas": "notions", "opportunities": "chances",
            "began": "started", "built": "constructed", "constructed": "built", "found": "discovered"}
    assert {w: SYNONYMS.get(w) for w in want} == want
    # irregular ones only through the explicit table: "has started" is no "has began"
    assert SYNONYMS.get("started") is None and SYNONYMS.get("obtained") is None
    misspelled = {"stoped", "trys", "tryed", "changeing", "useing", "begined", "builded", "occured", "bigest",
                  "easyer", "simpleer", "finishs", "modifys", "chosed", "thinked"}
    assert not misspelled & (set(SYNONYMS) | set(SYNONYMS.values()))


def test_inflected_forms_take_their_twins_where_the_grammar_allows():
    text = "It changes the plan. We are using the cache, and they tried a fix that was built by hand. The fix is easier."
    want = ("It modifies the plan. We are employing the cache, and they attempted a fix that was constructed by hand. "
            "The fix is simpler.")
    assert {axis_rewrite(text, "vocabulary", random.Random(seed)) for seed in range(10)} == {want}
    for seed in range(10):
        edited = minimal_edit(text, random.Random(seed))
        assert 3 <= _diff_words(text, edited) <= 4 and all(w in (text + want).split() for w in edited.split())


def test_the_vocabulary_axis_reaches_more_texts_with_the_inflected_forms():
    """The grammar rules left 8 of the example corpus's 23 texts with the 5 swap spots a
    vocabulary rewrite needs (11 before them); inflected forms win some back (9; PEPs 97 ->
    143 of 518, speeches 79 -> 100 of 193)."""
    from persrm_gen.generator.edits import _synonym_spots

    texts = _example_texts()
    assert sum(len(_synonym_spots(t)) >= 5 for t in texts) >= 9


def test_a_plural_noun_before_a_time_phrase_keeps_its_spelling():
    # "changes this year" is a noun before an adverbial, not "it changes the": no "made modifies"
    text = "We made changes this year, and it needs a fix; they use the cache and want to check it."
    for out in _swaps(text, 60):
        assert "modifies" not in out, out


def test_an_ing_form_swaps_where_it_is_a_verb():
    # after "by", "when" (not "for": "for beginning programmers"), before "to", at a clause start
    from persrm_gen.generator.edits import _synonym_spots

    text = "By using symlinks, we avoid it; when using Python, trying to fix it is hard, for beginning programmers too."
    assert [m.group(0) for m in _synonym_spots(text)] == ["using", "using", "trying", "fix", "hard"]
