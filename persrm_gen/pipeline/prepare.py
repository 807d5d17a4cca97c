"""The first stage: everything decided before any model call (authors, splits, tasks, the
corpus of other authors' texts). Pure and seeded, so ``--dry-run`` and the build agree."""

from __future__ import annotations

from typing import NamedTuple

from persrm_gen.authors.reader import index_authors, load_all
from persrm_gen.errors import InputError
from persrm_gen.pipeline.corpus import Corpus
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.shards import in_partition
from persrm_gen.pipeline.splits import SplitPlan, plan_splits, read_test_authors
from persrm_gen.pipeline.tasks import TaskOptions, make_tasks
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.records import Task
from persrm_gen.textutil import rng_for


class Prepared(NamedTuple):
    authors: list
    renderer: PromptRenderer
    plan: SplitPlan
    tasks: list[Task]
    skipped: dict
    corpus: Corpus


def prepare(opts: BuildOptions, *, tasks: bool = True) -> Prepared:
    """Authors, splits, tasks. Raises InputError. ``tasks=False``: no tasks yet (a sharded
    build makes each shard's with :func:`shard_tasks`, so they are never all in memory)."""
    reason = f"1 target + {opts.context_size} context samples (see --context-size)"
    # ids and genres only: each shard reads its own authors' texts again (``shard_tasks``)
    authors = index_authors(opts.authors, min_samples=opts.context_size + 1, min_samples_reason=reason)
    renderer = PromptRenderer(opts.prompts_dir)
    test_authors = read_test_authors(opts.test_authors, [a.author_id for a in authors], opts.seed)
    plan = plan_splits(
        authors, test_authors=test_authors, holdout_genre=opts.holdout_genre,
        test_fraction=opts.test_fraction, context_size=opts.context_size, seed=opts.seed,
    )
    corpus = Corpus(authors, plan, TaskOptions(context_size=opts.context_size), opts.seed)
    prepared = Prepared(authors, renderer, plan, [], {}, corpus)
    if not tasks:
        return prepared
    mine = in_partition(authors, opts.num_shards, opts.shard_index)  # --num-shards: this machine's authors
    all_tasks, skipped = shard_tasks(prepared, mine, opts)
    if not all_tasks:
        raise InputError(f"{opts.authors}: no usable target samples (skipped: {skipped or 'none'})")
    return prepared._replace(tasks=all_tasks, skipped=skipped)


def shard_tasks(prepared: Prepared, authors: list, opts: BuildOptions) -> tuple[list[Task], dict]:
    """The tasks of ``authors`` (and samples skipped, per reason): per author only, so a
    task is the same whichever shard its author is built in."""
    task_opt = TaskOptions(context_size=opts.context_size)
    tasks, skipped = make_tasks(load_all(authors), prepared.plan, prepared.renderer, task_opt, opts.seed)
    return _limit_targets(tasks, opts), skipped


def _limit_targets(tasks: list[Task], opts: BuildOptions) -> list[Task]:
    if not opts.max_targets_per_author:
        return tasks
    by_author: dict[str, list[Task]] = {}
    for t in tasks:
        by_author.setdefault(t.author_id, []).append(t)
    keep: set[str] = set()
    for aid, ts in by_author.items():
        # round-robin over the author's splits, so a quick build still has every split
        rng = rng_for(opts.seed, "limit", aid)
        per_split: dict[str, list[Task]] = {}
        for t in sorted(ts, key=lambda t: t.id):
            per_split.setdefault(t.split, []).append(t)
        quota = opts.max_targets_per_author
        picked: list[Task] = []
        while len(picked) < quota and any(per_split.values()):
            for split in sorted(per_split):
                if per_split[split] and len(picked) < quota:
                    picked.append(per_split[split].pop(rng.randrange(len(per_split[split]))))
        keep |= {t.id for t in picked}
    return [t for t in tasks if t.id in keep]
