"""Author- and genre-level splits, decided before any generation so nothing leaks.

* ``test_unseen_genre``: every sample of the held-out genre (``--holdout-genre``).
* ``test_unseen_authors``: every other sample of the test authors (``--test-authors``).
* seen authors: a few samples each go to ``test_seen_authors``; the rest are ``train``.

Context samples for train and test_seen targets come only from the author's train
samples, so a test_seen target never appears anywhere in train.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from persrm_gen.authors.reader import IssueCollector, split_lines
from persrm_gen.errors import InputError, InputIssue
from persrm_gen.textutil import rng_for
from persrm_gen.userfiles import read_bytes

SampleKey = tuple[str, str]  # (author_id, sample id): sample ids are unique only within their author


@dataclass
class SplitPlan:
    split_of: dict[SampleKey, str]  # (author_id, sample id) -> split
    test_authors: list[str]
    holdout_genre: str | None
    # author_id -> ids of the author's samples that train and test_seen contexts are drawn from
    train_pool: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.split_of.values():
            out[s] = out.get(s, 0) + 1
        return dict(sorted(out.items()))


def read_test_authors(spec: str | None, known: Sequence[str], seed: int) -> list[str]:
    """``--test-authors``: a count, or a file with one author id per line."""
    if spec is None or spec == "":
        n = max(1, round(0.2 * len(known))) if len(known) >= 4 else 0
        return sorted(rng_for(seed, "test-authors").sample(sorted(known), n))
    if spec.isascii() and spec.isdigit():  # int() would also take "٣"; str.isdigit() takes "²" too
        n = int(spec)
        if n >= len(known):
            raise InputError(f"--test-authors {n}: needs fewer than the {len(known)} authors, so some are seen in training")
        return sorted(rng_for(seed, "test-authors").sample(sorted(known), n))
    path = Path(spec)
    if not path.is_file():
        raise InputError(InputIssue(spec, None, "--test-authors is neither a number nor a regular file"))
    chosen, issues, known_ids = [], IssueCollector(spec), set(known)
    for i, line in split_lines(read_bytes(path), issues, strict_format=False):
        aid = line.strip()
        if not aid or aid.startswith("#"):
            continue
        if aid not in known_ids:
            issues.add(i, f"unknown author id {aid!r}")
        chosen.append(aid)
    issues.raise_if_any()
    if len(set(chosen)) >= len(known):
        raise InputError(InputIssue(spec, None, "every author is a test author; none left for training"))
    return sorted(set(chosen))


def plan_splits(
    authors,
    *,
    test_authors: list[str],
    holdout_genre: str | None,
    test_fraction: float,
    context_size: int,
    seed: int,
) -> SplitPlan:
    if holdout_genre is not None:
        genres = {s.genre for a in authors for s in a.samples}
        if holdout_genre not in genres:
            raise InputError(f"--holdout-genre {holdout_genre!r}: no sample has that genre (genres: {', '.join(sorted(genres))})")
    plan = SplitPlan({}, list(test_authors), holdout_genre)
    unseen = set(test_authors)
    for author in authors:
        rest = []
        for s in author.samples:
            if s.genre == holdout_genre:
                plan.split_of[author.author_id, s.id] = "test_unseen_genre"
            elif author.author_id in unseen:
                plan.split_of[author.author_id, s.id] = "test_unseen_authors"
            else:
                rest.append(s.id)
        # Keep enough train samples that every train target still has a full context.
        n_test = round(test_fraction * len(rest))
        if test_fraction > 0 and n_test == 0 and len(rest) > context_size + 2:
            n_test = 1
        n_test = min(n_test, max(0, len(rest) - (context_size + 1)))
        held = set(rng_for(seed, "seen-split", author.author_id).sample(rest, n_test))
        for sid in rest:
            plan.split_of[author.author_id, sid] = "test_seen_authors" if sid in held else "train"
        plan.train_pool[author.author_id] = [sid for sid in rest if sid not in held]
    return plan
