"""Tasks: for each target sample, the query and K few-shot context samples of its author.

The query is the sample's own ``prompt`` when it has one; otherwise its opening
sentence(s), which the candidates then continue (as in PersRM-R1's code). The target
is the author's real response; context never includes the target.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from persrm_gen.pipeline.draws import Excluding
from persrm_gen.pipeline.splits import SplitPlan
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.records import Task
from persrm_gen.textutil import (
    cap_words,
    head_words,
    rng_for,
    sentences,
    stable_id,
    word_count,
)


@dataclass(frozen=True)
class TaskOptions:
    context_size: int = 3
    opening_min_words: int = 12
    opening_max_words: int = 45
    target_min_words: int = 15
    target_max_words: int = 160
    context_max_words: int = 220  # long samples are cut so prompts stay bounded


def split_opening(text: str, opt: TaskOptions) -> tuple[str, str] | None:
    """(opening, continuation) at a sentence boundary, or None when the sample is too short
    (or has no sentence boundary within the opening's word limit)."""
    # Words past the opening and the capped continuation are never read: a 50 MB sample
    # costs no more than a short one.
    sents = sentences(head_words(text, opt.opening_max_words + opt.target_max_words + 1))
    opening: list[str] = []
    while sents and word_count(" ".join(opening)) < opt.opening_min_words:
        nxt = sents[0]
        if opening and word_count(" ".join(opening + [nxt])) > opt.opening_max_words:
            break
        opening.append(sents.pop(0))
    rest = cap_words(" ".join(sents), opt.target_max_words)
    if not opening or word_count(" ".join(opening)) > opt.opening_max_words or word_count(rest) < opt.target_min_words:
        return None
    return " ".join(opening), rest


def _without(sorted_ids: list[str], sample_id: str) -> Excluding:
    at = bisect_left(sorted_ids, sample_id)
    found = at < len(sorted_ids) and sorted_ids[at] == sample_id
    return Excluding(sorted_ids, at, at + 1 if found else at)


def make_tasks(authors, plan: SplitPlan, renderer: PromptRenderer, opt: TaskOptions, seed: int) -> tuple[list[Task], dict[str, int]]:
    """All tasks, in a stable order, plus counts of samples skipped and why."""
    tasks: list[Task] = []
    skipped: dict[str, int] = {}
    for author in authors:
        by_id = {s.id: s for s in author.samples}  # sample ids are unique within their author
        train_ids = sorted(plan.train_pool[author.author_id]) if author.author_id in plan.train_pool else []
        all_ids = sorted(by_id)
        capped: dict[str, str] = {}  # a sample is in many targets' contexts: cut it once (one string, too)
        for sample in author.samples:
            split = plan.split_of[author.author_id, sample.id]
            # the author's other samples, sorted, as a view (no per-target copy of a long list)
            pool = _without(train_ids if split in ("train", "test_seen_authors") else all_ids, sample.id)
            if len(pool) < opt.context_size:
                skipped["too_few_context_samples"] = skipped.get("too_few_context_samples", 0) + 1
                continue
            if sample.prompt:
                query, target, is_prompt = sample.prompt, cap_words(sample.text, opt.target_max_words), True
                opening = ""
            else:
                cut = split_opening(sample.text, opt)
                if cut is None:
                    skipped["too_short_for_target"] = skipped.get("too_short_for_target", 0) + 1
                    continue
                opening, target = cut
                query, is_prompt = renderer.text("task", opening=opening, genre=sample.genre), False
            ctx_ids = rng_for(seed, "context", sample.id).sample(pool, opt.context_size)
            for c in ctx_ids:
                if c not in capped:
                    capped[c] = cap_words(by_id[c].text, opt.context_max_words)
            context = tuple(capped[c] for c in ctx_ids)
            tasks.append(
                Task(
                    id=stable_id(author.author_id, sample.id),
                    author_id=author.author_id,
                    sample_id=sample.id,
                    genre=sample.genre,
                    split=split,
                    query=query,
                    target=target,
                    context=context,
                    query_is_prompt=is_prompt,
                    opening=opening,
                )
            )
    return tasks, skipped
