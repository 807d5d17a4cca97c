"""Reasoning traces for every pair, with label consistency enforced.

``evidence``: the trace is written from measured style features (style.compare); it is
marked usable for sft only when the measurements themselves favour the label, both by the
style distance and by the tally the trace states (judgments.trace_problem names the reason).
``llm``: an instruction model judges the pair, shown the measured features but not the
label; a trace whose verdict disagrees is re-sampled with a new attempt index (a new
cache key) up to ``max_attempts``, then dropped from sft and counted; so is a trace the
client gave up on for its format (after one identical retry). ``swap_check`` also judges
the swapped order and keeps only pairs judged the same way both times. Each stage counts
its failed requests against ``max_failure_rate`` (:class:`FailureRate`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from persrm_gen.answer import format_ok, parse_verdict
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.failure_rate import DEFAULT_MAX_FAILURE_RATE, FailureRate
from persrm_gen.llm.types import LLMRequest
from persrm_gen.generator.judgments import evidence_trace, trace_problem
from persrm_gen.llm.usage import DatasetUsage
from persrm_gen.progress import stage
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.records import Pair
from persrm_gen.style import compare
from persrm_gen.textutil import rng_for


@dataclass(frozen=True)
class RationaleOptions:
    mode: str  # "evidence" | "llm"
    model: str
    max_attempts: int = 3
    swap_check: bool = False
    seed: int = 0
    temperature: float = 0.7
    max_tokens: int = 800
    max_failure_rate: float | None = DEFAULT_MAX_FAILURE_RATE


async def write_rationales(pairs: list[Pair], client: LLMClient, renderer: PromptRenderer, opt: RationaleOptions, progress, usage: DatasetUsage) -> Counter:
    """Fill ``pair.rationale`` in place; returns counts of traces dropped and why."""
    drops: Counter = Counter()
    comparisons, problems = {}, Counter()
    with stage(progress, "style evidence", len(pairs)) as tick:
        for p in pairs:
            comparisons[p.id] = compare(p.context, p.response_a, p.response_b)
            p.rationale = evidence_trace(renderer, comparisons[p.id], p.label)
            p.rationale_source = "evidence"
            problem = trace_problem(comparisons[p.id], p.label)
            p.meta["rationale_ok"] = problem is None
            problems[problem] += 1
            p.meta["style_verdict"] = comparisons[p.id].predicted  # the stats reuse it
            tick()
    if opt.mode == "evidence":
        drops["sft_evidence_disagrees"] = problems["sft_evidence_disagrees"]
        drops["trace_contradicts_verdict"] = problems["trace_contradicts_verdict"]
        return drops
    judge = _Judge(client, usage)
    await _llm_traces(pairs, comparisons, judge, renderer, opt, progress, drops)
    if opt.swap_check:
        await _swap_check(pairs, comparisons, judge, renderer, opt, progress, drops)
    return drops


class _Judge:
    """Sends judge requests; a malformed trace is retried once by the client (same key), a
    request that still fails comes back as an empty text and counts as a failed attempt."""

    def __init__(self, client: LLMClient, usage: DatasetUsage):
        self.client, self.usage = client, usage

    async def __call__(self, reqs: list[LLMRequest], failures: FailureRate, on_done=None) -> list[str]:
        out = await self.client.complete_many(reqs, on_done=on_done, validate=format_ok, return_exceptions=True,
                                              failures=failures)
        self.usage.add(reqs, out, self.client.rejected_replies(reqs))
        return ["" if isinstance(x, BaseException) else x.text for x in out]


def rationale_request(p: Pair, comparison, renderer: PromptRenderer, opt: RationaleOptions, attempt: int, swapped: bool) -> LLMRequest:
    """The judge request for ``p`` (``swapped``: B shown first); ``comparison`` is style.compare of A against B."""
    a, b = (p.response_b, p.response_a) if swapped else (p.response_a, p.response_b)
    cmp_lines = (compare(p.context, a, b) if swapped else comparison).evidence_lines()
    msgs = renderer.messages("rationale", context=p.context, query=p.query, response_a=a, response_b=b, evidence=cmp_lines)
    return LLMRequest(
        model=opt.model, messages=msgs, max_tokens=opt.max_tokens, temperature=opt.temperature,
        seed=rng_for(opt.seed, "rationale", p.id, swapped, attempt).randrange(2**31), stage="rationale",
        template_hashes=(renderer.template_hash("rationale"),), attempt=attempt,
    )


async def _llm_traces(pairs, comparisons, judge: _Judge, renderer, opt, progress, drops: Counter) -> None:
    pending = list(pairs)
    failures = FailureRate("rationales", opt.max_failure_rate)
    with stage(progress, "rationales", len(pairs), info=judge.client.accounting.summary) as tick:
        for attempt in range(opt.max_attempts):
            if not pending:
                break
            reqs = [rationale_request(p, comparisons[p.id], renderer, opt, attempt, False) for p in pending]
            texts = await judge(reqs, failures)
            still = []
            for p, text in zip(pending, texts):
                if format_ok(text) and parse_verdict(text) == p.label:
                    p.rationale, p.rationale_source = text.strip(), "llm"
                    p.meta["rationale_ok"] = True
                    tick()
                else:
                    drops["trace_unparseable" if parse_verdict(text) is None else "trace_label_mismatch_resampled"] += 1
                    still.append(p)
            pending = still
        for p in pending:  # keeps its evidence trace in `pairs`, never enters sft
            p.meta["rationale_ok"] = False
            tick()
    drops["trace_dropped_after_max_attempts"] += len(pending)


async def _swap_check(pairs: list[Pair], comparisons, judge: _Judge, renderer, opt, progress, drops: Counter) -> None:
    """Judge the swapped order once; pairs judged inconsistently are removed from the build."""
    with stage(progress, "swap check", len(pairs), info=judge.client.accounting.summary) as tick:
        reqs = [rationale_request(p, comparisons[p.id], renderer, opt, 0, True) for p in pairs]
        texts = await judge(reqs, FailureRate("swap check", opt.max_failure_rate), on_done=tick)
    kept = []
    for p, text in zip(pairs, texts):
        agrees = parse_verdict(text) == ("B" if p.label == "A" else "A")
        p.meta["swap_agrees"] = agrees
        if agrees:
            kept.append(p)
        else:
            drops["swap_inconsistent"] += 1
    pairs[:] = kept
