"""Negatives in the chosen text's form (issue 13 item 2): length within ±15% cut at a sentence
end, the same kind of ending, the same paragraphing; ``--positive mixed`` is seeded."""

from __future__ import annotations

import pytest

from persrm_gen.generator.candidates import CandidateFactory, CandidateOptions, clean_positive, length_sides, to_candidate
from persrm_gen.generator.form import LONGER, SHORTER, Form, FormMismatch, bounds, ends_clean, fit, sides, token_budget
from persrm_gen.style import n_words
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.records import Candidate, Task

POSITIVE = ("The parser reads the file once. It keeps every token in a list.\n\n"
            "Then the compiler walks that list twice. Nothing else is read from disk.")  # 26 words, 2 paragraphs
LONG = ("A new module would help here. It would keep the old names working. Every caller could move at its "
        "own pace. Nobody would need to rewrite anything at once. The cost is one more file to maintain. "
        "We think that cost is small. And then it goes on and on without")


def test_a_long_negative_is_cut_at_a_sentence_end_inside_the_window_and_laid_out_like_the_positive():
    form = Form.of(POSITIVE)
    assert form.words == 26 and form.blocks == (2, 2) and form.separator == "\n\n" and form.clean_end
    out = fit(LONG, form)
    lo, hi = bounds(26)
    assert lo <= n_words(out) <= hi and ends_clean(out)
    assert out.count("\n\n") == 1 and "\n" not in out.replace("\n\n", "")
    assert out.replace("\n\n", " ") == ". ".join(LONG.split(". ")[:4]) + "."  # whole sentences, in order


def test_a_negative_that_cannot_reach_the_window_is_refused():
    form = Form.of(POSITIVE)
    with pytest.raises(FormMismatch):
        fit("Too short to pass.", form)
    with pytest.raises(FormMismatch):  # long, but no sentence end between 23 and 29 words
        fit(" ".join(["word"] * 40) + ".", form)


def test_endings_follow_the_positive_both_ways():
    clean = Form.of("one two three four five six seven eight nine ten.")
    with pytest.raises(FormMismatch):  # the positive ends cleanly: a negative cut mid-sentence is not kept
        fit("uno dos tres cuatro cinco seis siete ocho nueve diez once and no end", clean)
    open_end = Form.of("- one two three\n- four five six\n- seven eight nine ten")
    assert not open_end.clean_end and open_end.listed
    assert fit("Uno dos tres cuatro. Cinco seis siete ocho nueve diez.", open_end) == \
        "Uno dos tres cuatro. Cinco seis siete ocho nueve diez"


def test_a_positive_cut_mid_sentence_ends_at_its_last_sentence_when_little_is_lost():
    assert clean_positive("First sentence is here and long enough. Second one is also complete. And a tail") == \
        "First sentence is here and long enough. Second one is also complete."
    assert clean_positive("A heading without a stop") == "A heading without a stop"


def test_the_token_budget_follows_the_words_and_the_cap():
    assert token_budget(100, 1000) > bounds(100)[1] * 1.3
    assert token_budget(100, 120) == 120 and token_budget(5, 1000) == 48
    # --max-new-tokens is a cap: the floor of 48 applies only below it, never above
    assert token_budget(5, 40) == 40 and token_budget(100, 16) == 16


def test_no_generation_request_asks_for_more_than_max_new_tokens():
    task = _task(0)  # a 16-word target: its own budget would be the floor of 48
    for positive in ("mixed", "style-matched"):
        for chat in (True, False):
            factory = _factory(positive, chat=chat, max_new_tokens=40)
            jobs = list(factory.positive_jobs([task]))
            chosen = Candidate(task.id, task.target, "generated", "style-matched")
            jobs += factory.negative_jobs(task, chosen)
            asked = [j.request.max_tokens for j in jobs if j.request is not None]  # rule-based edits ask nothing
            assert asked and all(t <= 40 for t in asked), asked


def _task(i: int) -> Task:
    target = "The author wrote this text. It has two sentences and some more words in it."
    return Task(id=f"t{i}", author_id="a", sample_id=str(i), genre="essay", split="train", query="Continue.",
                target=target, context=("One sample text here.", "Another sample text."), opening="Opening.")


class _NoCorpus:
    def other_author_text(self, task, fits=None):
        return None

    def other_author_samples(self, task):
        return []

    def random_style_samples(self, task, k, max_words=None):
        return ["Some other writer's words."]


def _factory(positive: str, seed: int = 0, chat: bool = True, **more) -> CandidateFactory:
    opt = CandidateOptions(model="m", positive=positive, seed=seed, **more)
    return CandidateFactory(PromptRenderer(), opt, chat=chat, corpus=_NoCorpus())


def test_mixed_positives_are_seeded_and_both_kinds_occur():
    tasks = [_task(i) for i in range(40)]
    kinds = [j.strategy for j in _factory("mixed", mixed_share=0.5).positive_jobs(tasks)]
    assert kinds == [j.strategy for j in _factory("mixed", mixed_share=0.5).positive_jobs(tasks)]
    assert 10 <= kinds.count("style-matched") <= 30 and kinds.count("real") + kinds.count("style-matched") == 40
    assert kinds != [j.strategy for j in _factory("mixed", mixed_share=0.5, seed=1).positive_jobs(tasks)]
    assert {j.strategy for j in _factory("real").positive_jobs(tasks)} == {"real"}
    # --mixed-share: a larger share generates the same targets and more
    more = [j.strategy for j in _factory("mixed", mixed_share=0.8).positive_jobs(tasks)]
    assert more.count("style-matched") > kinds.count("style-matched") + 5
    assert all(m == "style-matched" for k, m in zip(kinds, more) if k == "style-matched")


def test_requests_carry_the_chosen_texts_word_budget_and_negatives_follow_a_generated_positive():
    task = _task(0)
    chosen = Candidate(task.id, " ".join(["word"] * 59) + " end.", "generated", "style-matched")
    jobs = _factory("mixed").negative_jobs(task, chosen)
    # a generated positive faces a weaker mimic: one of the author's samples, not all
    mimic = next(j for j in jobs if j.strategy == "mimic")
    shown = mimic.request.messages[-1].content
    assert "One sample text here." in shown and "Another sample text." not in shown
    real = _factory("real").negative_jobs(task, Candidate(task.id, chosen.text, "author", "real"))
    assert "Another sample text." in next(j for j in real if j.strategy == "mimic").request.messages[-1].content
    randomize = next(j for j in jobs if j.strategy == "randomize")
    assert "about 60 words" in randomize.request.messages[-1].content
    assert randomize.request.max_tokens == token_budget(60, 320)
    reply = "Here it is:\n\n" + " ".join(["Short words make a sentence."] * 20)
    cand = to_candidate(randomize, reply)
    assert isinstance(cand, Candidate) and bounds(60)[0] <= n_words(cand.text) <= bounds(60)[1]
    assert to_candidate(randomize, "Far too short a reply here.").reason == "length_mismatch"


def test_under_mixed_a_real_positive_faces_no_machine_written_negative():
    """Issue 13: a real positive against a whole machine-written text (mimic, randomize) is
    the "human text wins" cue (blind judge: the chosen had the longer words in every such
    pair); under ``mixed`` it faces human text and edits of itself only. ``real`` keeps
    PersRM-R1's setting: the author's text against every generated negative."""
    task = _task(0)
    real = Candidate(task.id, task.target, "author", "real")
    mixed = {j.strategy for j in _factory("mixed").negative_jobs(task, real)}
    assert not mixed & {"mimic", "randomize"} and "minimal-edit" in mixed
    assert {"mimic", "randomize"} <= {j.strategy for j in _factory("real").negative_jobs(task, real)}
    generated = Candidate(task.id, task.target, "generated", "style-matched")
    assert {"mimic", "randomize"} <= {j.strategy for j in _factory("mixed").negative_jobs(task, generated)}
    # by design, not a loss: none is counted as a strategy that could make no negative
    assert _factory("mixed").negatives_for(real) == tuple(
        s for s in CandidateOptions(model="m").negatives if s not in ("mimic", "randomize"))


def test_a_generated_positive_ends_cleanly_and_is_laid_out_like_the_authors_target():
    (job,) = _factory("style-matched").positive_jobs([_task(0)])
    assert "about 15 words in one paragraph" in job.request.messages[-1].content
    cand = to_candidate(job, "Sure, here it is:\n\nThe first part is here.\n\nThe second part is also here. And a tail")
    assert cand.text == "The first part is here. The second part is also here."


def test_the_cut_is_at_the_sentence_end_nearest_the_positives_length_not_the_longest():
    text = " ".join(["word"] * 24) + " end. " + " ".join(["more"] * 3) + " stop. Then a tail"  # ends at 25 and 29
    assert n_words(fit(text, Form.of(POSITIVE))) == 25  # 26 wanted; 29 is in the window too


def test_a_side_asks_for_the_nearest_end_on_that_side_and_sides_says_which_exist():
    text = " ".join(["word"] * 23) + " end. " + " ".join(["more"] * 3) + " stop. Then a tail"  # ends at 24 and 28
    form = Form.of(POSITIVE)  # 26 words: window 23..29
    assert sides(text, form) == {LONGER, SHORTER}
    assert n_words(fit(text, form, side=LONGER)) == 28 and n_words(fit(text, form, side=SHORTER)) == 24
    short_only = " ".join(["word"] * 23) + " end."
    assert sides(short_only, form) == {SHORTER}
    assert n_words(fit(short_only, form, side=LONGER)) == 24  # no longer end: the nearest
    assert sides("Too short.", form) == frozenset()


def test_whole_text_negatives_are_balanced_longer_and_shorter_per_strategy_and_edits_keep_the_nearest():
    # every reply could be cut either side; the nearest end is always the shorter one
    reply = " ".join(["word"] * 14) + " end. " + " ".join(["more"] * 2) + " stop. And then more."  # 15, 18
    chosen = {i: Candidate(f"t{i}", "The author wrote this text. It has two sentences and some more words in it now.",
                           "author", "real") for i in range(20)}
    jobs = [j for i in range(20) for j in _factory("real", chat=False).negative_jobs(_task(i), chosen[i])]
    raws = [reply if j.request is not None else None for j in jobs]
    side = length_sides(jobs, raws, seed=0)
    assert side == length_sides(jobs, raws, seed=0)
    for strategy in ("mimic", "randomize"):
        picked = [s for j, s in zip(jobs, side) if j.strategy == strategy]
        assert picked.count(LONGER) == picked.count(SHORTER) == 10
        longer = [n_words(to_candidate(j, r, s).text) > 16 for j, r, s in zip(jobs, raws, side) if j.strategy == strategy]
        assert sum(longer) == 10
    assert all(s is None for j, s in zip(jobs, side) if j.strategy not in ("mimic", "randomize", "other-author"))
    # forced sides count: a reply that can only be shorter takes it, the free ones make up for it
    short_reply = " ".join(["word"] * 13) + " end."
    raws = [short_reply if j.request is not None and j.task.id in ("t0", "t1", "t2", "t3") else r for j, r in zip(jobs, raws)]
    picked = [s for j, s in zip(jobs, length_sides(jobs, raws, seed=0)) if j.strategy == "mimic"]
    assert picked.count(LONGER) == picked.count(SHORTER) == 10


def test_drawn_negatives_keep_the_draw_nearest_the_positives_surface():
    from persrm_gen.dataset.blind_audit import surface_distance
    from persrm_gen.generator.candidates import nearest_draw

    task = _task(0)
    chosen = Candidate(task.id, "Parsimonious grammars, unfortunately, complicate considerable implementations; "
                       "nevertheless, extraordinary simplifications emerge eventually.", "author", "real")
    jobs = _factory("real", negative_draws=3).negative_jobs(task, chosen)
    factory = _factory("real", negative_draws=3)
    by = {j.strategy: factory.draws(j) for j in jobs}
    assert len(by["mimic"]) == len(by["randomize"]) == 3 and len(by["minimal-edit"]) == 1
    keys = {r.cache_key("local") for r in by["mimic"]}
    assert len(keys) == 3 and by["mimic"][0] == next(j for j in jobs if j.strategy == "mimic").request
    assert len(_factory("real").draws(jobs[0])) == 1  # one draw by default
    mimic = next(j for j in jobs if j.strategy == "mimic")
    plain = "It is a big day and we go out to see."  # short words, no commas
    like = "Considerable grammars, unfortunately, complicate parsimonious implementations; eventually, remarkable simplifications emerge."
    assert all(isinstance(to_candidate(mimic, t), Candidate) for t in (plain, like))
    assert nearest_draw(mimic, [plain, like, None], surface_distance) == 1
    assert nearest_draw(mimic, ["Too short.", None], surface_distance) == 0  # none usable: the first


def test_an_axis_negative_takes_another_axis_when_its_own_cannot_change_the_chosen_text():
    from persrm_gen.dataset.validators import normalize

    task = _task(0)
    one_par = Candidate(task.id, "However the team has worked on a new loader. It reads files, and it is big.", "author",
                        "real")
    strategies = set()
    for seed in range(12):
        factory = _factory("real", seed=seed, chat=False, axes=("structure", "punctuation", "vocabulary"))
        (axis,) = [j for j in factory.negative_jobs(task, one_par) if j.strategy.startswith("axis-")]
        strategies.add(axis.strategy)
        assert normalize(axis.text) != normalize(one_par.text)
    assert strategies == {"axis-punctuation"}  # structure does not apply, vocabulary finds too few words
    # an instruction model is never asked for a structure rewrite of one paragraph either
    chat = {j.strategy for s in range(12) for j in _factory("real", seed=s, axes=("structure", "punctuation"))
            .negative_jobs(task, one_par) if j.strategy.startswith("axis-")}
    assert chat == {"axis-punctuation"}


def test_a_generated_positive_far_shorter_than_the_target_or_degenerate_is_a_problem():
    from persrm_gen.generator.candidates import POSITIVE_MIN_SHARE, positive_problem

    target = " ".join(["word"] * 99) + " end."  # 100 words
    enough = int(100 * POSITIVE_MIN_SHARE)
    assert positive_problem(" ".join(["word"] * (enough - 2)) + " end.", target) == "too_short"
    assert positive_problem(" ".join(["word"] * (enough - 1)) + " end.", target) is None
    # what the embedded base model wrote for a PEP target once: one version-number run
    garbage = "For example, when you configure a python version 3.6.x.5.22.020.020-2.60.0.0.1.50.00.00.20.10.10.20"
    assert positive_problem(garbage + " " + " ".join(["word"] * 60) + ".", target) == "degenerate"
    url = "See https://packaging.python.org/en/latest/specifications/core-metadata/ for it. "
    assert positive_problem(url + " ".join(["word"] * 60) + ".", target) is None


def test_a_target_no_strategy_can_make_a_negative_for_is_counted_not_lost_silently():
    import asyncio
    from collections import Counter
    from pathlib import Path

    from dataclasses import replace

    from persrm_gen.pipeline.candidates import make_candidates
    from persrm_gen.pipeline.options import BuildOptions

    opts = BuildOptions(authors=Path("authors.jsonl"), positive="real", negatives=("minimal-edit", "axes"))
    factory = _factory("real", chat=False, negatives=("minimal-edit", "axes"))
    plain = "Xylophones zigzag quietly over the moor."  # no synonym, one sentence: nothing any edit can change
    tasks = [replace(_task(0), target=plain), _task(1)]
    drops: Counter = Counter()
    chosen, negatives = asyncio.run(make_candidates(opts, None, factory, tasks, None, None, drops))
    assert set(chosen) == {"t0", "t1"}
    made = Counter((n.task_id, n.strategy.split("-")[0]) for n in negatives)
    assert ("t0", "minimal") not in made and ("t0", "axis") not in made
    assert drops["no_negative_minimal-edit"] >= 1 and drops["no_negative_axes"] >= 1
    assert drops["no_negative_axes"] == 2 - sum(1 for t, s in made if s == "axis")
