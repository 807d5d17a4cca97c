"""CLI command ``build``: parse the build options, call the pipeline, print one summary line.

Options given on the command line are told apart from defaults here (typer knows which is
which), so a ``--config`` file can fill in only what the user did not type.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from typer._click.core import ParameterSource

from persrm_gen.llm.failure_rate import DEFAULT_MAX_FAILURE_RATE
from persrm_gen.progress import console
from persrm_gen.records import AXES, MIXED_SHARE, STRATEGIES
from persrm_gen.redact import redact_command


def build(
    ctx: typer.Context,
    authors: Path = typer.Option(..., "--authors", help="authors.jsonl: one author per line with writing samples."),
    out: Path = typer.Option(Path("out"), "--out", "-o", help="Output folder (a Hugging Face dataset repository)."),
    backend: str = typer.Option("local", help="local (embedded model, offline), openai (or any OpenAI-compatible server with --base-url), anthropic."),
    model: Optional[str] = typer.Option(None, help="Model name for API backends; a local Hugging Face folder for --backend local (default: the embedded Gemma 3 270M)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM, llama.cpp, Ollama)."),
    context_size: int = typer.Option(3, help="K: few-shot samples of the author shown with each task."),
    positive: str = typer.Option("mixed", help="real (the author's own continuation), style-matched (a generation conditioned on the author's samples) or mixed (a share of the targets, --mixed-share, seeded, get a style-matched one)."),
    mixed_share: float = typer.Option(MIXED_SHARE, help="With --positive mixed: the share of targets (seeded) whose positive is a style-matched generation."),
    negative_draws: int = typer.Option(1, help="Draws of each mimic and randomize negative (and other-author, when generated); the one nearest the positive in word length, sentence length, type-token ratio and commas is kept (a context-blind judge reads those)."),
    negatives: Optional[str] = typer.Option(None, help=f"Comma list from {','.join(STRATEGIES)} (default: all)."),
    axes: Optional[str] = typer.Option(None, help=f"Axes for the axes strategy, from {','.join(AXES)} (default: all)."),
    test_authors: Optional[str] = typer.Option(None, help="Unseen test authors: a number, or a file with one author id per line (default: 20%)."),
    holdout_genre: Optional[str] = typer.Option(None, help="Hold this genre out as test_unseen_genre."),
    test_fraction: float = typer.Option(0.2, help="Share of each seen author's samples kept for test_seen_authors."),
    max_targets_per_author: Optional[int] = typer.Option(None, help="Use at most this many target samples per author (quick builds)."),
    seed: int = typer.Option(0, help="Seed for splits, A/B placement and sampling."),
    prompts_dir: Optional[Path] = typer.Option(None, help="Folder with .j2 templates overriding the built-in ones by name."),
    rationales: str = typer.Option("auto", help="auto, evidence (from measured style features) or llm (the model writes traces)."),
    temperature: float = typer.Option(0.8, help="Sampling temperature for generations."),
    max_new_tokens: int = typer.Option(320, help="Cap on max_tokens of each candidate generation: positives and negatives, each asking for what the chosen text's length needs. Not the judge: --rationales llm requests take 800 tokens each, room for a reasoning trace that cites the evidence and ends in its answer tag (cut short, it would be re-sampled)."),
    concurrency: int = typer.Option(16, help="Requests in flight (API backends)."),
    batch_size: int = typer.Option(8, help="Batch size of the local backend."),
    device: str = typer.Option("auto", help="Local backend device: auto, cpu, cuda."),
    threads: Optional[int] = typer.Option(None, help="CPU threads of the local backend (default: all cores)."),
    rpm: Optional[float] = typer.Option(None, help="Requests per minute limit."),
    tpm: Optional[float] = typer.Option(None, help="Tokens per minute limit."),
    timeout: float = typer.Option(120.0, help="Per-request timeout in seconds."),
    batch: bool = typer.Option(False, "--batch", help="Send the requests through the provider's batch API (openai, anthropic): about half price, results within its 24 h window. Interrupted? Re-run the same command: it re-attaches to the batches in flight."),
    batch_poll: float = typer.Option(60.0, help="With --batch: seconds between status polls (backing off from 1 s up to this)."),
    max_cost: Optional[float] = typer.Option(None, help="Stop cleanly before spending more than this many USD."),
    max_requests: Optional[int] = typer.Option(None, help="Stop cleanly before sending more requests than this."),
    max_attempts: int = typer.Option(3, help="Samples of an LLM output whose format or verdict is rejected (each after one identical retry)."),
    max_failure_rate: float = typer.Option(DEFAULT_MAX_FAILURE_RATE, help="Stop (exit 3) when more than this share of a stage's requests fail or give unusable output."),
    new_cache: bool = typer.Option(False, help="Start an empty cache where a manifest shows an earlier build (its cache.sqlite was deleted or moved aside): every request is paid again."),
    shard_authors: int = typer.Option(20, help="Authors per shard: each shard goes through every stage and is written (and resumable) before the next starts, so memory stays bounded."),
    num_shards: int = typer.Option(1, help="Split the authors into this many partitions by a hash of author_id, one per machine (see --shard-index and `persrm-gen merge`)."),
    shard_index: int = typer.Option(0, help="Which partition (0 .. --num-shards - 1) this build makes; each goes into its own --out."),
    swap_check: bool = typer.Option(False, help="Judge both A/B orders; keep only pairs judged consistently."),
    trace_hint: bool = typer.Option(False, help="After the unhinted judge attempts fail, one last attempt is told which response the author wrote and asked for the reasoning; such rows are marked rationale_source llm-hinted."),
    max_blind_confidence: Optional[float] = typer.Option(None, help="Drop pairs that a judge seeing only the two responses (no author samples) gets right with at least this confidence, e.g. 0.8 (default: off; the audit is reported either way)."),
    dry_run: bool = typer.Option(False, help="Render every prompt and print request count, tokens and cost; call nothing."),
    license: Optional[str] = typer.Option(None, help="License for the dataset card (e.g. cc-by-4.0)."),
    language: Optional[str] = typer.Option(None, help="Comma list of language codes for the card (default: en)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON file: defaults for any option above (snake_case names) and a 'pricing:' table (USD per 1M tokens: input, output, optional cached_input, cache_write, batch_multiplier); the command line wins."),
) -> None:
    """Build a personalized preference dataset from authors.jsonl into the --out folder.

    The folder is a Hugging Face dataset repository: data/<config>/<split>-NNNNN-of-MMMMM.parquet for the
    configs pairs, sft, rft and preference, a dataset card (README.md), manifest.json and
    cache.sqlite. Re-running the same command reuses the cache and resumes an interrupted run.
    """
    from persrm_gen.pipeline.options import load_build_options  # noqa: PLC0415 - keeps --help fast

    given = {name: value for name, value in ctx.params.items()
             if name not in ("config", "quiet") and ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}
    opts = load_build_options(given, config, command=redact_command(["persrm-gen", *sys.argv[1:]]))
    if opts.dry_run:
        from persrm_gen.pipeline.dryrun import run_dry  # noqa: PLC0415

        run_dry(opts)
        return
    from persrm_gen.pipeline.build import run_build  # noqa: PLC0415

    result = run_build(opts, quiet=quiet)
    if result.up_to_date:
        pairs = sum(result.counts.get("pairs", {}).values())
        console.print(f"[green]up to date[/green]: {result.out} holds the {pairs} pairs this command builds from "
                      "these inputs (nothing changed since, 0 requests); delete its .built file to rebuild anyway",
                      highlight=False)
        return
    pairs = sum(result.counts.get("pairs", {}).values())
    sft = sum(result.counts.get("sft", {}).values())
    # traces re-written and positives that fell back to the author's text are no pairs lost
    dropped = sum(v for k, v in result.rejections.items() if not k.startswith(("sft_", "trace_", "positive_fallback")))
    cost = result.manifest.get("usage", {}).get("total", {})
    saved = f", discounts saved ${cost['saved_usd']:.4f}" if cost.get("saved_usd", 0) > 0 else ""
    console.print(
        f"[green]built[/green] {pairs} pairs ({sft} with a trace in sft) into {result.out} "
        f"({result.requests_sent} requests sent, {result.cache_hits} from cache, {result.failed} failed)"
        f"{f', resuming after {result.resumed} of {result.shards} shards built earlier' if result.resumed else ''}; "
        f"dataset cost ${cost.get('cost_usd', 0):.4f} billed{saved}; "
        f"{dropped} candidates or pairs "
        f"dropped by validators. Next: persrm-gen validate {result.out}; persrm-gen stats {result.out}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Attach ``build`` to the main app."""
    app.command()(build)
