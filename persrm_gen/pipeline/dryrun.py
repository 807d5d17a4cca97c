"""``persrm-gen build --dry-run``: render every prompt, count what would be sent, price it.

Nothing is called and nothing is written (``OUT`` is neither created nor touched; its
cache is opened read-only). Requests already in ``OUT/cache.sqlite`` are counted as
cached. Stages that depend on earlier outputs are projected with the author's real text
standing in for them (same number of requests, similar lengths); the templates no
request uses (evidence traces, the judge and preference prompts) are rendered once, as a
real build does at start-up.
"""

from __future__ import annotations

from contextlib import closing

from rich.table import Table

from persrm_gen.dataset.folder import OutputFolder
from persrm_gen.llm.types import LLMRequest
from persrm_gen.pipeline.backend import (
    DryTransport,
    describe_backend,
    estimate_client,
    open_dry_cache,
)
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.preflight import check_templates, render_requests
from persrm_gen.pipeline.prepare import prepare
from persrm_gen.progress import console


def plan_requests(opts: BuildOptions) -> tuple[list[LLMRequest], str, DryTransport]:
    """Every request a build would make (projected where outputs feed later stages)."""
    prepared = prepare(opts)
    transport, model = describe_backend(opts)
    check_templates(opts, prepared, chat=transport.supports_chat, model=model)
    requests, _pairs = render_requests(opts, prepared, prepared.tasks, chat=transport.supports_chat, model=model)
    return requests, model, transport


def run_dry(opts: BuildOptions) -> None:
    OutputFolder(opts.out).check()  # the build would refuse it: say so now
    requests, model, transport = plan_requests(opts)
    with closing(open_dry_cache(opts)) as cache:
        est = estimate_client(opts, transport, cache).estimate(requests)
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
    unknown = "n/a (no price known)"
    table.add_row("cost at list price (USD, at most)", unknown if est.unpriced_models else f"{est.cost_usd:.4f}")
    if opts.backend != "local":
        table.add_row("expected share of input from the prompt cache", f"{est.cached_share:.0%}")
        table.add_row("cost live, with prompt caching (USD, at most)", unknown if est.unpriced_models else f"{est.live_usd:.4f}")
        table.add_row("cost with --batch and prompt caching (USD, at most)",
                      unknown if est.unpriced_models else f"{est.batch_usd:.4f}")
    console.print(table)
    if opts.backend != "local" and opts.rationale_mode(True) == "llm":
        console.print(f"LLM traces that disagree with the label are re-sampled up to {opts.max_attempts} times; "
                      "the count above is for one attempt each.", highlight=False)
    if est.unpriced_models:
        console.print(f"no price known for {', '.join(est.unpriced_models)}: add it under 'pricing:' in a config", highlight=False)
