"""Splits and tasks: no author, genre or target text leaks from test into train."""

import json
from collections import Counter
from pathlib import Path

import pytest

from persrm_gen.authors.reader import load_authors
from persrm_gen.pipeline.corpus import Corpus
from persrm_gen.errors import InputError
from persrm_gen.pipeline.splits import plan_splits, read_test_authors
from persrm_gen.pipeline.tasks import TaskOptions, make_tasks, split_opening
from persrm_gen.prompts.renderer import PromptRenderer

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"


def _sentence(i: int, author: str) -> str:
    return f"Sentence number {i} was written by {author} with several plain words in it."


def write_authors(path: Path, n_authors=6, n_samples=6, genres=("essay",), numbered=False) -> Path:
    """``numbered``: sample ids "1", "2", ... per author, as corpora number them (the ids
    repeat across authors); otherwise the default ids "<author_id>-<index>"."""
    with path.open("w") as fh:
        for a in range(n_authors):
            aid = f"author-{a}"
            samples = [
                {"text": " ".join(_sentence(10 * s + k, aid) for k in range(5)), "genre": genres[(a + s) % len(genres)]}
                | ({"id": str(s + 1)} if numbered else {})
                for s in range(n_samples)
            ]
            fh.write(json.dumps({"author_id": aid, "samples": samples}) + "\n")
    return path


def _plan(authors, **kw):
    args = dict(test_authors=["author-0", "author-1"], holdout_genre=None, test_fraction=0.34, context_size=2, seed=0)
    args.update(kw)
    return plan_splits(authors, **args)


@pytest.mark.parametrize("numbered", [False, True])
def test_unseen_authors_and_genre_never_reach_train(tmp_path, numbered):
    authors = load_authors(write_authors(tmp_path / "a.jsonl", genres=("essay", "email"), numbered=numbered))
    plan = _plan(authors, holdout_genre="email")
    tasks, _ = make_tasks(authors, plan, PromptRenderer(), TaskOptions(context_size=2), seed=0)
    train = [t for t in tasks if t.split == "train"]
    assert train and {t.author_id for t in train}.isdisjoint({"author-0", "author-1"})
    assert all(t.genre != "email" for t in train)
    assert all(t.genre == "email" for t in tasks if t.split == "test_unseen_genre")
    train_texts = {c for t in train for c in t.context} | {t.target for t in train}
    by_id = {(a.author_id, s.id): s.text for a in authors for s in a.samples}
    for t in tasks:
        assert by_id[t.author_id, t.sample_id] not in t.context  # the target is never its own context
        if t.split == "test_seen_authors":
            assert not any(t.target in x for x in train_texts)


@pytest.mark.parametrize("numbered", [False, True])
def test_seen_authors_get_test_samples_from_different_samples(tmp_path, numbered):
    authors = load_authors(write_authors(tmp_path / "a.jsonl", numbered=numbered))
    plan = _plan(authors)
    counts = Counter(plan.split_of.values())
    assert counts["test_unseen_authors"] == 12 and counts["test_seen_authors"] == 4 * 2
    for a in authors[2:]:
        splits = [plan.split_of[a.author_id, s.id] for s in a.samples]
        assert "train" in splits and "test_seen_authors" in splits


@pytest.mark.parametrize("numbered", [False, True])
def test_other_author_negatives_respect_split_groups(tmp_path, numbered):
    authors = load_authors(write_authors(tmp_path / "a.jsonl", numbered=numbered))
    plan = _plan(authors)
    opt = TaskOptions(context_size=2)
    tasks, _ = make_tasks(authors, plan, PromptRenderer(), opt, seed=0)
    corpus = Corpus(authors, plan, opt, seed=0)
    unseen_text = " ".join(s.text for a in authors[:2] for s in a.samples)
    for t in tasks:
        other = corpus.other_author_text(t)
        assert other is not None and t.author_id not in other
        if t.split in ("train", "test_seen_authors"):
            assert other not in unseen_text  # unseen authors' text never appears in train pairs
            for s in corpus.random_style_samples(t, 2):
                assert s not in unseen_text


def test_sample_ids_numbered_per_author_give_distinct_correct_tasks(tmp_path):
    authors = load_authors(write_authors(tmp_path / "a.jsonl", n_samples=8, numbered=True))
    plan = _plan(authors)
    assert len(plan.split_of) == 6 * 8  # one entry per (author, sample), none overwritten
    assert {plan.split_of[f"author-{a}", str(s)] for a in (0, 1) for s in range(1, 9)} == {"test_unseen_authors"}
    tasks, _ = make_tasks(authors, plan, PromptRenderer(), TaskOptions(context_size=2), seed=0)
    texts = {(a.author_id, s.id): s.text for a in authors for s in a.samples}
    assert len({t.id for t in tasks}) == len({(t.author_id, t.sample_id) for t in tasks}) == len(tasks) == 6 * 8
    for t in tasks:
        assert t.split == plan.split_of[t.author_id, t.sample_id]
        assert t.target in texts[t.author_id, t.sample_id]  # the target is this author's sample
        own = {text for (aid, sid), text in texts.items() if aid == t.author_id and sid != t.sample_id}
        assert set(t.context) <= own  # context: the same author's other samples only
    corpus = Corpus(authors, plan, TaskOptions(context_size=2), seed=0)
    unseen = {texts[k] for k in texts if k[0] in ("author-0", "author-1")}
    for t in tasks:
        other = corpus.other_author_text(t)
        source = [k for k, text in texts.items() if other in text]
        assert source and all(aid != t.author_id for aid, _ in source)
        if t.split in ("train", "test_seen_authors"):  # no unseen author's "1" mistaken for a train "1"
            assert not any(other in text for text in unseen)


def test_test_authors_option(tmp_path):
    known = [f"author-{i}" for i in range(5)]
    assert len(read_test_authors("2", known, seed=1)) == 2
    assert read_test_authors("2", known, seed=1) == read_test_authors("2", known, seed=1)
    assert read_test_authors(None, known, seed=0) and len(read_test_authors(None, known, seed=0)) == 1
    f = tmp_path / "test_authors.txt"
    f.write_text("author-1\n# comment\nnobody\n")
    with pytest.raises(InputError) as err:
        read_test_authors(str(f), known, seed=0)
    assert str(err.value) == f"{f}:3: unknown author id 'nobody'"
    with pytest.raises(InputError, match="needs fewer"):
        read_test_authors("5", known, seed=0)


def test_unknown_holdout_genre_is_an_error(tmp_path):
    authors = load_authors(write_authors(tmp_path / "a.jsonl"))
    with pytest.raises(InputError, match="no sample has that genre"):
        _plan(authors, holdout_genre="poetry")


def test_opening_and_continuation_split_at_sentences():
    text = "Short one. This second sentence makes the opening long enough to count. " + " ".join(
        f"Then sentence {i} continues the text for the target." for i in range(4)
    )
    opening, rest = split_opening(text, TaskOptions())
    assert opening.endswith("count.") and rest.startswith("Then sentence 0")
    assert split_opening("Too short. Really.", TaskOptions()) is None


@pytest.mark.skipif(not EXAMPLES.exists(), reason="examples missing")
def test_examples_give_tasks_in_every_split():
    authors = load_authors(EXAMPLES, min_samples=4)
    plan = plan_splits(authors, test_authors=read_test_authors(None, [a.author_id for a in authors], 0),
                       holdout_genre="speech", test_fraction=0.2, context_size=3, seed=0)
    tasks, skipped = make_tasks(authors, plan, PromptRenderer(), TaskOptions(), seed=0)
    assert {t.split for t in tasks} == {"train", "test_seen_authors", "test_unseen_authors", "test_unseen_genre"}


def test_max_targets_per_author_keeps_every_split(tmp_path):
    from persrm_gen.pipeline.options import BuildOptions
    from persrm_gen.pipeline.prepare import prepare

    path = write_authors(tmp_path / "a.jsonl", n_authors=5, n_samples=8)
    full = prepare(BuildOptions(authors=path, context_size=2, test_authors="1"))[3]
    opts = BuildOptions(authors=path, context_size=2, test_authors="1", max_targets_per_author=3)
    limited = prepare(opts)[3]
    per_author = Counter(t.author_id for t in limited)
    assert set(per_author.values()) == {3}
    assert {t.split for t in limited} == {t.split for t in full}
    assert [t.id for t in limited] == [t.id for t in prepare(opts)[3]]  # seeded, stable


@pytest.mark.parametrize("numbered", [False, True])
def test_other_author_samples_are_one_other_authors_same_genre_texts_without_leakage(tmp_path, numbered):
    """The samples a generated other-author negative is conditioned on (``--positive mixed``):
    texts of ONE other author of the task's genre, drawn under other_author_text's rules."""
    authors = load_authors(write_authors(tmp_path / "a.jsonl", genres=("essay", "email"), numbered=numbered))
    plan = _plan(authors)
    opt = TaskOptions(context_size=2, context_max_words=12)
    tasks, _ = make_tasks(authors, plan, PromptRenderer(), opt, seed=0)
    corpus = Corpus(authors, plan, opt, seed=0)
    texts = {(a.author_id, s.id): (s.text, s.genre) for a in authors for s in a.samples}
    unseen = {text for (aid, _), (text, _) in texts.items() if aid in ("author-0", "author-1")}
    test_seen = {texts[k][0] for k, split in plan.split_of.items() if split == "test_seen_authors"}
    writers = set()
    for t in tasks:
        samples = corpus.other_author_samples(t)
        assert samples == corpus.other_author_samples(t)  # seeded by the task
        assert 1 <= len(samples) <= len(t.context) and len(set(samples)) == len(samples)
        sources = [[k for k, (text, genre) in texts.items() if text.startswith(s.rstrip("."))] for s in samples]
        assert all(len(src) == 1 for src in sources), sources
        (author,) = {src[0][0] for src in sources}
        writers.add(author)
        assert author != t.author_id
        assert all(texts[src[0]][1] == t.genre for src in sources)
        assert all(len(s.split()) <= 12 for s in samples)  # capped like context
        assert not any(texts[src[0]][0] in test_seen for src in sources)  # a held-out target: never reused
        if t.split in ("train", "test_seen_authors"):
            assert not any(texts[src[0]][0] in unseen for src in sources)
    assert len(writers) > 2
