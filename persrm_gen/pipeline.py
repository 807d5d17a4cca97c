"""``persrm-gen build``: authors.jsonl -> splits -> tasks -> candidates -> judgments
-> validators -> dataset + card + manifest. Data flows one way; every model call goes
through one client with one durable cache, so a re-run or a resumed run pays nothing twice.
"""

from __future__ import annotations

import os
import platform
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from persrm_gen import __version__
from persrm_gen.authors import load_authors
from persrm_gen.cards.merge import read_card
from persrm_gen.corpus import Corpus
from persrm_gen.dataset import config_rows, pair_row, publish_staging, write_data, write_json
from persrm_gen.errors import InputError
from persrm_gen.generator.cache import RequestCache
from persrm_gen.generator.candidates import CandidateFactory, CandidateOptions, Job, to_candidate
from persrm_gen.generator.client import LLMClient
from persrm_gen.generator.client import run as client_run
from persrm_gen.generator.pricing import Pricing
from persrm_gen.generator.parsing import UnparseableOutput, clean_rewrite
from persrm_gen.judge_prompt import judge_messages
from persrm_gen.answer import make_trace
from persrm_gen.judgments import assign_labels
from persrm_gen.progress import console, make_progress, stage
from persrm_gen.rationales import RationaleOptions, write_rationales
from persrm_gen.redact import redact_home, redact_url
from persrm_gen.records import AXES, STRATEGIES, Candidate, Pair, Task
from persrm_gen.splits import plan_splits, read_test_authors
from persrm_gen.style import AuthorProfile, style_margin
from persrm_gen.tasks import TaskOptions, make_tasks
from persrm_gen.templating import PromptRenderer
from persrm_gen.textutil import rng_for, stable_id
from persrm_gen.usage import DatasetUsage


@dataclass
class BuildOptions:
    authors: Path
    out: Path = Path("out")
    backend: str = "local"
    model: str | None = None
    base_url: str | None = None
    context_size: int = 3
    positive: str = "real"
    negatives: tuple[str, ...] = STRATEGIES
    axes: tuple[str, ...] = AXES
    test_authors: str | None = None
    holdout_genre: str | None = None
    test_fraction: float = 0.2
    max_targets_per_author: int | None = None
    seed: int = 0
    prompts_dir: Path | None = None
    rationales: str = "auto"  # auto | evidence | llm
    temperature: float = 0.8
    max_new_tokens: int = 160
    # client and backend
    concurrency: int = 16
    batch_size: int = 8
    device: str = "auto"
    threads: int | None = None  # CPU threads of the local backend (default: all cores)
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    max_cost: float | None = None
    max_requests: int | None = None
    max_attempts: int = 3
    swap_check: bool = False
    dry_run: bool = False
    # card
    license: str | None = None
    language: tuple[str, ...] | None = None
    command: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class BuildResult:
    out: Path
    counts: dict
    rejections: dict
    requests_sent: int
    cache_hits: int
    manifest: dict


def prepare(opts: BuildOptions):
    """Everything decided before any model call: authors, splits, tasks. Raises InputError."""
    reason = f"1 target + {opts.context_size} context samples (see --context-size)"
    authors = load_authors(opts.authors, min_samples=opts.context_size + 1, min_samples_reason=reason)
    renderer = PromptRenderer(opts.prompts_dir)
    test_authors = read_test_authors(opts.test_authors, [a.author_id for a in authors], opts.seed)
    plan = plan_splits(
        authors, test_authors=test_authors, holdout_genre=opts.holdout_genre,
        test_fraction=opts.test_fraction, context_size=opts.context_size, seed=opts.seed,
    )
    task_opt = TaskOptions(context_size=opts.context_size)
    tasks, skipped = make_tasks(authors, plan, renderer, task_opt, opts.seed)
    tasks = _limit_targets(tasks, opts)
    if not tasks:
        raise InputError(f"{opts.authors}: no usable target samples (skipped: {skipped or 'none'})")
    read_card(opts.out / "README.md")  # the card merges into it: an unreadable one stops us now, not after paying
    corpus = Corpus(authors, plan, task_opt, opts.seed)
    return authors, renderer, plan, tasks, skipped, corpus


def _limit_targets(tasks: list[Task], opts: BuildOptions) -> list[Task]:
    if not opts.max_targets_per_author:
        return tasks
    by_author: dict[str, list[Task]] = {}
    for t in tasks:
        by_author.setdefault(t.author_id, []).append(t)
    keep: set[str] = set()
    for aid, ts in by_author.items():
        # round-robin over the author's splits, so a quick build still has every split
        rng = rng_for(opts.seed, "limit", aid)
        per_split: dict[str, list[Task]] = {}
        for t in sorted(ts, key=lambda t: t.id):
            per_split.setdefault(t.split, []).append(t)
        quota = opts.max_targets_per_author
        picked: list[Task] = []
        while len(picked) < quota and any(per_split.values()):
            for split in sorted(per_split):
                if per_split[split] and len(picked) < quota:
                    picked.append(per_split[split].pop(rng.randrange(len(per_split[split]))))
        keep |= {t.id for t in picked}
    return [t for t in tasks if t.id in keep]


async def _run_jobs(client: LLMClient, jobs: list[Job], progress, label: str, usage: DatasetUsage) -> list[Candidate | None]:
    requests = [j.request for j in jobs if j.request is not None]
    responses: list = []
    if requests:
        # Sampled API outputs that cannot be parsed are retried like a transient fault
        # (same cache key). Local generation is deterministic, so a retry would repeat it.
        validate = _rewrite_ok if client.transport.provider != "local" and client.transport.supports_chat else None
        with stage(progress, label, len(requests), info=client.accounting.summary) as tick:
            responses = await client.complete_many(requests, on_done=tick, validate=validate, return_exceptions=True)
        usage.add(requests, responses)
    it = iter(responses)
    out = []
    for j in jobs:
        raw = next(it) if j.request is not None else None
        out.append(None if isinstance(raw, BaseException) else to_candidate(j, raw.text if raw is not None else None))
    return out


def _rewrite_ok(text: str) -> bool:
    try:
        clean_rewrite(text)
    except UnparseableOutput:
        return False
    return True


def _make_pairs(tasks: dict[str, Task], chosen: dict[str, Candidate], negatives: list[Candidate], opts: BuildOptions, backend_model: str) -> list[Pair]:
    """Pairs with their style margin; A/B placement comes later, over the pairs that survive."""
    pairs: list[Pair] = []
    for neg in negatives:
        task, pos = tasks[neg.task_id], chosen[neg.task_id]
        profile = AuthorProfile.from_context(task.context)  # cached per context
        pairs.append(Pair(
            id=stable_id(neg.task_id, neg.strategy), author_id=task.author_id, genre=task.genre, query=task.query,
            context=list(task.context), chosen=pos.text, rejected=neg.text, chosen_source=pos.source,
            rejected_source=neg.source, response_a=pos.text, response_b=neg.text, label="A",
            rationale=make_trace("provisional", "A"),
            style_margin=round(float(style_margin(pos.text, neg.text, profile)), 6), split=task.split,
            strategy=neg.strategy, chosen_strategy=pos.strategy, sample_id=task.sample_id,
            backend=opts.backend, model=backend_model,
        ))
    return pairs


def _screen(pairs: list[Pair], progress) -> tuple[list[Pair], Counter]:
    """Content validators (duplicates, leakage, copies, margins) before any trace is paid for.

    Runs on provisional A/B placement; placement and traces do not change what these check.
    """
    from persrm_gen.validators import ValidatorConfig, validate_pairs  # noqa: PLC0415

    with stage(progress, "screen candidates", 1) as tick:
        report = validate_pairs([pair_row(p) for p in pairs], ValidatorConfig())
        tick()
    kept_ids = {r["id"] for r in report.kept}
    return [p for p in pairs if p.id in kept_ids], Counter(report.counts())


def _place(pairs: list[Pair], seed: int) -> None:
    """A/B placement, shuffled with the seed and balanced per author over the kept pairs."""
    labels = assign_labels([(p.author_id, p.id) for p in pairs], seed)
    for p in pairs:
        p.label = labels[p.id]
        p.response_a, p.response_b = (p.chosen, p.rejected) if p.label == "A" else (p.rejected, p.chosen)


async def generate(opts: BuildOptions, client: LLMClient, renderer: PromptRenderer, tasks: list[Task], corpus: Corpus, progress, model_name: str, usage: DatasetUsage) -> tuple[list[Pair], Counter]:
    drops: Counter = Counter()
    chat = bool(client.transport.supports_chat)  # instruction model: prompts as chat messages
    factory = CandidateFactory(renderer, CandidateOptions(
        model=model_name, positive=opts.positive, negatives=opts.negatives, axes=opts.axes,
        temperature=opts.temperature, max_new_tokens=opts.max_new_tokens, seed=opts.seed,
    ), chat=chat, corpus=corpus)
    pos_jobs = factory.positive_jobs(tasks)
    chosen: dict[str, Candidate] = {}
    for job, cand in zip(pos_jobs, await _run_jobs(client, pos_jobs, progress, "positives", usage)):
        if cand is None:
            drops["unusable_positive"] += 1
        else:
            chosen[job.task.id] = cand
    by_id = {t.id: t for t in tasks}
    neg_jobs = [j for t in tasks if t.id in chosen for j in factory.negative_jobs(t, chosen[t.id].text)]
    negatives: list[Candidate] = []
    for job, cand in zip(neg_jobs, await _run_jobs(client, neg_jobs, progress, "negatives", usage)):
        if cand is None:
            drops[f"unusable_{job.strategy}"] += 1
        else:
            negatives.append(cand)
    pairs, screened = _screen(_make_pairs(by_id, chosen, negatives, opts, model_name), progress)
    drops.update(screened)
    _place(pairs, opts.seed)
    ropt = RationaleOptions(
        mode=_rationale_mode(opts, chat), model=model_name, max_attempts=opts.max_attempts,
        swap_check=opts.swap_check, seed=opts.seed,
    )
    drops.update(await write_rationales(pairs, client, renderer, ropt, progress, usage))
    return pairs, drops


def _rationale_mode(opts: BuildOptions, chat: bool) -> str:
    if opts.rationales == "auto":
        return "llm" if chat else "evidence"
    if opts.rationales == "llm" and not chat:
        raise InputError("--rationales llm needs an instruction (chat) model; the embedded base model writes evidence traces")
    return opts.rationales


def _manifest(opts: BuildOptions, renderer: PromptRenderer, plan, model_name: str, counts: dict, rejections: dict, skipped: dict, usage: dict) -> dict:
    """Everything needed to reproduce the build; deterministic (no clocks), so a re-run is byte-identical."""
    from persrm_gen.versions import package_versions  # noqa: PLC0415 - small, only needed here

    return {
        "persrm_gen_version": __version__,
        "command": redact_home(opts.command),
        "backend": opts.backend,
        "model": model_name,
        "base_url": redact_url(opts.base_url),
        "seed": opts.seed,
        "context_size": opts.context_size,
        "positive": opts.positive,
        "negatives": list(opts.negatives),
        "axes": list(opts.axes),
        "rationales": opts.rationales,
        "swap_check": opts.swap_check,
        "templates": renderer.used_hashes(),
        "splits": {"test_authors": plan.test_authors, "holdout_genre": plan.holdout_genre, "test_fraction": opts.test_fraction,
                   "samples": plan.counts()},
        "counts": counts,
        "rejections": rejections,
        "skipped_samples": skipped,
        "usage": usage,
        "versions": package_versions(),
        "python": platform.python_version(),
        "license": opts.license,
        "language": list(opts.language) if opts.language else None,
    }


def make_transport(opts: BuildOptions):
    """(transport, model name). API backends check their key here, before any work."""
    from persrm_gen.generator.backends import make_transport as make_backend  # noqa: PLC0415

    if opts.backend == "local":
        from transformers.utils import logging as hf_logging  # noqa: PLC0415 - torch is slow to import

        from persrm_gen.generator.local_model import resolve_model  # noqa: PLC0415

        hf_logging.disable_progress_bar()  # ours are the progress bars; theirs garble the display
        os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF converter's bar ignores the switch above

        with console.status("preparing the local model (the first run converts the embedded model, about a minute)"):
            folder, name = resolve_model(opts.model, lambda msg: console.log(msg))
        transport = make_backend("local", str(folder), local_options={"device": opts.device, "batch_size": opts.batch_size, "num_threads": opts.threads})
        return transport, name
    transport = make_backend(opts.backend, opts.model, base_url=opts.base_url, timeout=opts.timeout)
    return transport, opts.model


def make_client(opts: BuildOptions, transport, cache: RequestCache) -> LLMClient:
    local = opts.backend == "local"
    return LLMClient(
        transport, cache, concurrency=opts.concurrency if not local else max(opts.concurrency, 4 * opts.batch_size),
        rpm=opts.rpm, tpm=opts.tpm, max_cost=opts.max_cost, max_requests=opts.max_requests,
        # a CPU batch can take minutes: the local backend has no per-request timeout
        timeout=None if local else opts.timeout,
        pricing=Pricing(opts.extra.get("pricing")),
    )


def run_build(opts: BuildOptions, *, quiet: bool = False) -> BuildResult:
    from persrm_gen.cards.dataset_card import write_dataset_card  # noqa: PLC0415
    from persrm_gen.stats import compute_stats  # noqa: PLC0415
    from persrm_gen.validators import ValidatorConfig, validate_pairs  # noqa: PLC0415

    if opts.backend != "local":  # a missing key fails before anything else
        from persrm_gen.generator.backends import api_key  # noqa: PLC0415

        api_key(opts.backend)
    authors, renderer, plan, tasks, skipped, corpus = prepare(opts)
    transport, model_name = make_transport(opts)
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    cache = RequestCache(out / "cache.sqlite")
    client = make_client(opts, transport, cache)
    usage = DatasetUsage(client.pricing)
    try:
        with make_progress(quiet) as progress:
            pairs, drops = client_run(_generate_and_close(opts, client, renderer, tasks, corpus, progress, model_name, usage))
            rows = [pair_row(p) for p in pairs]
            with stage(progress, "validate", 1) as tick:
                report = validate_pairs(rows, ValidatorConfig())
                tick()
        kept = sorted(report.kept, key=lambda r: (r["split"], r["author_id"], r["id"]))
        if not kept:
            raise InputError(f"{opts.authors}: every pair was rejected ({dict(report.counts())}); nothing to write")
        rejections = dict(sorted((Counter(report.counts()) + drops).items()))
        by_config = config_rows(
            kept,
            judge_prompt=lambda r: judge_messages(r["context"], r["query"], r["response_a"], r["response_b"], renderer=renderer),
            preference_prompt=lambda r: [{"role": m.role, "content": m.content}
                                         for m in renderer.messages("preference", context=r["context"], query=r["query"])],
        )
        staging = out / ".staging"
        counts = write_data(staging, by_config)
        manifest = _manifest(opts, renderer, plan, model_name, counts, rejections, skipped, usage.to_dict())
        write_json(staging / "manifest.json", manifest)
        publish_staging(staging, out)
        write_dataset_card(out, manifest, compute_stats(kept, rejections))
        return BuildResult(out, counts, rejections, client.accounting.requests, client.accounting.cache_hits, manifest)
    finally:
        cache.close()


async def _generate_and_close(opts, client, renderer, tasks, corpus, progress, model_name, usage):
    client.handle_signals()  # SIGINT: finish in-flight writes, then stop with a resume hint
    try:
        return await generate(opts, client, renderer, tasks, corpus, progress, model_name, usage)
    finally:
        await client.aclose()
