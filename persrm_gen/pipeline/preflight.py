"""Render the prompts a build will send, before it sends any.

A run renders its templates at different stages: the generation prompts up front, the
judge and evidence traces after the candidates are paid for, ``preference.j2`` only when
the dataset is written. A broken template (``--prompts-dir``) found that late has already
cost every request. :func:`check_templates` renders every template the run will use once,
with a representative row, at start-up; ``--dry-run`` renders them all with
:func:`render_requests`. Stages that depend on earlier outputs are rendered with the
author's own text standing in for them (same variables, similar lengths), through the
build's own job and pair builders.
"""

from __future__ import annotations

from collections.abc import Sequence

from persrm_gen.generator.candidates import CandidateFactory, Job
from persrm_gen.generator.judgments import evidence_trace
from persrm_gen.generator.rationales import rationale_request
from persrm_gen.llm.types import LLMRequest
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.pairs import make_pair
from persrm_gen.pipeline.prepare import Prepared
from persrm_gen.prompts.judge import judge_messages, preference_messages
from persrm_gen.records import Candidate, Pair, Task
from persrm_gen.style import compare


def render_requests(opts: BuildOptions, prepared: Prepared, tasks: Sequence[Task], *, chat: bool,
                    model: str) -> tuple[list[LLMRequest], list[Pair]]:
    """Every request the build would send for ``tasks`` (projected where outputs feed later
    stages), and the stand-in pairs the later stages were rendered with."""
    factory = CandidateFactory(prepared.renderer, opts.candidate_options(model), chat=chat, corpus=prepared.corpus)
    positives = factory.positive_jobs(tasks)
    requests = [j.request for j in positives if j.request is not None]
    # the author's text stands in for a generated positive (same strategy, so the same negatives)
    negatives = [j for p in positives for j in factory.negative_jobs(p.task, stand_in_chosen(p))]
    requests += [r for j in negatives for r in factory.draws(j)]
    pairs = [stand_in_pair(job) for job in negatives]
    if opts.rationale_mode(chat) == "llm":
        ropt = opts.rationale_options(chat, model)
        for p in pairs:
            cmp = compare(p.context, p.response_a, p.response_b)
            requests.append(rationale_request(p, cmp, prepared.renderer, ropt, 0, False))
            if opts.swap_check:
                requests.append(rationale_request(p, cmp, prepared.renderer, ropt, 0, True))
        if opts.trace_hint and pairs:  # sent only for pairs whose unhinted attempts fail: rendered, not counted
            p = pairs[0]
            rationale_request(p, compare(p.context, p.response_a, p.response_b), prepared.renderer, ropt, 0, False,
                              hinted=True)
    return requests, pairs


def stand_in_chosen(job: Job) -> Candidate:
    """The positive ``job`` would give, with the author's text standing in for a generation."""
    return Candidate(job.task.id, job.text or job.task.target, job.source, job.strategy)


def stand_in_pair(job: Job) -> Pair:
    """The pair ``job`` would make, with the author's text standing in for a generation."""
    t = job.task
    chosen = Candidate(t.id, t.target, "author", "real")
    rejected = Candidate(t.id, job.text or t.target, job.source, job.strategy)
    return make_pair(t, chosen, rejected, margin=0.0)


def check_templates(opts: BuildOptions, prepared: Prepared, *, chat: bool, model: str) -> None:
    """Render every template the run uses once (InputError ``FILE:LINE`` on the first broken one)."""
    tasks, renderer = prepared.tasks, prepared.renderer
    _requests, pairs = render_requests(opts, prepared, tasks[:1], chat=chat, model=model)
    t = tasks[0]
    p = pairs[0] if pairs else stand_in_pair(Job(t, "real", "author", text=t.target))
    evidence_trace(renderer, compare(p.context, p.response_a, p.response_b), p.label)
    judge_messages(p.context, p.query, p.response_a, p.response_b, renderer=renderer)
    preference_messages(p.context, p.query, renderer=renderer)
