"""``persrm-gen build``: authors.jsonl -> splits -> tasks -> candidates -> judgments
-> validators -> dataset + card + manifest. Data flows one way; every model call goes
through one client with one durable cache, so a re-run or a resumed run pays nothing twice.
"""

from __future__ import annotations

import os
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from persrm_gen import __version__
from persrm_gen.authors.reader import load_authors
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.corpus import Corpus
from persrm_gen.dataset.writer import config_rows, pair_row, write_data, write_json
from persrm_gen.errors import InputError, UsageError
from persrm_gen.llm.cache import RequestCache
from persrm_gen.generator.candidates import CandidateFactory, Job, resampled, to_candidate
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.client import run as client_run
from persrm_gen.llm.failure_rate import FailureRate
from persrm_gen.llm.faults import TransientError
from persrm_gen.llm.pricing import Pricing
from persrm_gen.generator.parsing import UnparseableOutput, clean_rewrite
from persrm_gen.prompts.judge import judge_messages, preference_messages
from persrm_gen.answer import make_trace
from persrm_gen.generator.judgments import assign_labels
from persrm_gen.dataset.folder import OutputFolder
from persrm_gen.pipeline.preflight import check_templates
from persrm_gen.progress import console, make_progress, stage
from persrm_gen.generator.rationales import RationaleOptions, write_rationales
from persrm_gen.redact import redact_text, redact_url
from persrm_gen.records import Candidate, Pair, Task
from persrm_gen.pipeline.splits import plan_splits, read_test_authors
from persrm_gen.style import AuthorProfile, style_margin
from persrm_gen.pipeline.tasks import TaskOptions, make_tasks
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.textutil import rng_for, stable_id
from persrm_gen.llm.usage import DatasetUsage


@dataclass
class BuildResult:
    out: Path
    counts: dict
    rejections: dict
    requests_sent: int
    cache_hits: int
    manifest: dict
    failed: int = 0  # requests given up on (faults, replies rejected after every try)


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
    from persrm_gen.dataset.validators import ValidatorConfig, validate_pairs  # noqa: PLC0415

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
    factory = CandidateFactory(renderer, opts.candidate_options(model_name), chat=chat, corpus=corpus)
    pos_jobs = factory.positive_jobs(tasks)
    chosen: dict[str, Candidate] = {}
    for job, cand in zip(pos_jobs, await _run_jobs(client, pos_jobs, progress, "positives", usage, opts)):
        if cand is None:
            drops["unusable_positive"] += 1
        else:
            chosen[job.task.id] = cand
    by_id = {t.id: t for t in tasks}
    neg_jobs = [j for t in tasks if t.id in chosen for j in factory.negative_jobs(t, chosen[t.id].text)]
    negatives: list[Candidate] = []
    for job, cand in zip(neg_jobs, await _run_jobs(client, neg_jobs, progress, "negatives", usage, opts)):
        if cand is None:
            drops[f"unusable_{job.strategy}"] += 1
        else:
            negatives.append(cand)
    pairs, screened = _screen(_make_pairs(by_id, chosen, negatives, opts, model_name), progress)
    drops.update(screened)
    _place(pairs, opts.seed)
    ropt = RationaleOptions(
        mode=opts.rationale_mode(chat), model=model_name, max_attempts=opts.max_attempts,
        swap_check=opts.swap_check, seed=opts.seed, max_failure_rate=opts.max_failure_rate,
    )
    drops.update(await write_rationales(pairs, client, renderer, ropt, progress, usage))
    return pairs, drops


def _manifest(opts: BuildOptions, renderer: PromptRenderer, plan, model_name: str, counts: dict, rejections: dict, skipped: dict, usage: dict) -> dict:
    """Everything needed to reproduce the build; deterministic (no clocks), so a re-run is byte-identical."""
    from persrm_gen.versions import package_versions  # noqa: PLC0415 - small, only needed here

    return {
        "persrm_gen_version": __version__,
        "command": redact_text(opts.command),
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
    from persrm_gen.llm.backends import make_transport as make_backend  # noqa: PLC0415

    if opts.backend == "local":
        from transformers.utils import logging as hf_logging  # noqa: PLC0415 - torch is slow to import

        from persrm_gen.llm.transports.local_model import resolve_model  # noqa: PLC0415

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
        pricing=Pricing(opts.pricing),
    )


def open_build_cache(opts: BuildOptions) -> RequestCache:
    """OUT/cache.sqlite; refused when it is missing beside a manifest (a build without its
    cache pays for every request again) unless ``--new-cache`` says that is what we want."""
    path, manifest = opts.out / "cache.sqlite", opts.out / "manifest.json"
    if not path.exists() and manifest.is_file() and not opts.new_cache:
        raise UsageError(f"{path} is missing but {manifest} is there: building without that cache pays for "
                         "every request again. Put the cache back, or pass --new-cache to start an empty one")
    return RequestCache(path)


def run_build(opts: BuildOptions, *, quiet: bool = False) -> BuildResult:
    if opts.backend != "local":  # a missing key fails before anything else
        from persrm_gen.llm.backends import api_key  # noqa: PLC0415

        api_key(opts.backend)
    folder = OutputFolder(opts.out)
    folder.check()  # a folder we may not write is refused before anything else
    prepared = prepare(opts)
    _authors, renderer, _plan, tasks, _skipped, corpus = prepared
    transport, model_name = make_transport(opts)
    # Every template renders once before the folder is touched or a request is paid.
    check_templates(opts, renderer, tasks, corpus, chat=bool(transport.supports_chat), model=model_name)
    with folder.writing() as staging:  # locked until the build ends; an empty staging folder
        return _build_into(opts, prepared, transport, model_name, folder, staging, quiet=quiet)


def _build_into(opts: BuildOptions, prepared, transport, model_name: str, folder: OutputFolder, staging: Path,
                *, quiet: bool) -> BuildResult:
    from persrm_gen.cards.dataset_card import write_dataset_card  # noqa: PLC0415
    from persrm_gen.dataset.stats import compute_stats  # noqa: PLC0415
    from persrm_gen.dataset.validators import ValidatorConfig, validate_pairs  # noqa: PLC0415

    _authors, renderer, plan, tasks, skipped, corpus = prepared
    out = opts.out
    cache = open_build_cache(opts)
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
            preference_prompt=lambda r: preference_messages(r["context"], r["query"], renderer=renderer),
        )
        counts = write_data(staging, by_config)
        manifest = _manifest(opts, renderer, plan, model_name, counts, rejections, skipped, usage.to_dict())
        write_json(staging / "manifest.json", manifest)
        write_dataset_card(staging, manifest, compute_stats(kept, rejections), previous=out / "README.md")
        folder.publish()
        return BuildResult(out, counts, rejections, client.accounting.requests, client.accounting.cache_hits, manifest,
                           failed=client.accounting.total().failures)
    finally:
        cache.close()


async def _generate_and_close(opts, client, renderer, tasks, corpus, progress, model_name, usage):
    client.handle_signals()  # SIGINT: finish in-flight writes, then stop with a resume hint
    try:
        return await generate(opts, client, renderer, tasks, corpus, progress, model_name, usage)
    finally:
        await client.aclose()
