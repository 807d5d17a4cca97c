"""The candidates stage: send the positive jobs, then the negative jobs written against the
positives that came back; a sampled API output that cannot be parsed is sampled again (a
new attempt index, so a new cache key) up to ``--max-attempts``. What the
jobs ask for is decided in :mod:`persrm_gen.generator.candidates`; this module only runs them.
"""

from __future__ import annotations

from collections import Counter

from persrm_gen.generator.candidates import (
    CandidateFactory,
    Job,
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
        if cand is None:
            drops["unusable_positive"] += 1
        else:
            chosen[job.task.id] = cand
    neg_jobs = [j for t in tasks if t.id in chosen for j in factory.negative_jobs(t, chosen[t.id].text)]
    negatives: list[Candidate] = []
    for job, cand in zip(neg_jobs, await _run_jobs(client, neg_jobs, progress, "negatives", usage, opts)):
        if cand is None:
            drops[f"unusable_{job.strategy}"] += 1
        else:
            negatives.append(cand)
    return chosen, negatives


async def _run_jobs(client: LLMClient, jobs: list[Job], progress, label: str, usage: DatasetUsage,
                    opts: BuildOptions) -> list[Candidate | None]:
    requests = [j.request for j in jobs if j.request is not None]
    responses: list = []
    failures = FailureRate(label, opts.max_failure_rate)
    if requests:
        # Sampled API outputs that cannot be parsed are re-sampled (up to --max-attempts).
        # Local generation is deterministic, so a retry would repeat it.
        validate = _rewrite_ok if client.transport.provider != "local" and client.transport.supports_chat else None
        with stage(progress, label, len(requests), info=client.accounting.summary) as tick:
            responses = await _sample(client, requests, tick, validate, failures, usage,
                                      opts.max_attempts if validate else 1)
    it = iter(responses)
    out = []
    for j in jobs:
        raw = next(it) if j.request is not None else None
        cand = None if isinstance(raw, BaseException) else to_candidate(j, raw.text if raw is not None else None)
        if cand is None and raw is not None and not isinstance(raw, BaseException):
            failures.add(f"unusable output ({j.strategy}): {raw.text[:80]!r}")
        out.append(cand)
    failures.check()
    return out


async def _sample(client: LLMClient, requests: list, tick, validate, failures: FailureRate, usage: DatasetUsage,
                  attempts: int) -> list:
    """Responses in request order; a request whose replies fail ``validate`` (after the client's
    one identical retry) is re-sampled with a new attempt index, up to ``attempts`` in all."""
    results = await client.complete_many(requests, on_done=tick, validate=validate, return_exceptions=True,
                                         failures=failures)
    usage.add(requests, results, client.rejected_replies(requests))
    for attempt in range(1, attempts):
        redo = [i for i, r in enumerate(results) if isinstance(r, TransientError) and r.kind == "invalid_output"]
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
