"""``persrm-gen build --dry-run``: render every prompt, count what would be sent, price it.

Nothing is called and nothing is written (``OUT`` is neither created nor touched; its
cache is opened read-only). Requests already in ``OUT/cache.sqlite`` are counted as
cached. Stages that depend on earlier outputs are projected with the author's real text
standing in for them (same number of requests, similar lengths); the templates no
request uses (evidence traces, the judge and preference prompts) are rendered once, as a
real build does at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from persrm_gen.errors import UsageError
from persrm_gen.llm.backends import endpoint_for
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, LLMResponse
from persrm_gen.dataset.folder import OutputFolder
from persrm_gen.pipeline.build import BuildOptions, prepare
from persrm_gen.pipeline.preflight import check_templates, render_requests
from persrm_gen.progress import console


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
    from persrm_gen.llm.transports.local_model import EMBEDDED_ALIASES, EMBEDDED_MODEL_ID  # noqa: PLC0415

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
    check_templates(opts, renderer, tasks, corpus, chat=transport.supports_chat, model=model)
    requests, _pairs = render_requests(opts, renderer, tasks, corpus, chat=transport.supports_chat, model=model)
    return requests, model, transport


def run_dry(opts: BuildOptions) -> None:
    OutputFolder(opts.out).check()  # the build would refuse it: say so now
    requests, model, transport = plan_requests(opts)
    cache_path = opts.out / "cache.sqlite"
    cache = RequestCache(cache_path, read_only=True) if cache_path.is_file() else RequestCache(":memory:")
    try:
        est = LLMClient(transport, cache, pricing=Pricing(opts.pricing)).estimate(requests)
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
    if opts.backend != "local" and opts.rationale_mode(True) == "llm":
        console.print(f"LLM traces that disagree with the label are re-sampled up to {opts.max_attempts} times; "
                      "the count above is for one attempt each.", highlight=False)
    if est.unpriced_models:
        console.print(f"no price known for {', '.join(est.unpriced_models)}: add it under 'pricing:' in a config", highlight=False)
