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

``trace_hint``: after the unhinted attempts fail, one last attempt tells the judge which response
the author wrote and asks for the reasoning (``rationale_hinted.j2``); a trace it yields is
marked ``rationale_source: llm-hinted`` so users can filter such rows. :class:`JudgeTally`
counts the judge replies paid per strategy, for "judge requests per kept trace".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from persrm_gen.answer import format_ok, parse_verdict
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.failure_rate import DEFAULT_MAX_FAILURE_RATE, FailureRate
from persrm_gen.llm.types import LLMRequest, cache_group_for
from persrm_gen.generator.judgments import evidence_trace_and_problem
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
    trace_hint: bool = False


@dataclass
class JudgeTally:
    """Judge replies paid (re-samples, rejected formats and swap checks included) per strategy."""

    requests: Counter = field(default_factory=Counter)
    hinted: Counter = field(default_factory=Counter)  # hinted requests sent

    def to_dict(self, kept_rows: list[dict]) -> dict:
        """Per strategy: pairs written (``kept_rows``), judge requests, traces kept for sft,
        requests per kept trace, and the kept traces written with the hint."""
        kept: Counter = Counter()
        kept_hinted: Counter = Counter()
        pairs = Counter(r["strategy"] for r in kept_rows)
        for r in kept_rows:
            if r.get("rationale_ok") and str(r.get("rationale_source", "")).startswith("llm"):
                kept[r["strategy"]] += 1
                kept_hinted[r["strategy"]] += r["rationale_source"] == HINTED
        out = {}
        for s in sorted(set(self.requests) | set(kept)):
            out[s] = {"pairs": pairs[s], "requests": self.requests[s], "kept_traces": kept[s],
                      "hinted_requests": self.hinted[s],
                      "kept_hinted": kept_hinted[s],
                      "requests_per_kept_trace": round(self.requests[s] / kept[s], 3) if kept[s] else None}
        total_req, total_kept = sum(self.requests.values()), sum(kept.values())
        out["all"] = {"pairs": len(kept_rows), "requests": total_req, "kept_traces": total_kept,
                      "hinted_requests": sum(self.hinted.values()),
                      "kept_hinted": sum(kept_hinted.values()),
                      "requests_per_kept_trace": round(total_req / total_kept, 3) if total_kept else None}
        return out


HINTED = "llm-hinted"  # rationale_source of a trace written after being told the label


async def write_rationales(pairs: list[Pair], client: LLMClient, renderer: PromptRenderer, opt: RationaleOptions, progress,
                           usage: DatasetUsage, tally: JudgeTally | None = None) -> Counter:
    """Fill ``pair.rationale`` in place; returns counts of traces dropped and why; ``tally``
    (when given) counts the judge requests per strategy."""
    drops: Counter = Counter()
    with stage(progress, "style evidence", len(pairs)) as tick:
        # On the event loop, not in a worker thread: moved there (with the judge requests), a
        # 10,000-sample build peaked at 1.23 GB RSS instead of 0.94 (likely the traces and
        # prompts allocated in the threads' own malloc arenas), for no less CPU
        comparisons, problems = _evidence_traces(pairs, renderer, tick)
    if opt.mode == "evidence":
        drops["sft_evidence_disagrees"] = problems["sft_evidence_disagrees"]
        drops["trace_contradicts_verdict"] = problems["trace_contradicts_verdict"]
        return drops
    judge = _Judge(client, usage, tally if tally is not None else JudgeTally())
    await _llm_traces(pairs, comparisons, judge, renderer, opt, progress, drops)
    if opt.swap_check:
        await _swap_check(pairs, comparisons, judge, renderer, opt, progress, drops)
    return drops


def _evidence_traces(pairs: list[Pair], renderer: PromptRenderer, tick) -> tuple[dict, Counter]:
    """Every pair's style comparison and evidence trace (in place); (comparisons, problems)."""
    comparisons, problems = {}, Counter()
    for p in pairs:
        comparisons[p.id] = compare(p.context, p.response_a, p.response_b)
        p.rationale, problem = evidence_trace_and_problem(renderer, comparisons[p.id], p.label)
        p.rationale_source = "evidence"
        p.meta["rationale_ok"] = problem is None
        problems[problem] += 1
        p.meta["style_verdict"] = comparisons[p.id].predicted  # the stats reuse it
        tick()
    return comparisons, problems


class _Judge:
    """Sends judge requests; a malformed trace is retried once by the client (same key), a
    request that still fails comes back as an empty text and counts as a failed attempt."""

    def __init__(self, client: LLMClient, usage: DatasetUsage, tally: JudgeTally):
        self.client, self.usage, self.tally = client, usage, tally

    async def __call__(self, pairs: list[Pair], reqs: list[LLMRequest], failures: FailureRate, on_done=None) -> list[str]:
        out = await self.client.complete_many(reqs, on_done=on_done, validate=format_ok, return_exceptions=True,
                                              failures=failures)
        rejected = self.client.rejected_replies(reqs)
        self.usage.add(reqs, out, rejected)
        for p, res, rej in zip(pairs, out, rejected):
            self.tally.requests[p.strategy] += len(rej) + (not isinstance(res, BaseException))
        return ["" if isinstance(x, BaseException) else x.text for x in out]


def rationale_request(p: Pair, comparison, renderer: PromptRenderer, opt: RationaleOptions, attempt: int, swapped: bool,
                      *, hinted: bool = False) -> LLMRequest:
    """The judge request for ``p`` (``swapped``: B shown first; ``hinted``: told the label);
    ``comparison`` is style.compare of A against B."""
    a, b = (p.response_b, p.response_a) if swapped else (p.response_a, p.response_b)
    cmp_lines = (compare(p.context, a, b) if swapped else comparison).evidence_lines()
    template = "rationale_hinted" if hinted else "rationale"
    msgs = renderer.messages(template, context=p.context, query=p.query, response_a=a, response_b=b, evidence=cmp_lines,
                             label=p.label)
    return LLMRequest(
        model=opt.model, messages=msgs, max_tokens=opt.max_tokens, temperature=opt.temperature,
        seed=rng_for(opt.seed, "rationale", p.id, swapped, attempt).randrange(2**31), stage="rationale",
        template_hashes=(renderer.template_hash(template),), attempt=attempt,
        cache_group=cache_group_for(p.author_id),
    )


def _requests(wave: list[Pair], comparisons, renderer: PromptRenderer, opt: RationaleOptions, attempt: int) -> list[LLMRequest]:
    return [rationale_request(p, comparisons[p.id], renderer, opt, attempt, False) for p in wave]


async def _llm_traces(pairs, comparisons, judge: _Judge, renderer, opt, progress, drops: Counter) -> None:
    pending = list(pairs)
    failures = FailureRate("rationales", opt.max_failure_rate)
    with stage(progress, "rationales", len(pairs), info=judge.client.accounting.summary) as tick:
        for attempt in range(opt.max_attempts):
            if not pending:
                break
            # The first round goes in two waves (one pair per target, then the rest), so the
            # samples prefix every pair of a target shares is cached before they all fly.
            waves = warm_first(pending) if attempt == 0 else [pending]
            texts_of: dict[str, str] = {}
            for wave in waves:
                reqs = _requests(wave, comparisons, renderer, opt, attempt)
                texts_of.update(zip((p.id for p in wave), await judge(wave, reqs, failures)))
            still = []
            for p in pending:
                text = texts_of[p.id]
                if format_ok(text) and parse_verdict(text) == p.label:
                    p.rationale, p.rationale_source = text.strip(), "llm"
                    p.meta["rationale_ok"] = True
                    tick()
                else:
                    drops["trace_unparseable" if parse_verdict(text) is None else "trace_label_mismatch_resampled"] += 1
                    still.append(p)
            pending = still
        if opt.trace_hint and pending:
            pending = await _hinted_traces(pending, comparisons, judge, renderer, opt, failures, tick, drops)
        for p in pending:  # keeps its evidence trace in `pairs`, never enters sft
            p.meta["rationale_ok"] = False
            tick()
    drops["trace_dropped_after_max_attempts"] += len(pending)


async def _hinted_traces(pending: list[Pair], comparisons, judge: _Judge, renderer, opt, failures, tick,
                         drops: Counter) -> list[Pair]:
    """One last attempt per pair, told the label; returns the pairs still without a trace."""
    reqs = [rationale_request(p, comparisons[p.id], renderer, opt, opt.max_attempts, False, hinted=True) for p in pending]
    for p in pending:
        judge.tally.hinted[p.strategy] += 1
    still = []
    for p, text in zip(pending, await judge(pending, reqs, failures)):
        if format_ok(text) and parse_verdict(text) == p.label:
            p.rationale, p.rationale_source = text.strip(), HINTED
            p.meta["rationale_ok"] = True
            tick()
        else:
            drops["trace_hint_failed"] += 1
            still.append(p)
    return still


def warm_first(pairs: list[Pair]) -> list[list[Pair]]:
    """[one pair of each target, the others]: the second wave reuses the prompt prefix (system,
    samples, query) that the first wave's requests left in the provider's cache; identical
    prefixes sent at the same moment all miss it."""
    first: dict[tuple[str, str], Pair] = {}
    for p in pairs:
        first.setdefault((p.author_id, p.sample_id), p)
    firsts = {id(p) for p in first.values()}
    rest = [p for p in pairs if id(p) not in firsts]
    return [list(first.values()), rest] if rest else [list(first.values())]


async def _swap_check(pairs: list[Pair], comparisons, judge: _Judge, renderer, opt, progress, drops: Counter) -> None:
    """Judge the swapped order once; pairs judged inconsistently are removed from the build."""
    with stage(progress, "swap check", len(pairs), info=judge.client.accounting.summary) as tick:
        reqs = [rationale_request(p, comparisons[p.id], renderer, opt, 0, True) for p in pairs]
        texts = await judge(pairs, reqs, FailureRate("swap check", opt.max_failure_rate), on_done=tick)
    kept = []
    for p, text in zip(pairs, texts):
        agrees = parse_verdict(text) == ("B" if p.label == "A" else "A")
        p.meta["swap_agrees"] = agrees
        if agrees:
            kept.append(p)
        else:
            drops["swap_inconsistent"] += 1
    pairs[:] = kept
