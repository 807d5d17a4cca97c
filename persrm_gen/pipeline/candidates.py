"""The candidates stage: send the positive jobs, then the negative jobs written against the
positives that came back; a sampled API output that cannot be parsed, or cannot be brought
to the chosen text's length at a sentence end, is sampled again (a new attempt index, so a
new cache key) up to ``--max-attempts``; what is still unusable is dropped and counted by
reason (``unusable_<strategy>``, ``length_mismatch_<strategy>``); a strategy that can make no
negative for a target at all (a rule-based edit with nothing to change, no other author of
the genre) is counted too (``no_negative_<strategy>``).

A generated positive that copies its context (the row validator's ``leakage`` rule, with the
build's ``leak_ngram`` and ``max_leak_fraction``), or that is far shorter than the author's
target or degenerate (``generator.candidates.positive_problem``), is unusable too, and
re-sampled the same way: caught at row validation instead, it would lose its task's pairs
after their negatives were bought (a short one: make pairs of a sentence's evidence). One
still unusable after ``--max-attempts`` (unparseable too) falls back to the author's real
text under ``--positive mixed`` (counted as ``positive_fallback_real``; its negatives are
then a real positive's) and is dropped under ``--positive style-matched``
(``<reason>_positive``: ``leakage_positive``, ``too_short_positive``, ...).
Every reply stays in the cache either way, so a re-run buys nothing.
What the jobs ask for is decided in :mod:`persrm_gen.generator.candidates`; this module only runs them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from persrm_gen.generator.candidates import (
    CandidateFactory,
    Job,
    ReplyParses,
    Unusable,
    cut,
    length_sides,
    nearest_draw,
    positive_problem,
    resampled,
    to_candidate,
)
from persrm_gen.dataset.blind_audit import surface_distance
from persrm_gen.dataset.validators import leaks
from persrm_gen.generator.parsing import UnparseableOutput, clean_rewrite
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.faults import TransientError
from persrm_gen.llm.failure_rate import FailureRate
from persrm_gen.llm.usage import DatasetUsage
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.progress import stage
from persrm_gen.records import Candidate, Task

LEAKAGE = "leakage"  # why a generated positive that copies its context is unusable


async def make_candidates(opts: BuildOptions, client: LLMClient, factory: CandidateFactory, tasks: list[Task],
                          progress, usage: DatasetUsage, drops: Counter) -> tuple[dict[str, Candidate], list[Candidate]]:
    """(positive per task id, negatives); unusable outputs (and positives that fell back to
    the author's real text) are counted in ``drops``."""
    pos_jobs = factory.positive_jobs(tasks)
    chosen: dict[str, Candidate] = {}
    for job, cand in zip(pos_jobs, await _run_jobs(client, pos_jobs, progress, "positives", usage, opts,
                                                   reject=_positive_check(opts))):
        if isinstance(cand, Unusable) and (real := factory.fallback_positive(job.task)):
            cand = to_candidate(real, None)
            drops["positive_fallback_real"] += 1
        if isinstance(cand, Unusable):
            drops[f"{cand.reason}_positive"] += 1
        else:
            chosen[job.task.id] = cand
    neg_jobs = [j for t in tasks if t.id in chosen for j in _negative_jobs(factory, t, chosen[t.id], drops)]
    negatives: list[Candidate] = []
    balanced = await _run_jobs(client, neg_jobs, progress, "negatives", usage, opts, draws=factory.draws,
                               sides=lambda jobs, raws, parse: length_sides(jobs, raws, opts.seed, parse))
    for job, cand in zip(neg_jobs, balanced):
        if isinstance(cand, Unusable):
            drops[f"{cand.reason}_{job.strategy}"] += 1
        else:
            negatives.append(cand)
    return chosen, negatives


def _negative_jobs(factory: CandidateFactory, task: Task, chosen: Candidate, drops: Counter) -> list[Job]:
    """The task's negative jobs; a strategy that can make none for it (no word a minimal edit
    can swap, no axis that changes the text, no other author of the genre) is counted as
    ``no_negative_<strategy>``, so a build that loses pairs that way says so."""
    jobs = factory.negative_jobs(task, chosen)
    made = {"axes" if j.strategy.startswith("axis-") else j.strategy for j in jobs}
    for strategy in factory.negatives_for(chosen):
        if strategy not in made:
            drops[f"no_negative_{strategy}"] += 1
    return jobs


def _positive_check(opts: BuildOptions) -> Callable[[Job, Candidate], str | None]:
    """Why a generated positive is unusable: the row validator's leakage rule
    (``dataset.validators``, the build's ValidatorConfig: LEAKAGE when it copies a span of
    its task's context), or ``generator.candidates.positive_problem`` (far shorter than the
    author's target, or degenerate)."""
    config = opts.validator_config()

    def reject(job: Job, cand: Candidate) -> str | None:
        if leaks(cand.text, job.task.context, config) is not None:
            return LEAKAGE
        return positive_problem(cand.text, job.task.target)

    return reject


async def _run_jobs(client: LLMClient, jobs: list[Job], progress, label: str, usage: DatasetUsage,
                    opts: BuildOptions, draws=None, sides=None, reject=None) -> list[Candidate | Unusable]:
    """Each job's candidate or why there is none. ``draws(job)`` gives a job's requests (its
    own and its extra draws: the draw nearest the chosen text's surface is kept,
    ``generator.candidates.nearest_draw``); ``sides(jobs, raw texts, parse)`` the side of the
    chosen text's length each is cut to (``generator.candidates.length_sides``);
    ``reject(job, candidate)`` why a generated candidate is not usable after all (None: it
    is), re-sampled like an unparseable one. Every step reads a reply's parse from one memo:
    each reply is parsed once."""

    def checked(job: Job, cand: Candidate | Unusable) -> Candidate | Unusable:
        why = reject(job, cand) if reject is not None and isinstance(cand, Candidate) else None
        return cand if why is None else Unusable(why)

    asked = [j for j in jobs if j.request is not None]
    sent = [(j, r) for j in asked for r in (draws(j) if draws is not None else [j.request])]
    responses: list = []
    failures = FailureRate(label, opts.max_failure_rate)
    parses = ReplyParses()
    if sent:
        # Outputs that cannot be used (unparseable, or not in the chosen text's form) are
        # re-sampled, up to --max-attempts: a base model that stops early gets another try.
        validate = _rewrite_ok if client.transport.provider != "local" and client.transport.supports_chat else None
        with stage(progress, label, len(sent), info=client.accounting.summary) as tick:
            responses = await _sample(client, [r for _, r in sent], tick, validate, failures, usage,
                                      opts.max_attempts, usable=lambda i, text: not isinstance(
                                          checked(sent[i][0], cut(sent[i][0], parses(sent[i][0], text))), Unusable))
    picked = _nearest_draws(sent, responses, parses)
    raws = [picked[id(j)] if j.request is not None else None for j in jobs]
    texts = [None if r is None or isinstance(r, BaseException) else r.text for r in raws]
    side = sides(jobs, texts, parses) if sides is not None else [None] * len(jobs)
    out: list[Candidate | Unusable] = []
    for k, (j, raw) in enumerate(zip(jobs, raws)):
        if isinstance(raw, BaseException):
            out.append(Unusable("unusable"))
            continue
        cand = cut(j, parses(j, texts[k]), side[k])
        if j.request is not None:  # a known text (the author's) is never re-checked
            cand = checked(j, cand)
        if isinstance(cand, Unusable) and cand.reason == "unusable" and raw is not None:
            failures.add(f"unusable output ({j.strategy}): {raw.text[:80]!r}")
        out.append(cand)
    failures.check()
    return out


def _nearest_draws(sent: list[tuple[Job, object]], responses: list, parses: ReplyParses) -> dict[int, object]:
    """id(job) -> the response of its draw nearest its chosen text's surface (its only one
    when it was drawn once; the first when none is usable)."""
    by_job: dict[int, tuple[Job, list]] = {}
    for (job, _), resp in zip(sent, responses):
        by_job.setdefault(id(job), (job, []))[1].append(resp)
    picked = {}
    for key, (job, resps) in by_job.items():
        if len(resps) == 1:
            picked[key] = resps[0]
            continue
        texts = [None if isinstance(r, BaseException) else r.text for r in resps]
        picked[key] = resps[nearest_draw(job, texts, surface_distance, parses)]
    return picked


async def _sample(client: LLMClient, requests: list, tick, validate, failures: FailureRate, usage: DatasetUsage,
                  attempts: int, usable: Callable[[int, str], bool]) -> list:
    """Responses in request order; a request whose replies fail ``validate`` (after the client's
    one identical retry), or whose reply is not ``usable``, is re-sampled with a new attempt
    index, up to ``attempts`` in all. Every reply stays in the cache: a re-run buys nothing."""
    results = await client.complete_many(requests, on_done=tick, validate=validate, return_exceptions=True,
                                         failures=failures)
    usage.add(requests, results, client.rejected_replies(requests))
    for attempt in range(1, attempts):
        redo = [i for i, r in enumerate(results)
                if (isinstance(r, TransientError) and r.kind == "invalid_output")
                or (not isinstance(r, BaseException) and not usable(i, r.text))]
        if not redo:
            break
        again = [resampled(requests[i], attempt) for i in redo]
        more = await client.complete_many(again, validate=validate, return_exceptions=True, failures=failures)
        usage.add(again, more, client.rejected_replies(again))
        for i, r in zip(redo, more):
            results[i] = r
    return results


def _rewrite_ok(text: str) -> bool:
    try:
        clean_rewrite(text)
    except UnparseableOutput:
        return False
    return True
