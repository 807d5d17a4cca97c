"""The candidates stage: send the positive jobs, then the negative jobs written against the
positives that came back; a sampled API output that cannot be parsed, or cannot be brought
to the chosen text's length at a sentence end, is sampled again (a new attempt index, so a
new cache key) up to ``--max-attempts``; what is still unusable is dropped and counted by
reason (``unusable_<strategy>``, ``length_mismatch_<strategy>``).
What the jobs ask for is decided in :mod:`persrm_gen.generator.candidates`; this module only runs them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from persrm_gen.generator.candidates import (
    CandidateFactory,
    Job,
    Unusable,
    resampled,
    to_candidate,
)
from persrm_gen.generator.parsing import UnparseableOutput, clean_rewrite
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.faults import TransientError
from persrm_gen.llm.failure_rate import FailureRate
from persrm_gen.llm.usage import DatasetUsage
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.progress import stage
from persrm_gen.records import Candidate, Task


async def make_candidates(opts: BuildOptions, client: LLMClient, factory: CandidateFactory, tasks: list[Task],
                          progress, usage: DatasetUsage, drops: Counter) -> tuple[dict[str, Candidate], list[Candidate]]:
    """(positive per task id, negatives); unusable outputs are counted in ``drops``."""
    pos_jobs = factory.positive_jobs(tasks)
    chosen: dict[str, Candidate] = {}
    for job, cand in zip(pos_jobs, await _run_jobs(client, pos_jobs, progress, "positives", usage, opts)):
        if isinstance(cand, Unusable):
            drops[f"{cand.reason}_positive"] += 1
        else:
            chosen[job.task.id] = cand
    neg_jobs = [j for t in tasks if t.id in chosen for j in factory.negative_jobs(t, chosen[t.id])]
    negatives: list[Candidate] = []
    for job, cand in zip(neg_jobs, await _run_jobs(client, neg_jobs, progress, "negatives", usage, opts)):
        if isinstance(cand, Unusable):
            drops[f"{cand.reason}_{job.strategy}"] += 1
        else:
            negatives.append(cand)
    return chosen, negatives


async def _run_jobs(client: LLMClient, jobs: list[Job], progress, label: str, usage: DatasetUsage,
                    opts: BuildOptions) -> list[Candidate | Unusable]:
    asked = [j for j in jobs if j.request is not None]
    responses: list = []
    failures = FailureRate(label, opts.max_failure_rate)
    fitted: dict[int, tuple[str, Candidate | Unusable]] = {}

    def fit_once(i: int, text: str) -> Candidate | Unusable:
        """``to_candidate`` of asked[i]'s reply, parsed and fitted once (the re-sample check
        and the result below read the same reply)."""
        hit = fitted.get(i)
        if hit is None or hit[0] != text:
            hit = fitted[i] = (text, to_candidate(asked[i], text))
        return hit[1]

    if asked:
        # Outputs that cannot be used (unparseable, or not in the chosen text's form) are
        # re-sampled, up to --max-attempts: a base model that stops early gets another try.
        validate = _rewrite_ok if client.transport.provider != "local" and client.transport.supports_chat else None
        with stage(progress, label, len(asked), info=client.accounting.summary) as tick:
            responses = await _sample(client, [j.request for j in asked], tick, validate, failures, usage,
                                      opts.max_attempts,
                                      usable=lambda i, text: not isinstance(fit_once(i, text), Unusable))
    it = enumerate(responses)
    out: list[Candidate | Unusable] = []
    for j in jobs:
        i, raw = next(it) if j.request is not None else (None, None)
        if isinstance(raw, BaseException):
            out.append(Unusable("unusable"))
            continue
        cand = fit_once(i, raw.text) if raw is not None else to_candidate(j, None)
        if isinstance(cand, Unusable) and cand.reason == "unusable" and raw is not None:
            failures.add(f"unusable output ({j.strategy}): {raw.text[:80]!r}")
        out.append(cand)
    failures.check()
    return out


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
