"""``persrm-gen build``: authors.jsonl -> splits -> tasks -> candidates -> pairs -> labels ->
rationales -> validators -> dataset + card + manifest. Data flows one way, one stage module
per step; every model call goes through one client with one durable cache, so a re-run or a
resumed run pays nothing twice.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from persrm_gen.dataset.folder import OutputFolder
from persrm_gen.dataset.validators import REASONS
from persrm_gen.errors import InputError
from persrm_gen.generator.candidates import CandidateFactory
from persrm_gen.generator.rationales import JudgeTally, write_rationales
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.client import run as client_run
from persrm_gen.llm.usage import DatasetUsage
from persrm_gen.pipeline.backend import (
    check_key,
    make_client,
    make_transport,
    open_build_cache,
)
from persrm_gen.pipeline.candidates import make_candidates
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.pairs import make_pairs, place_labels
from persrm_gen.pipeline.preflight import check_templates
from persrm_gen.pipeline.prepare import Prepared, prepare
from persrm_gen.pipeline.validate import check_traces, screen
from persrm_gen.pipeline.write import write_outputs
from persrm_gen.progress import make_progress
from persrm_gen.records import Pair


@dataclass
class BuildResult:
    out: Path
    counts: dict
    rejections: dict
    requests_sent: int
    cache_hits: int
    manifest: dict
    failed: int = 0  # requests given up on (faults, replies rejected after every try)


def run_build(opts: BuildOptions, *, quiet: bool = False) -> BuildResult:
    check_key(opts)  # a missing key fails before anything else
    folder = OutputFolder(opts.out)
    folder.check()  # a folder we may not write is refused before anything else
    prepared = prepare(opts)
    transport, model = make_transport(opts)
    # Every template renders once before the folder is touched or a request is paid.
    check_templates(opts, prepared, chat=bool(transport.supports_chat), model=model)
    # locked until the build ends; an empty staging folder, published whole
    with folder.writing() as staging, closing(open_build_cache(opts)) as cache:
        client = make_client(opts, transport, cache)
        usage = DatasetUsage(client.pricing)
        tally = JudgeTally()
        with make_progress(quiet) as progress:
            pairs, drops = client_run(_generate(opts, prepared, client, model, progress, usage, tally))
            kept, rejected = check_traces(pairs, progress)
        if not kept:
            found = {reason: rejected.get(reason, 0) for reason in REASONS}
            raise InputError(f"{opts.authors}: every pair was rejected ({found}); nothing to write")
        kept.sort(key=lambda r: (r["split"], r["author_id"], r["id"]))
        rejections = dict(sorted((rejected + drops).items()))
        verdicts = {p.id: p.meta["style_verdict"] for p in pairs}
        judge = tally.to_dict(kept) if tally.requests else None
        counts, manifest = write_outputs(opts, prepared, model, staging, kept, rejections, usage, verdicts, judge=judge)
        folder.publish()
        return BuildResult(opts.out, counts, rejections, client.accounting.requests, client.accounting.cache_hits,
                           manifest, failed=client.accounting.total().failures)


async def _generate(opts: BuildOptions, prepared: Prepared, client: LLMClient, model: str, progress,
                    usage: DatasetUsage, tally: JudgeTally) -> tuple[list[Pair], Counter]:
    """candidates -> pairs -> screen -> labels -> rationales; (pairs, drops per reason)."""
    client.handle_signals()  # SIGINT: finish in-flight writes, then stop with a resume hint
    try:
        chat = bool(client.transport.supports_chat)  # instruction model: prompts as chat messages
        factory = CandidateFactory(prepared.renderer, opts.candidate_options(model), chat=chat, corpus=prepared.corpus)
        drops: Counter = Counter()
        chosen, negatives = await make_candidates(opts, client, factory, prepared.tasks, progress, usage, drops)
        pairs, screened = screen(make_pairs(prepared.tasks, chosen, negatives, opts, model), progress)
        drops.update(screened)
        place_labels(pairs, opts.seed)
        ropt = opts.rationale_options(chat, model)
        drops.update(await write_rationales(pairs, client, prepared.renderer, ropt, progress, usage, tally))
        return pairs, drops
    finally:
        await client.aclose()
