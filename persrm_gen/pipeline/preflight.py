"""Render the prompts a build will send, before it sends any.

A run renders its templates at different stages: the generation prompts up front, the
judge and evidence traces after the candidates are paid for, ``preference.j2`` only when
the dataset is written. A broken template (``--prompts-dir``) found that late has already
cost every request. :func:`check_templates` renders every template the run will use once,
with a representative row, at start-up; ``--dry-run`` renders them all with
:func:`render_requests`. Stages that depend on earlier outputs are rendered with the
author's own text standing in for them (same variables, similar lengths).
"""

from __future__ import annotations

from collections.abc import Sequence

from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.generator.candidates import CandidateFactory, Job
from persrm_gen.llm.types import LLMRequest
from persrm_gen.prompts.judge import judge_messages, preference_messages
from persrm_gen.generator.judgments import evidence_trace
from persrm_gen.generator.rationales import RationaleOptions, _request
from persrm_gen.records import Pair, Task
from persrm_gen.style import compare
from persrm_gen.prompts.renderer import PromptRenderer


def render_requests(opts: BuildOptions, renderer: PromptRenderer, tasks: Sequence[Task], corpus, *, chat: bool,
                    model: str) -> tuple[list[LLMRequest], list[Pair]]:
    """Every request the build would send for ``tasks`` (projected where outputs feed later
    stages), and the stand-in pairs the later stages were rendered with."""
    factory = CandidateFactory(renderer, opts.candidate_options(model), chat=chat, corpus=corpus)
    requests = [j.request for j in factory.positive_jobs(tasks) if j.request is not None]
    negatives = [j for t in tasks for j in factory.negative_jobs(t, t.target)]
    requests += [j.request for j in negatives if j.request is not None]
    pairs = [stand_in_pair(job) for job in negatives]
    if opts.rationale_mode(chat) == "llm":
        ropt = RationaleOptions(mode="llm", model=model, max_attempts=opts.max_attempts, swap_check=opts.swap_check,
                                seed=opts.seed)
        for p in pairs:
            cmp = compare(p.context, p.response_a, p.response_b)
            requests.append(_request(p, cmp, renderer, ropt, 0, False))
            if opts.swap_check:
                requests.append(_request(p, cmp, renderer, ropt, 0, True))
    return requests, pairs


def stand_in_pair(job: Job) -> Pair:
    """The pair ``job`` would make, with the author's text standing in for a generation."""
    t = job.task
    rejected = job.text or t.target
    return Pair(id=f"{t.id}-{job.strategy}", author_id=t.author_id, genre=t.genre, query=t.query,
                context=list(t.context), chosen=t.target, rejected=rejected, chosen_source="author",
                rejected_source=job.source, response_a=t.target, response_b=rejected, label="A",
                rationale="", style_margin=0.0, split=t.split)


def check_templates(opts: BuildOptions, renderer: PromptRenderer, tasks: Sequence[Task], corpus, *, chat: bool,
                    model: str) -> None:
    """Render every template the run uses once (InputError ``FILE:LINE`` on the first broken one)."""
    _requests, pairs = render_requests(opts, renderer, tasks[:1], corpus, chat=chat, model=model)
    t = tasks[0]
    p = pairs[0] if pairs else stand_in_pair(Job(t, "real", "author", text=t.target))
    evidence_trace(renderer, compare(p.context, p.response_a, p.response_b), p.label)
    judge_messages(p.context, p.query, p.response_a, p.response_b, renderer=renderer)
    preference_messages(p.context, p.query, renderer=renderer)
