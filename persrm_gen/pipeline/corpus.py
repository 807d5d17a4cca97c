"""Other authors' real text, chosen so that no test text reaches training.

Train-pool samples (see splits.py) are the only texts shared across split groups;
samples of test authors and of a held-out genre are only used inside their own split.

Rows are indexed once by split group (and genre); a task's pool is a view of one such
list without the task author's rows (contiguous, since rows are added author by
author), so picking costs the same for 10 authors as for 10,000 (see draws.py). A row
holds its sample, not its text: a build's samples are ``AuthorRef`` samples whose text
stays in the authors file until drawn, so the corpus does not grow with the texts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from persrm_gen.pipeline.draws import Excluding, shuffled
from persrm_gen.pipeline.splits import SplitPlan
from persrm_gen.pipeline.tasks import TaskOptions, split_opening
from persrm_gen.records import Task
from persrm_gen.textutil import cap_words, rng_for

_TRAIN_GROUP = ("train", "test_seen_authors")
OTHER_AUTHOR_TRIES = 20  # other authors' texts looked at for one that fits the chosen text's length
# Cuts of other authors' texts kept for reuse: a cut holds a copy of its text, so an unbounded
# cache grew with the corpus (a build cuts each text once per shard at most, then rarely again).
OPENINGS_KEPT = 8192


class _Row(NamedTuple):
    author_id: str
    genre: str
    sample: Any  # a Sample, or an authors.reader.SampleRef whose text is read from the file when asked for
    group: str

    @property
    def text(self) -> str:
        return self.sample.text


class _Index:
    """Row numbers of one group (or group and genre) in file order, with each author's span."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.span: dict[str, tuple[int, int]] = {}  # author_id -> [lo, hi) in rows
        self.genre_pos: dict[str, list[int]] = {}  # genre -> positions in rows

    def add(self, row: int, r: _Row) -> None:
        lo, hi = self.span.get(r.author_id, (len(self.rows), len(self.rows)))
        if hi != len(self.rows):  # the loader rejects a repeated author_id; spans rely on it
            raise ValueError(f"rows of author {r.author_id!r} are not contiguous")
        self.genre_pos.setdefault(r.genre, []).append(len(self.rows))
        self.rows.append(row)
        self.span[r.author_id] = (lo, len(self.rows))

    def others(self, author_id: str, drop_genre: str | None = None) -> Excluding:
        """Rows of every author but ``author_id`` (and, with ``drop_genre``, of other genres)."""
        lo, hi = self.span.get(author_id, (0, 0))
        drop = self.genre_pos.get(drop_genre, []) if drop_genre is not None else []
        return Excluding(self.rows, lo, hi, drop)


class Corpus:
    def __init__(self, authors, plan: SplitPlan, task_opt: TaskOptions, seed: int):
        self.seed = seed
        self.opt = task_opt
        # every sample usable as other-author text, in file order
        self._rows: list[_Row] = []
        self._by_group: dict[str, _Index] = {}
        self._by_group_genre: dict[tuple[str, str], _Index] = {}
        train_pool = {(aid, sid) for aid, pool in plan.train_pool.items() for sid in pool}
        for a in authors:
            for s in a.samples:
                key = (a.author_id, s.id)
                group = "train" if key in train_pool else plan.split_of[key]
                if group == "test_seen_authors":
                    continue  # a held-out target of a seen author: never reused
                row = _Row(a.author_id, s.genre, s, group)
                self._by_group.setdefault(group, _Index()).add(len(self._rows), row)
                self._by_group_genre.setdefault((group, s.genre), _Index()).add(len(self._rows), row)
                self._rows.append(row)
        self._openings: dict[int, tuple[str, str] | None] = {}  # row -> split_opening, the latest OPENINGS_KEPT

    def _index(self, group: str, genre: str | None) -> _Index:
        found = self._by_group.get(group) if genre is None else self._by_group_genre.get((group, genre))
        return found or _Index()

    def _candidates(self, task: Task, same_genre: bool) -> tuple[_Index, Excluding]:
        """Other authors' rows a task may use: train texts for train and test_seen tasks;
        texts of the task's own split group for test tasks, else train texts."""
        genre = task.genre if same_genre else None
        if task.split not in _TRAIN_GROUP:
            index = self._index(task.split, genre)
            pool = index.others(task.author_id)
            if len(pool):
                return index, pool
        index = self._index("train", genre)
        return index, index.others(task.author_id)

    def _opening(self, row: int) -> tuple[str, str] | None:
        if row not in self._openings:
            if len(self._openings) >= OPENINGS_KEPT:  # bounded: the oldest cut goes first
                del self._openings[next(iter(self._openings))]
            self._openings[row] = split_opening(self._rows[row].text, self.opt)
        return self._openings[row]

    def other_author_text(self, task: Task, fits: Callable[[str], bool] | None = None) -> str | None:
        """A continuation written by another author of the same genre, cut like the target:
        the first (in seeded order) that ``fits`` the chosen text's form, among the first
        ``OTHER_AUTHOR_TRIES``; else the first one (the candidates stage then counts it)."""
        _, pool = self._candidates(task, same_genre=True)
        rng = rng_for(self.seed, "other-author", task.id)
        first, tried = None, 0
        for row in shuffled(rng, pool):
            if tried >= OTHER_AUTHOR_TRIES:
                break
            if task.query_is_prompt:
                text = cap_words(self._rows[row].text, self.opt.target_max_words)
            else:
                cut = self._opening(row)
                if cut is None:
                    continue
                text = cut[1]
            if fits is None or fits(text):
                return text
            first, tried = first if first is not None else text, tried + 1
        return first

    def other_author_samples(self, task: Task) -> list[str]:
        """Up to ``len(task.context)`` texts of ONE other author of the task's genre, capped
        like context: what a generated other-author negative is conditioned on when the
        task's positive is generated (a real other author's text facing a machine-written
        chosen is "the human text loses", the cue the generated positive was to remove).
        The same pool as :meth:`other_author_text` (no test text reaches a train task); the
        author is the first, in seeded order, with as many texts as the task's context
        among the first ``OTHER_AUTHOR_TRIES`` looked at, else the one with the most."""
        index, pool = self._candidates(task, same_genre=True)
        rng = rng_for(self.seed, "other-author-samples", task.id)
        k = len(task.context)
        best: str | None = None
        for tried, row in enumerate(shuffled(rng, pool)):
            author = self._rows[row].author_id
            if best is None or _size(index, author) > _size(index, best):
                best = author
            if _size(index, best) >= k or tried + 1 >= OTHER_AUTHOR_TRIES:
                break
        if best is None:
            return []
        lo, hi = index.span[best]
        picked = rng.sample(range(lo, hi), min(k, hi - lo))
        return [cap_words(self._rows[index.rows[i]].text, self.opt.context_max_words) for i in picked]

    def random_style_samples(self, task: Task, k: int, max_words: int | None = None) -> list[str]:
        """Texts by other writers, preferably of another genre, to steer a base model away."""
        index, rows = self._candidates(task, same_genre=False)
        other_genre: Sequence[int] = index.others(task.author_id, drop_genre=task.genre)
        pool = other_genre if len(other_genre) else rows
        rng = rng_for(self.seed, "random-style", task.id)
        chosen = rng.sample(pool, min(k, len(pool))) if len(pool) else []
        cap = max_words or self.opt.context_max_words
        return [cap_words(self._rows[row].text, cap) for row in chosen]


def _size(index: _Index, author_id: str) -> int:
    lo, hi = index.span[author_id]
    return hi - lo
