"""draws.py and the Corpus built on it pick exactly what the plain-list code picked
(same seeds, same texts), so indexing for speed changes no dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from persrm_gen.authors.reader import load_authors
from persrm_gen.pipeline.corpus import Corpus
from persrm_gen.pipeline.draws import Excluding, shuffled
from persrm_gen.pipeline.splits import plan_splits
from persrm_gen.pipeline.tasks import TaskOptions, make_tasks, split_opening
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.textutil import cap_words, rng_for


@pytest.mark.parametrize("n", [0, 1, 2, 5, 6, 21, 22, 100, 1000])
def test_shuffled_is_random_sample_of_everything(n):
    pool = [f"x{i}" for i in range(n)]
    for seed in range(5):
        assert list(shuffled(random.Random(seed), pool)) == random.Random(seed).sample(pool, n)


def test_shuffled_leaves_the_rng_where_sample_does():
    a, b = random.Random(3), random.Random(3)
    list(shuffled(a, range(50)))
    b.sample(range(50), 50)
    assert a.random() == b.random()


def test_excluding_matches_a_filtered_list():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randrange(0, 40)
        base = [f"r{i}" for i in range(n)]
        lo = rng.randrange(0, n + 1)
        hi = rng.randrange(lo, n + 1)
        drop = sorted(rng.sample(range(n), rng.randrange(0, n + 1)))
        expected = [x for i, x in enumerate(base) if not (lo <= i < hi) and i not in set(drop)]
        view = Excluding(base, lo, hi, drop)
        assert len(view) == len(expected)
        assert list(view) == expected and [view[i] for i in range(len(view))] == expected
        if expected:
            k = min(3, len(expected))
            assert random.Random(n).sample(view, k) == random.Random(n).sample(expected, k)
        with pytest.raises(IndexError):
            view[len(expected)]


class PlainCorpus:
    """The plain-list Corpus this replaced (a scan of every row per task): the reference."""

    def __init__(self, authors, plan, opt, seed):
        self.seed, self.opt = seed, opt
        train = {(aid, sid) for aid, pool in plan.train_pool.items() for sid in pool}
        self.rows = []
        for a in authors:
            for s in a.samples:
                group = "train" if (a.author_id, s.id) in train else plan.split_of[a.author_id, s.id]
                if group != "test_seen_authors":
                    self.rows.append((a.author_id, s.genre, s.text, group))

    def candidates(self, task, same_genre):
        group = "train" if task.split in ("train", "test_seen_authors") else task.split
        rows = [r for r in self.rows if r[0] != task.author_id and r[3] in (group, "train")]
        if task.split in ("train", "test_seen_authors"):
            rows = [r for r in rows if r[3] == "train"]
        if same_genre:
            rows = [r for r in rows if r[1] == task.genre]
        return [r for r in rows if r[3] == group] or rows

    def other_author_text(self, task):
        pool = [r[2] for r in self.candidates(task, True)]
        for text in rng_for(self.seed, "other-author", task.id).sample(pool, len(pool)):
            if task.query_is_prompt:
                return cap_words(text, self.opt.target_max_words)
            cut = split_opening(text, self.opt)
            if cut is not None:
                return cut[1]
        return None

    def random_style_samples(self, task, k, max_words=None):
        rows = self.candidates(task, False)
        pool = [r[2] for r in rows if r[1] != task.genre] or [r[2] for r in rows]
        chosen = rng_for(self.seed, "random-style", task.id).sample(pool, min(k, len(pool))) if pool else []
        return [cap_words(t, max_words or self.opt.context_max_words) for t in chosen]


def _corpus_file(path: Path, seed: int) -> Path:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "light", "paper", "quiet", "north"]
    with path.open("w") as fh:
        for a in range(12):
            samples = []
            for s in range(rng.randrange(4, 9)):
                sents = [" ".join(rng.choice(words) for _ in range(rng.randrange(3, 12))).capitalize() + "."
                         for _ in range(rng.randrange(1, 12))]
                sample = {"id": str(s + 1), "text": " ".join(sents), "genre": rng.choice(["essay", "letter", "poem"])}
                if rng.random() < 0.2:
                    sample["prompt"] = "Write something."
                samples.append(sample)
            fh.write(json.dumps({"author_id": f"a{a}", "samples": samples}) + "\n")
    return path


@pytest.mark.parametrize("seed", range(4))
def test_corpus_picks_what_the_plain_list_code_picked(tmp_path, seed):
    authors = load_authors(_corpus_file(tmp_path / "a.jsonl", seed))
    opt = TaskOptions(context_size=2)
    plan = plan_splits(authors, test_authors=["a0", "a1", "a2"], holdout_genre="poem" if seed % 2 else None,
                       test_fraction=0.3, context_size=2, seed=seed)
    tasks, _ = make_tasks(authors, plan, PromptRenderer(), opt, seed=seed)
    fast, plain = Corpus(authors, plan, opt, seed), PlainCorpus(authors, plan, opt, seed)
    assert len(tasks) > 30 and {t.split for t in tasks} >= {"train", "test_unseen_authors"}
    for t in tasks:
        assert fast.other_author_text(t) == plain.other_author_text(t)
        for k in (1, 2, 3):
            assert fast.random_style_samples(t, k) == plain.random_style_samples(t, k)


def test_other_author_text_prefers_one_that_fits_the_chosen_texts_form(tmp_path):
    authors = load_authors(_corpus_file(tmp_path / "a.jsonl", 0))
    opt = TaskOptions(context_size=2)
    plan = plan_splits(authors, test_authors=["a0", "a1"], holdout_genre=None, test_fraction=0.3, context_size=2, seed=0)
    tasks, _ = make_tasks(authors, plan, PromptRenderer(), opt, seed=0)
    corpus = Corpus(authors, plan, opt, 0)
    short = lambda text: len(text.split()) <= 25  # noqa: E731
    moved = 0
    for t in tasks:
        first, fitted = corpus.other_author_text(t), corpus.other_author_text(t, fits=short)
        if first is None:
            continue
        assert short(fitted) or fitted == first  # the first text when none fits: counted later
        moved += fitted != first
    assert moved > 0
