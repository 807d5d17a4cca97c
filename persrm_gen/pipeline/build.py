"""``persrm-gen build``: authors.jsonl -> splits -> then, shard of authors by shard, tasks ->
candidates -> pairs -> labels -> rationales -> row checks -> the shard's rows on disk; once
every shard is done, the checks across shards -> dataset + card + manifest.

Data flows one way, one stage module per step; every model call goes through one client
with one durable cache, so a re-run or a resumed run pays nothing twice, and finished shards
(``shardstore``) are not even computed again. Memory holds one shard's pairs at a time plus
compact per-row state for the cross-shard checks.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from persrm_gen.dataset.compact import Verdicts, compact_table
from persrm_gen.dataset.folder import OutputFolder
from persrm_gen.dataset.schema import SPLITS
from persrm_gen.errors import InputError
from persrm_gen.generator.candidates import CandidateFactory
from persrm_gen.generator.rationales import JudgeTally, write_rationales
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.client import run as client_run
from persrm_gen.llm.usage import DatasetUsage
from persrm_gen.pipeline.assemble import Unit
from persrm_gen.pipeline.backend import (
    check_key,
    make_client,
    make_transport,
    open_build_cache,
)
from persrm_gen.pipeline.candidates import make_candidates
from persrm_gen.pipeline.manifest import build_manifest, shortcut_summary
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.pairs import make_pairs, place_labels
from persrm_gen.pipeline.preflight import check_templates
from persrm_gen.pipeline.prepare import Prepared, prepare, shard_tasks
from persrm_gen.pipeline.shards import author_shards, in_partition
from persrm_gen.pipeline.shardstore import ShardStore, fingerprint
from persrm_gen.pipeline.uptodate import manifest_if_up_to_date, stamp
from persrm_gen.pipeline.validate import check_traces, screen
from persrm_gen.pipeline.write import shard_configs, write_dataset
from persrm_gen.progress import ShardProgress, make_progress
from persrm_gen.redact import redact_text


SHARDS_IN_FLIGHT = 2


@dataclass
class BuildResult:
    out: Path
    counts: dict
    rejections: dict
    requests_sent: int
    cache_hits: int
    manifest: dict
    failed: int = 0  # requests given up on (faults, replies rejected after every try)
    shards: int = 0  # shards of authors in this build
    resumed: int = 0  # of them, finished by an earlier, interrupted run
    up_to_date: bool = False  # the folder already held what this command makes (pipeline.uptodate)


def run_build(opts: BuildOptions, *, quiet: bool = False) -> BuildResult:
    check_key(opts)  # a missing key fails before anything else
    folder = OutputFolder(opts.out)
    folder.check()  # a folder we may not write is refused before anything else
    prepared = prepare(opts, tasks=False)
    shards = author_shards(in_partition(prepared.authors, opts.num_shards, opts.shard_index), opts.shard_authors)
    first = _first_tasks(prepared, shards, opts)
    transport, model = make_transport(opts)
    # Every template renders once before the folder is touched or a request is paid.
    check_templates(opts, prepared._replace(tasks=first), chat=bool(transport.supports_chat), model=model)
    made_from, command = fingerprint(opts, prepared.renderer.used_hashes()), redact_text(opts.command)
    # locked until the build ends; an empty staging folder, published whole
    with folder.writing() as staging:
        if (done := manifest_if_up_to_date(opts.out, made_from, command)) is not None:
            return BuildResult(opts.out, done.get("counts", {}), done.get("rejections", {}), 0, 0, done,
                               up_to_date=True)
        with closing(open_build_cache(opts)) as cache:
            store = ShardStore(opts.out, made_from)
            store.open()
            resumed = sum(store.is_done(i) for i in range(len(shards)))
            client = make_client(opts, transport, cache)
            with make_progress(quiet) as progress:
                client_run(_generate(opts, prepared, shards, store, client, model, progress))
            n_shards = len(shards)
            # Every sample's text (the authors, the corpus of other authors' texts) is done with:
            # freed before the end step, which reads only compact rows (``dataset.compact``).
            del shards, first
            prepared = prepared._replace(authors=[], corpus=None)
            gc.collect()
            counts, rejections, manifest = _end_step(opts, prepared, model, staging, store, n_shards, client)
            folder.publish()
            store.clear()
            stamp(opts.out, made_from, command)
            return BuildResult(opts.out, counts, rejections, client.accounting.requests, client.accounting.cache_hits,
                               manifest, failed=client.accounting.total().failures, shards=n_shards, resumed=resumed)


def _end_step(opts: BuildOptions, prepared: Prepared, model: str, staging: Path, store: ShardStore, n_shards: int,
              client: LLMClient) -> tuple[dict, dict, dict]:
    """Every finished shard into ``staging``: the checks across shards, the published files,
    the manifest and the card, from the shards' files and summaries alone. (counts,
    rejections, manifest)."""
    # one shard's summary at a time: its verdicts go into one compact mapping (dataset.compact)
    rejections, skipped, usage, verdicts, tally = _totals((store.summary(i) for i in range(n_shards)), client)

    def manifest_for(counts: dict, rejections: dict, rows: list[dict], stats: dict) -> dict:
        spent = usage.to_dict()
        if tally.requests:  # judge requests per kept trace by strategy
            spent["judge_requests_by_strategy"] = tally.to_dict(rows)
        return build_manifest(opts, prepared.renderer, prepared.plan, model, counts, rejections, skipped, spent,
                              shortcuts=shortcut_summary(stats))

    return write_dataset(
        staging, [Unit.of_folder(store.path(i)) for i in range(n_shards)], rejections, link=True,
        source=str(opts.authors), predicted=verdicts, previous_card=opts.out / "README.md",
        manifest_for=manifest_for, compact_of=store.compact,
    )


def _first_tasks(prepared: Prepared, shards: list[list], opts: BuildOptions) -> list:
    """The first shard's tasks that has any (the start-up template check renders one), or
    InputError when no author has a usable target."""
    skipped: Counter = Counter()
    for authors in shards:
        tasks, why = shard_tasks(prepared, authors, opts)
        if tasks:
            return tasks
        skipped.update(why)
    raise InputError(f"{opts.authors}: no usable target samples (skipped: {dict(skipped) or 'none'})")


def _totals(summaries: Iterable[dict], client: LLMClient) -> tuple[Counter, dict, DatasetUsage, Verdicts, JudgeTally]:
    """(drops, samples skipped, usage, style verdicts, judge requests) over every shard."""
    drops: Counter = Counter()
    skipped: Counter = Counter()
    usage = DatasetUsage(client.pricing)
    verdicts = Verdicts()
    tally = JudgeTally()
    for s in summaries:
        drops.update(s["drops"])
        skipped.update(s["skipped"])
        _add_usage(usage, s["usage"])
        verdicts.update(s["verdicts"])
        tally.requests.update(s["judge"]["requests"])
        tally.hinted.update(s["judge"]["hinted"])
    return drops, dict(sorted(skipped.items())), usage, verdicts, tally


def _add_usage(usage: DatasetUsage, stages: dict) -> None:
    """Add one shard's usage (``DatasetUsage.stages``) to ``usage``, every counted field summed."""
    for name, fields in stages.items():
        into = usage.stages.setdefault(name, {})
        for key, value in fields.items():
            into[key] = into.get(key, 0) + value


async def _generate(opts: BuildOptions, prepared: Prepared, shards: list[list], store: ShardStore, client: LLMClient,
                    model: str, progress) -> None:
    """Every unfinished shard, each saved to the store as it finishes. Two shards are under
    way at a time: while one waits for its last requests or measures its pairs, the next
    one's requests are already in flight (a shard's rows never depend on another's)."""
    client.handle_signals()  # SIGINT/SIGTERM: finish paid in-flight writes, then stop with a resume hint
    try:
        chat = bool(client.transport.supports_chat)  # instruction model: prompts as chat messages
        factory = CandidateFactory(prepared.renderer, opts.candidate_options(model), chat=chat, corpus=prepared.corpus)
        todo = [i for i in range(len(shards)) if not store.is_done(i)]
        overall = progress.add_task("shards", total=len(shards), completed=len(shards) - len(todo), info="")
        turns = asyncio.Semaphore(SHARDS_IN_FLIGHT)  # FIFO: shards start in order

        async def one(i: int) -> None:
            async with turns:
                with ShardProgress(progress, f"shard {i + 1}/{len(shards)}: ") as shard_progress:
                    usage, tally = DatasetUsage(client.pricing), JudgeTally()
                    tasks, skipped = shard_tasks(prepared, shards[i], opts)
                    kept, drops, verdicts = await _shard(opts, prepared, factory, client, model, tasks, shard_progress,
                                                         usage, tally)
                    configs, compact = await asyncio.to_thread(_shard_files, kept, prepared.renderer)
                    store.save(i, configs, compact, {"drops": dict(drops), "skipped": skipped, "usage": usage.stages,
                                            "verdicts": verdicts, "judge": {"requests": dict(tally.requests),
                                                                            "hinted": dict(tally.hinted)}})
                progress.update(overall, advance=1)

        await _all_or_none([one(i) for i in todo], client)
    finally:
        await client.aclose()


def _shard_files(kept: list[dict], renderer) -> tuple[dict, pa.Table]:
    """A finished shard's rows per config and split, and its pairs' compact rows (in the
    order of its pairs files: split by split)."""
    configs = shard_configs(kept, renderer)
    pairs = [r for split in SPLITS for r in configs["pairs"].get(split, ())]
    return configs, compact_table(pairs)


async def _all_or_none(coros: list, client: LLMClient) -> None:
    """Run ``coros`` together. On the first error (a budget stop, Ctrl-C, a bug) the client
    sends nothing new, the other shard's requests in flight finish and are cached (they are
    paid for), and the first error is raised as it was. A second Ctrl-C cancels at once."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    except BaseException as exc:
        client.request_stop(exc)
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _shard(opts: BuildOptions, prepared: Prepared, factory: CandidateFactory, client: LLMClient, model: str,
                 tasks: list, progress, usage: DatasetUsage, tally: JudgeTally) -> tuple[list[dict], Counter, dict]:
    """candidates -> pairs -> screen -> labels -> rationales -> row checks for one shard:
    (kept rows in (split, author, id) order, drops per reason, style verdict per kept pair)."""
    drops: Counter = Counter()
    if not tasks:
        return [], drops, {}
    chosen, negatives = await make_candidates(opts, client, factory, tasks, progress, usage, drops)
    # pure CPU work, in a thread so that the other shard's requests keep flowing meanwhile
    pairs, screened = await asyncio.to_thread(lambda: screen(make_pairs(tasks, chosen, negatives, opts, model), progress,
                                                           opts.validator_config()))
    drops.update(screened)
    place_labels(pairs, opts.seed)
    ropt = opts.rationale_options(bool(client.transport.supports_chat), model)
    drops.update(await write_rationales(pairs, client, prepared.renderer, ropt, progress, usage, tally))
    kept, rejected = check_traces(pairs, progress)
    kept.sort(key=lambda r: (r["split"], r["author_id"], r["id"]))
    verdicts = {p.id: p.meta["style_verdict"] for p in pairs}
    return kept, drops + rejected, {r["id"]: verdicts[r["id"]] for r in kept}
