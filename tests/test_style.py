import json
import random
from pathlib import Path

import pytest

from persrm_gen.style import (
    FEATURE_NAMES,
    AuthorProfile,
    StyleComparison,
    baseline_judge,
    char_ngrams,
    compare,
    featurize,
    function_word_rates,
    style_distance,
    style_margin,
)

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

TERSE = [
    "We shipped it. It works. Tests pass. Done.",
    "Short notes today. The build is green. Ship it.",
    "No change needed. The fix is small. Merge it now.",
    "It failed once. I fixed it. Now it runs.",
]
VERBOSE = (
    "Although the proposal that we have been discussing over the course of the last several months "
    "has a number of merits which deserve careful consideration by everyone involved in the project, "
    "it also raises a great many questions about compatibility, maintenance and the long-term "
    "direction of the language that have not yet been answered to the satisfaction of the community."
)
TERSE_REPLY = "The patch is in. It is small. Review it."

PUNCTUATED = [
    "Consider this: the API (as written) is fragile; callers break -- often -- when it changes.",
    "Two points: first, speed (it matters); second, clarity -- which matters more; always.",
    "The rule is simple: measure (twice); cut once -- then, and only then, ship it; no sooner.",
]
PUNCT_REPLY = "Note this: the parser (old one) is slow; users wait -- a lot -- for results; sadly."
PLAIN_REPLY = "The parser is slow and users wait a long time for the results to come back to them"

CASUAL = [
    "I don't think it's ready. We can't ship what we haven't tested, and you'll see why.",
    "It's fine, but I'd wait. They're still fixing bugs and we won't rush it.",
    "You're right, it isn't done. I'll check again tomorrow, and we'll decide then.",
]
CASUAL_REPLY = "I don't like it. It's slow, and they won't fix it soon, so we'll wait."
FORMAL_REPLY = "I do not like it. It is slow, and they will not fix it soon, so we shall wait."


def test_featurize_measures_what_it_says():
    f = featurize("I don't know. We can't go! Why not?")
    assert set(f) == set(FEATURE_NAMES)
    assert f["sentence_length"] == pytest.approx(8 / 3)
    assert f["contractions"] == pytest.approx(2 / 8 * 100)
    assert f["exclamations"] == pytest.approx(100 / 8)
    assert f["questions"] == pytest.approx(100 / 8)
    assert f["first_person"] == pytest.approx(2 / 8 * 100)
    assert featurize("Line one\nline two\n\nline three")["paragraphs"] > 0
    assert featurize("Version 3.11 came in 2022")["digits"] > 0
    assert featurize(VERBOSE)["sentence_length"] > 5 * featurize(TERSE[0])["sentence_length"]


def test_ngram_profile_is_normalized_and_function_words_counted():
    grams = char_ngrams("abcabc")
    assert sum(grams.values()) == pytest.approx(1.0)
    assert grams["abc"] == pytest.approx(0.5)
    fw = function_word_rates("the cat and the dog")
    assert fw["the"] == pytest.approx(40.0) and fw["and"] == pytest.approx(20.0)


def test_terse_author_prefers_terse_reply_with_sentence_length_evidence():
    c = compare(TERSE, VERBOSE, TERSE_REPLY)
    assert isinstance(c, StyleComparison)
    assert c.predicted == "B" and c.distance_b < c.distance_a
    by_name = {f.name: f for f in c.features}
    sl = by_name["sentence_length"]
    assert sl.closer == "B" and sl.description == "average sentence length" and sl.unit == "words"
    assert sl.a_value > 40 and sl.b_value < 6 and 2 < sl.author_value < 4
    weights = [f.weight for f in c.features]
    assert weights == sorted(weights, reverse=True)
    assert c.features[0].weight > 0
    # swapping the responses swaps the verdict and the evidence
    swapped = compare(TERSE, TERSE_REPLY, VERBOSE)
    assert swapped.predicted == "A"
    assert {f.name: f.closer for f in swapped.features}["sentence_length"] == "A"


def test_punctuation_heavy_author():
    c = compare(PUNCTUATED, PLAIN_REPLY, PUNCT_REPLY)
    assert c.predicted == "B"
    by_name = {f.name: f for f in c.features}
    for name in ("semicolons", "colons", "dashes", "parentheses"):
        assert by_name[name].closer == "B", name
    assert by_name["semicolons"].a_value == 0
    # an author who never punctuates prefers the plain reply
    plain_author = [PLAIN_REPLY.replace("parser", "loader"), "we wrote it and it runs and we like it a lot"]
    assert baseline_judge(plain_author, PLAIN_REPLY, PUNCT_REPLY) == "A"


def test_contractions_decide_between_otherwise_equal_replies():
    c = compare(CASUAL, FORMAL_REPLY, CASUAL_REPLY)
    assert c.predicted == "B"
    top = c.decisive(3)
    assert "contractions" in [f.name for f in top]
    assert {f.name: f for f in c.features}["contractions"].closer == "B"
    assert baseline_judge(CASUAL, CASUAL_REPLY, FORMAL_REPLY) == "A"


def test_margin_is_antisymmetric_and_evidence_is_renderable():
    profile = AuthorProfile.from_context(TERSE)
    m = style_margin(TERSE_REPLY, VERBOSE, profile)
    assert m > 0
    assert style_margin(VERBOSE, TERSE_REPLY, profile) == pytest.approx(-m)
    assert m == pytest.approx(style_distance(VERBOSE, profile) - style_distance(TERSE_REPLY, profile))
    c = compare(TERSE, VERBOSE, TERSE_REPLY)
    lines = c.evidence_lines(4)
    assert len(lines) == 6
    assert lines[0].startswith(c.features[0].description) and "author" in lines[0] and "/ B " in lines[0]
    assert 0 <= c.ngram_similarity_b <= 1 and 0 <= c.vocab_overlap_b <= 1
    assert c.margin == pytest.approx(abs(c.distance_a - c.distance_b), abs=1e-3)


def test_deterministic_and_single_sample_context_is_stable():
    assert compare(TERSE, VERBOSE, TERSE_REPLY) == compare(TERSE, VERBOSE, TERSE_REPLY)
    one = AuthorProfile.from_context([TERSE[0]])  # std 0 everywhere: the floors keep z finite
    d = style_distance(TERSE_REPLY, one)
    assert d == d and d < style_distance(VERBOSE, one) < 100
    with pytest.raises(ValueError):
        AuthorProfile.from_context(["", "  "])


def _load(name: str) -> dict[str, list[str]]:
    path = CORPORA / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    out = {}
    for line in path.open():
        d = json.loads(line)
        out[d["author_id"]] = [s["text"] for s in d["samples"]]
    return out


def _accuracy(own: dict, others: dict, n: int, seed: int, k: int = 4) -> float:
    """Share of pairs (author's held-out text vs another author's text) the baseline gets right."""
    rng = random.Random(seed)
    authors = sorted(a for a in own if len(own[a]) > k)
    correct = 0
    for i in range(n):
        a = rng.choice(authors)
        texts = rng.sample(own[a], k + 1)
        b = rng.choice(sorted(x for x in others if x != a))
        other = rng.choice(others[b])
        if i % 2:  # alternate positions so a bias towards "A" cannot help
            correct += baseline_judge(texts[:k], texts[k], other) == "A"
        else:
            correct += baseline_judge(texts[:k], other, texts[k]) == "B"
    return correct / n


def test_baseline_on_real_authors_beats_chance():
    peps, speeches = _load("peps.jsonl"), _load("speeches.jsonl")
    cross = _accuracy(peps, speeches, 100, seed=0)
    same = _accuracy(peps, peps, 100, seed=1)
    print(f"baseline accuracy: PEP author vs president speech {cross:.2f}, PEP author vs other PEP author {same:.2f}")
    assert cross >= 0.75  # about 0.9 on these corpora
    assert same > 0.5  # about 0.7: same genre is hard for surface stylometry


def test_type_token_ratio_is_the_sliding_window_average():
    # the per-token count must equal the plain definition: distinct words per window, averaged
    from persrm_gen.style import _mattr

    rng = random.Random(3)
    for _ in range(300):
        tokens = [str(rng.randrange(rng.randrange(1, 40))) for _ in range(rng.randrange(1, 160))]
        window = rng.choice((3, 10, 50))
        if len(tokens) <= window:
            expected = len(set(tokens)) / len(tokens)
        else:
            spans = range(len(tokens) - window + 1)
            expected = sum(len(set(tokens[s:s + window])) for s in spans) / len(spans) / window
        assert _mattr(tokens, window) == pytest.approx(expected, rel=1e-12)


def test_memoised_measurements_equal_a_fresh_computation():
    # compare/style_margin reuse each (text, profile) measurement: the numbers must not move
    from persrm_gen import style

    context = TERSE[:3]
    first = (compare(context, TERSE_REPLY, VERBOSE), style_margin(TERSE_REPLY, VERBOSE, AuthorProfile.from_context(context)))
    again = (compare(context, TERSE_REPLY, VERBOSE), style_margin(TERSE_REPLY, VERBOSE, AuthorProfile.from_context(context)))
    for cached in (style._profile, style._text_stats, style._feature_vector, style._words, style.n_words):
        cached.cache_clear()  # a new profile object: its measurements start empty too
    fresh = (compare(context, TERSE_REPLY, VERBOSE), style_margin(TERSE_REPLY, VERBOSE, AuthorProfile.from_context(context)))
    assert first == again == fresh
    assert first[0].distance_a != first[0].distance_b
