"""``persrm-gen build --dry-run``: render every prompt, count what would be sent, price it.

Nothing is called and nothing is written. Requests already in ``OUT/cache.sqlite`` are
counted as cached. Stages that depend on earlier outputs are projected with the
author's real text standing in for them (same number of requests, similar lengths).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from persrm_gen.errors import UsageError
from persrm_gen.generator.backends import endpoint_for
from persrm_gen.generator.cache import RequestCache
from persrm_gen.generator.candidates import CandidateFactory, CandidateOptions
from persrm_gen.generator.client import LLMClient
from persrm_gen.generator.pricing import Pricing
from persrm_gen.generator.transport import LLMRequest, LLMResponse
from persrm_gen.pipeline import BuildOptions, _rationale_mode, prepare
from persrm_gen.progress import console
from persrm_gen.rationales import RationaleOptions, _request
from persrm_gen.records import Pair
from persrm_gen.style import compare
from persrm_gen.templating import PromptRenderer


@dataclass
class DryTransport:
    """A transport that only describes the backend; sending is a bug in a dry run."""

    provider: str
    supports_chat: bool
    supports_prompt: bool = True
    endpoint: str | None = None  # the server, as the real transport puts it in the cache key

    async def send(self, request: LLMRequest) -> LLMResponse:
        raise UsageError("dry run: no request may be sent")

    async def aclose(self) -> None:
        return None


def _describe_backend(opts: BuildOptions) -> tuple[DryTransport, str]:
    if opts.backend != "local":
        if not opts.model:
            raise UsageError(f"--backend {opts.backend} needs --model")
        return DryTransport(opts.backend, supports_chat=True, endpoint=endpoint_for(opts.backend, opts.base_url)), opts.model
    from persrm_gen.generator.local_model import EMBEDDED_ALIASES, EMBEDDED_MODEL_ID  # noqa: PLC0415

    if opts.model is None or opts.model.strip().lower() in EMBEDDED_ALIASES:
        return DryTransport("local", supports_chat=False), EMBEDDED_MODEL_ID
    folder = Path(opts.model).expanduser().resolve()
    tok_cfg = folder / "tokenizer_config.json"
    chat = tok_cfg.is_file() and bool(json.loads(tok_cfg.read_text()).get("chat_template"))
    return DryTransport("local", supports_chat=chat), str(folder)


def plan_requests(opts: BuildOptions) -> tuple[list[LLMRequest], str, DryTransport]:
    """Every request a build would make (projected where outputs feed later stages)."""
    _authors, renderer, _plan, tasks, _skipped, corpus = prepare(opts)
    transport, model = _describe_backend(opts)
    factory = CandidateFactory(renderer, CandidateOptions(
        model=model, positive=opts.positive, negatives=opts.negatives, axes=opts.axes,
        temperature=opts.temperature, max_new_tokens=opts.max_new_tokens, seed=opts.seed,
    ), chat=transport.supports_chat, corpus=corpus)
    requests = [j.request for j in factory.positive_jobs(tasks) if j.request is not None]
    negatives = [j for t in tasks for j in factory.negative_jobs(t, t.target)]
    requests += [j.request for j in negatives if j.request is not None]
    if _rationale_mode(opts, transport.supports_chat) == "llm":
        requests += _rationale_requests(negatives, renderer, model, opts)
    return requests, model, transport


def _rationale_requests(negatives, renderer: PromptRenderer, model: str, opts: BuildOptions) -> list[LLMRequest]:
    ropt = RationaleOptions(mode="llm", model=model, max_attempts=opts.max_attempts, swap_check=opts.swap_check, seed=opts.seed)
    out = []
    for job in negatives:
        t = job.task
        stand_in = job.text or t.target
        p = Pair(id=f"{t.id}-{job.strategy}", author_id=t.author_id, genre=t.genre, query=t.query,
                 context=list(t.context), chosen=t.target, rejected=stand_in, chosen_source="author",
                 rejected_source=job.source, response_a=t.target, response_b=stand_in, label="A",
                 rationale="", style_margin=0.0, split=t.split)
        cmp = compare(p.context, p.response_a, p.response_b)
        out.append(_request(p, cmp, renderer, ropt, 0, False))
        if opts.swap_check:
            out.append(_request(p, cmp, renderer, ropt, 0, True))
    return out


def run_dry(opts: BuildOptions) -> None:
    requests, model, transport = plan_requests(opts)
    cache_path = opts.out / "cache.sqlite"
    cache = RequestCache(cache_path if cache_path.is_file() else ":memory:")
    try:
        est = LLMClient(transport, cache, pricing=Pricing(opts.extra.get("pricing"))).estimate(requests)
    finally:
        cache.close()
    table = Table(title=f"dry run: {opts.backend} / {model}")
    table.add_column("")
    table.add_column("projected", justify="right")
    by_stage: dict[str, int] = {}
    for r in requests:
        by_stage[r.stage] = by_stage.get(r.stage, 0) + 1
    for name, n in sorted(by_stage.items()):
        table.add_row(f"requests: {name}", f"{n:,}")
    table.add_row("requests to send (not cached)", f"{est.requests:,}")
    table.add_row("already cached", f"{est.cached:,}")
    table.add_row("input tokens (estimate)", f"{est.input_tokens:,}")
    table.add_row("output tokens (at most)", f"{est.output_tokens:,}")
    table.add_row("cost (USD, at most)", "n/a (no price known)" if est.unpriced_models else f"{est.cost_usd:.4f}")
    console.print(table)
    if opts.backend != "local" and _rationale_mode(opts, True) == "llm":
        console.print(f"LLM traces that disagree with the label are re-sampled up to {opts.max_attempts} times; "
                      "the count above is for one attempt each.", highlight=False)
    if est.unpriced_models:
        console.print(f"no price known for {', '.join(est.unpriced_models)}: add it under 'pricing:' in a config", highlight=False)
