"""Tasks: for each target sample, the query and K few-shot context samples of its author.

The query is the sample's own ``prompt`` when it has one; otherwise its opening
sentence(s), which the candidates then continue (as in PersRM-R1's code). The target
is the author's real response; context never includes the target.
"""

from __future__ import annotations

from dataclasses import dataclass

from persrm_gen.records import Task
from persrm_gen.splits import SplitPlan
from persrm_gen.templating import PromptRenderer
from persrm_gen.textutil import rng_for, sentences, stable_id, word_count


@dataclass(frozen=True)
class TaskOptions:
    context_size: int = 3
    opening_min_words: int = 12
    opening_max_words: int = 45
    target_min_words: int = 15
    target_max_words: int = 160
    context_max_words: int = 220  # long samples are cut so prompts stay bounded


def split_opening(text: str, opt: TaskOptions) -> tuple[str, str] | None:
    """(opening, continuation) at a sentence boundary, or None when the sample is too short."""
    sents = sentences(text)
    opening: list[str] = []
    while sents and word_count(" ".join(opening)) < opt.opening_min_words:
        nxt = sents[0]
        if opening and word_count(" ".join(opening + [nxt])) > opt.opening_max_words:
            break
        opening.append(sents.pop(0))
    rest = _cap_words(" ".join(sents), opt.target_max_words)
    if not opening or word_count(" ".join(opening)) > opt.opening_max_words or word_count(rest) < opt.target_min_words:
        return None
    return " ".join(opening), rest


def _cap_words(text: str, max_words: int) -> str:
    """Keep whole sentences up to ``max_words``."""
    out: list[str] = []
    for s in sentences(text):
        if out and word_count(" ".join(out + [s])) > max_words:
            break
        out.append(s)
    return " ".join(out)


def make_tasks(authors, plan: SplitPlan, renderer: PromptRenderer, opt: TaskOptions, seed: int) -> tuple[list[Task], dict[str, int]]:
    """All tasks, in a stable order, plus counts of samples skipped and why."""
    tasks: list[Task] = []
    skipped: dict[str, int] = {}
    for author in authors:
        by_id = {s.id: s for s in author.samples}
        for sample in author.samples:
            split = plan.split_of[sample.id]
            if split in ("train", "test_seen_authors"):
                pool = [sid for sid in plan.train_pool[author.author_id] if sid != sample.id]
            else:
                pool = [s.id for s in author.samples if s.id != sample.id]
            if len(pool) < opt.context_size:
                skipped["too_few_context_samples"] = skipped.get("too_few_context_samples", 0) + 1
                continue
            if sample.prompt:
                query, target, is_prompt = sample.prompt, _cap_words(sample.text, opt.target_max_words), True
                opening = ""
            else:
                cut = split_opening(sample.text, opt)
                if cut is None:
                    skipped["too_short_for_target"] = skipped.get("too_short_for_target", 0) + 1
                    continue
                opening, target = cut
                query, is_prompt = renderer.text("task", opening=opening, genre=sample.genre), False
            ctx_ids = rng_for(seed, "context", sample.id).sample(sorted(pool), opt.context_size)
            context = tuple(_cap_words(by_id[c].text, opt.context_max_words) or by_id[c].text for c in ctx_ids)
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
