import itertools
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from persrm_gen.answer import make_trace
from persrm_gen.dataset.minhash import (
    MinHasher,
    NearDuplicateIndex,
    jaccard,
    lsh_params,
    near_duplicate_groups,
    near_duplicate_pairs,
)
from persrm_gen.dataset.validators import (
    REASONS,
    ValidatorConfig,
    copied_chosen,
    exact_duplicates,
    format_problems,
    label_consistent,
    leaked_span,
    load_pairs,
    normalize,
    text_hash,
    validate_pairs,
)

_RNG = random.Random(7)
VOCAB = [f"{a}{b}" for a, b in itertools.product(["ka", "lo", "mi", "nu", "pe", "ro", "su", "ti"], ["ba", "de", "fo", "gu", "ha", "je", "ko", "ly", "mo", "ne"])]


def words(n: int, rng: random.Random = _RNG) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n)) + "."


CONTEXT = [words(40), words(40), words(40)]


def make_row(i: int, *, chosen=None, rejected=None, label="A", strategy="mimic", **over) -> dict:
    chosen = chosen if chosen is not None else words(50)
    rejected = rejected if rejected is not None else words(50)
    a, b = (chosen, rejected) if label == "A" else (rejected, chosen)
    row = dict(
        id=f"p{i}", author_id="author", genre="proposal", query="Write about the parser.",
        context=list(CONTEXT), chosen=chosen, rejected=rejected, chosen_source="author",
        rejected_source="generated", response_a=a, response_b=b, label=label,
        rationale=make_trace("The author writes short sentences.", label), style_margin=0.4,
        split="train", strategy=strategy, chosen_strategy="real", rationale_source="evidence",
    )  # fmt: skip
    row.update(over)
    return row


def reasons(report) -> dict[str, str]:
    return {r.pair_id: r.reason for r in report.rejected}


def edit(text: str, n: int, rng: random.Random) -> str:
    toks = text.split()
    for pos in rng.sample(range(len(toks) - 1), n):
        toks[pos] = "zzz" + toks[pos]
    return " ".join(toks)


def test_valid_rows_pass_and_validation_is_idempotent():
    rows = [make_row(i) for i in range(20)]
    report = validate_pairs(rows)
    assert not report.rejected and len(report.kept) == 20
    assert report.counts() == {r: 0 for r in REASONS}
    again = validate_pairs(report.kept)
    assert len(again.kept) == 20


def test_normalization():
    assert normalize("  Hello,\n  WORLD!! ") == "hello, world"
    assert text_hash("Hello world.") == text_hash("hello   world") != text_hash("hello worlds")


def test_exact_duplicates_first_kept_occurrence_wins_and_real_text_is_exempt():
    gen = words(50)
    shared_target = words(50)
    rows = [
        make_row(0, chosen=shared_target, rejected=gen),
        make_row(1, chosen=shared_target, rejected="  " + gen.upper() + " "),  # same generated text
        make_row(2, chosen=shared_target),  # real chosen repeats: that is by design
    ]
    assert exact_duplicates(rows) == {1: "a generated candidate repeats one of pair p0"}
    report = validate_pairs(rows)
    assert reasons(report) == {"p1": "exact_duplicate"}
    assert [r["id"] for r in report.kept] == ["p0", "p2"]


def test_both_orders_of_one_pair_are_not_duplicates():
    chosen, gen = words(50), words(50)
    rows = [
        make_row(0, chosen=chosen, rejected=gen, label="A"),
        make_row(1, chosen=chosen, rejected=gen, label="B"),  # the A/B-swapped copy
        make_row(2, chosen=chosen, rejected=gen, label="A"),  # a third copy is a duplicate
        make_row(3, chosen=words(50), rejected=gen, label="B"),  # another pair reusing the text
    ]
    assert reasons(validate_pairs(rows)) == {"p2": "exact_duplicate", "p3": "exact_duplicate"}
    strict = validate_pairs(rows, ValidatorConfig(allow_both_orders=False))
    assert reasons(strict) == {"p1": "exact_duplicate", "p2": "exact_duplicate", "p3": "exact_duplicate"}


def test_rejected_row_claims_nothing():
    gen = words(50)
    broken = make_row(0, rejected=gen, query="  ")  # bad_format, so its text is not "seen"
    rows = [broken, make_row(1, rejected=gen)]
    assert reasons(validate_pairs(rows)) == {"p0": "bad_format"}


def test_identical_pair():
    text = words(50)
    report = validate_pairs([make_row(0, chosen=text, rejected=text.upper() + "!")])
    assert reasons(report) == {"p0": "identical_pair"}


def test_near_duplicates_across_pairs():
    rng = random.Random(1)
    base = words(60, rng)
    rows = [
        make_row(0, rejected=base),
        make_row(1, rejected=edit(base, 1, rng)),  # one word changed: Jaccard ~0.9
        make_row(2, rejected=edit(base, 20, rng)),  # a third changed: not a near duplicate
        make_row(3, rejected=words(60, rng)),
    ]
    report = validate_pairs(rows)
    assert reasons(report) == {"p1": "near_duplicate"}
    assert "pair p0" in report.rejected[0].detail
    # a stricter threshold keeps them all
    assert not validate_pairs(rows, ValidatorConfig(near_dup_threshold=0.95)).rejected


def test_near_duplicate_pairs_match_brute_force():
    rng = random.Random(3)
    texts = [words(rng.randint(40, 80), rng) for _ in range(150)]
    for i in range(0, 150, 5):
        texts.append(edit(texts[i], rng.randint(1, 3), rng))
    texts += ["", "one", "one"]  # empty and shorter-than-a-shingle texts are handled
    hasher = MinHasher()
    _, h, off = hasher.signatures(texts)
    brute = {
        (i, j)
        for i in range(len(texts))
        for j in range(i + 1, len(texts))
        if off[i + 1] > off[i] and off[j + 1] > off[j] and jaccard(h[off[i] : off[i + 1]], h[off[j] : off[j + 1]]) >= 0.85
    }
    found = near_duplicate_pairs(texts, 0.85)
    assert len(brute) >= 10  # and the planted pairs below the threshold must not be found
    assert {(i, j) for i, j, _ in found} == brute
    assert all(j >= 0.85 for _, _, j in found)
    groups = near_duplicate_groups(texts, 0.85)
    assert all(len(g) >= 2 and g == sorted(g) for g in groups)
    assert [len(texts) - 2, len(texts) - 1] in groups


def test_signatures_chunking_does_not_change_results():
    texts = [words(30) for _ in range(50)]
    sig1, h1, off1 = MinHasher().signatures(texts)
    sig2, h2, off2 = MinHasher().signatures(texts, chunk=7)
    assert (sig1 == sig2).all() and (h1 == h2).all() and (off1 == off2).all()


def test_lsh_params_reach_recall_at_threshold():
    bands, rows = lsh_params(0.85, 128)
    assert bands * rows <= 128
    assert 1 - (1 - 0.85**rows) ** bands >= 0.97
    assert 1 - (1 - 0.5**rows) ** bands < 0.05  # and few candidates far below it


def test_near_duplicate_index():
    rng = random.Random(5)
    base, other = words(60, rng), words(60, rng)
    index = NearDuplicateIndex(threshold=0.85)
    index.add("a", base)
    index.add("b", other)
    hits = index.query(edit(base, 1, rng))
    assert [k for k, _ in hits] == ["a"] and hits[0][1] >= 0.85
    assert index.query(words(60, rng)) == []
    assert len(index) == 2
    with pytest.raises(KeyError):
        index.add("a", base)


def test_copied_chosen_exempts_minimal_edits():
    rng = random.Random(2)
    chosen = words(40, rng)
    minimal = make_row(0, chosen=chosen, rejected=edit(chosen, 3, rng), strategy="minimal-edit")
    mimic_copy = make_row(1, chosen=chosen, rejected=edit(chosen, 1, rng), strategy="mimic")
    mimic_own = make_row(2, chosen=chosen, strategy="mimic")
    assert copied_chosen(minimal) is None
    assert "word similarity" in copied_chosen(mimic_copy)
    assert copied_chosen(mimic_own) is None
    report = validate_pairs([minimal, mimic_copy, mimic_own])
    assert reasons(report) == {"p1": "copied_chosen"}


def test_leakage_of_context_spans():
    span12 = " ".join(CONTEXT[0].split()[5:17])
    assert leaked_span("intro words here " + span12 + " and more", CONTEXT, 12) == span12.casefold()
    assert leaked_span("intro " + " ".join(span12.split()[:11]) + " tail", CONTEXT, 12) is None
    leaky = make_row(0, rejected=words(20) + " " + span12 + " " + words(20), strategy="mimic")
    real = make_row(1, rejected=leaky["rejected"], rejected_source="other-author", strategy="other-author")
    short = make_row(2, rejected=words(20) + " " + " ".join(span12.split()[:11]) + " " + words(20))
    report = validate_pairs([leaky, real, short])
    assert reasons(report) == {"p0": "leakage"}
    # a minimal edit inherits spans the author's own target shares with the context
    chosen = words(10) + " " + span12 + " " + words(20)
    inherited = make_row(3, chosen=chosen, rejected=edit(chosen, 1, random.Random(0)) + " extra", strategy="minimal-edit")
    assert not validate_pairs([inherited]).rejected
    # a lenient fraction lets a small copy through
    assert not validate_pairs([leaky], ValidatorConfig(max_leak_fraction=0.5)).rejected


def test_label_consistency():
    good_b = make_row(0, label="B")
    assert label_consistent(good_b)
    swapped = make_row(1)
    swapped["response_a"], swapped["response_b"] = swapped["response_b"], swapped["response_a"]
    wrong_verdict = make_row(2, rationale=make_trace("B reads like the author.", "B"))
    bad_label = make_row(3, label="A", rationale=make_trace("x", "A"))
    bad_label["label"] = "C"
    assert not label_consistent(swapped) and not label_consistent(wrong_verdict) and not label_consistent(bad_label)
    report = validate_pairs([good_b, swapped, wrong_verdict, bad_label])
    assert reasons(report) == {"p1": "label_inconsistent", "p2": "label_inconsistent", "p3": "label_inconsistent"}


def test_format_problems():
    cfg = ValidatorConfig(min_chars=20, max_chars=1000)
    assert format_problems(make_row(0), cfg) == []
    two_tags = make_row(1, rationale="<think>hm</think><answer>A</answer><answer>A</answer>")
    no_think = make_row(2, rationale="<answer>A</answer>")
    empty_query = make_row(3, query="   ")
    too_short = make_row(4, rejected="Too short.")
    too_long = make_row(5, chosen=words(400))
    nan_margin = make_row(6, style_margin=float("nan"))
    no_context = make_row(7, context=[])
    bad_split = make_row(8, split="validation")
    no_source = make_row(10, chosen_source=None)
    bad = [two_tags, no_think, empty_query, too_short, too_long, nan_margin, no_context, bad_split, no_source]
    for row in bad:
        assert format_problems(row, cfg), row["id"]
    assert "rejected has 10 characters" in format_problems(too_short, cfg)[0]
    report = validate_pairs(bad + [make_row(9)], cfg)
    assert reasons(report) == {r["id"]: "bad_format" for r in bad}
    assert report.counts()["bad_format"] == len(bad)


def test_low_margin_only_for_negatives_meant_to_diverge():
    rows = [
        make_row(0, strategy="randomize", style_margin=-1.0),
        make_row(1, strategy="axis-formality", style_margin=-0.6),
        make_row(2, strategy="mimic", style_margin=-1.0),  # a hard negative by design
        make_row(3, strategy="randomize", style_margin=-0.2),  # within noise
        make_row(4, strategy="mimic", style_margin=-0.8, chosen_source="generated", chosen_strategy="style-matched"),
    ]
    report = validate_pairs(rows)
    assert reasons(report) == {"p0": "low_margin", "p1": "low_margin", "p4": "low_margin"}
    assert not validate_pairs(rows, ValidatorConfig(min_margin=None)).rejected


def test_validate_folder_finds_duplicates_across_splits(tmp_path):
    gen = words(50)
    train = [make_row(0, rejected=gen), make_row(1)]
    test = [make_row(2, rejected=gen, split="test_seen_authors")]
    folder = tmp_path / "data" / "pairs"
    folder.mkdir(parents=True)
    # written in reverse name order: the loader still reads train first
    pq.write_table(pa.Table.from_pylist(test), folder / "test_seen_authors.parquet")
    pq.write_table(pa.Table.from_pylist(train), folder / "train.parquet")
    report = validate_pairs(load_pairs(tmp_path))
    assert reasons(report) == {"p2": "exact_duplicate"}
    assert [r["id"] for r in report.kept] == ["p0", "p1"]


def test_deterministic():
    rng = random.Random(9)
    base = words(60, rng)
    rows = [make_row(i, rejected=base if i == 0 else edit(base, 1, rng) if i % 3 else words(60, rng)) for i in range(12)]
    a, b = validate_pairs(rows), validate_pairs(list(rows))
    assert a.rejected == b.rejected and [r["id"] for r in a.kept] == [r["id"] for r in b.kept]
    assert a.counts()["near_duplicate"] == 8  # every edit of base; row 0 holds base itself


def test_a_generated_positive_shared_by_its_own_tasks_pairs_is_no_duplicate(tmp_path):
    # --positive mixed: one generated chosen faces every negative of its task
    positive, other = words(50), words(50)
    mine = dict(chosen_source="generated", chosen_strategy="style-matched", sample_id="s1")
    rows = [
        make_row(0, chosen=positive, strategy="randomize", **mine),
        make_row(1, chosen=positive, strategy="minimal-edit", **mine),
        make_row(2, chosen=positive, strategy="other-author", rejected_source="other-author", **mine),
        # the same text as another task's positive, or as a negative: still duplicates
        make_row(3, chosen=positive, **dict(mine, sample_id="s2")),
        make_row(4, chosen=other, rejected=positive, sample_id="s3"),
        make_row(5, chosen=positive, **dict(mine, author_id="someone-else")),
    ]
    report = validate_pairs(rows)
    assert reasons(report) == {"p3": "exact_duplicate", "p4": "exact_duplicate", "p5": "exact_duplicate"}
    # near duplicates: an edit of the shared positive in another task is still caught
    near = [*rows[:3], make_row(6, chosen=edit(positive, 1, random.Random(2)), **dict(mine, sample_id="s4"))]
    assert reasons(validate_pairs(near)) == {"p6": "near_duplicate"}
    # the cross-shard check of a built folder agrees
    from persrm_gen.dataset.crosscheck import CrossShardCheck

    folder = tmp_path / "pairs"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "train.parquet")
    check = CrossShardCheck()
    check.add_file(folder / "train.parquet")
    assert {k: v[0] for k, v in check.rejected().items()} == reasons(report)


def test_an_edit_of_a_generated_positive_is_no_duplicate_of_it(tmp_path):
    # --positive mixed: minimal-edit and axis rewrites of a generated positive are near copies
    # of it by design, and the task's other pairs hold that positive as their chosen
    rng = random.Random(5)
    positive, other_positive, real = words(50, rng), words(50, rng), words(50, rng)
    mine = dict(chosen_source="generated", chosen_strategy="style-matched", sample_id="s1")
    punctuated = positive.replace(" ", ", ", 3)  # word shingles ignore punctuation: Jaccard 1.0
    rows = [
        make_row(0, chosen=positive, strategy="mimic", **mine),
        make_row(1, chosen=positive, rejected=punctuated, strategy="axis-punctuation", rejected_source="edited", **mine),
        make_row(2, chosen=positive, rejected=edit(positive, 1, rng), strategy="minimal-edit", rejected_source="edited", **mine),
        # an edit of this positive made in another task (from its own chosen) is still a duplicate
        make_row(3, chosen=other_positive, rejected=edit(positive, 1, rng), strategy="minimal-edit",
                 rejected_source="edited", **dict(mine, sample_id="s2")),
        make_row(4, chosen=real, rejected=positive.replace(" ", "; ", 2), strategy="axis-punctuation",
                 rejected_source="edited", sample_id="s3"),
        # a generated positive quoting its context is a leak, in every pair of its task
        make_row(5, chosen=CONTEXT[0] + " " + words(10, rng), strategy="mimic", **dict(mine, sample_id="s4")),
    ]
    report = validate_pairs(rows)
    assert reasons(report) == {"p3": "near_duplicate", "p4": "near_duplicate", "p5": "leakage"}
    # two rewrites of one real chosen are near copies of each other by design too (--positive real
    # lost axis pairs this way on the example corpus), but not of another task's rewrite
    punctuated_real = real.replace(" ", ", ", 3)
    siblings = [
        make_row(6, chosen=real, rejected=edit(real, 1, rng), strategy="minimal-edit", rejected_source="edited", sample_id="s3"),
        make_row(7, chosen=real, rejected=punctuated_real, strategy="axis-punctuation", rejected_source="edited", sample_id="s3"),
        make_row(8, chosen=words(50, rng), rejected=real.replace(" ", "; ", 2), strategy="axis-punctuation", rejected_source="edited", sample_id="s6"),
    ]
    assert reasons(validate_pairs(siblings)) == {"p8": "near_duplicate"}
    # the cross-shard check of a built folder agrees, the rows split over two files
    from persrm_gen.dataset.crosscheck import CrossShardCheck

    folder = tmp_path / "pairs"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:2]), folder / "train-0.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:5]), folder / "train-1.parquet")
    check = CrossShardCheck()
    for f in sorted(folder.iterdir()):
        check.add_file(f)
    assert {k: v[0] for k, v in check.rejected().items()} == {"p3": "near_duplicate", "p4": "near_duplicate"}
