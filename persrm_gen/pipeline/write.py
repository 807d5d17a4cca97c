"""The write stage: the kept rows as every config's parquet files, the manifest and the
dataset card, all into the staging folder (published whole by the caller)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from persrm_gen.dataset.writer import config_rows, write_data, write_json
from persrm_gen.llm.usage import DatasetUsage
from persrm_gen.pipeline.manifest import build_manifest
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.prepare import Prepared
from persrm_gen.prompts.judge import judge_messages, preference_messages


def write_outputs(opts: BuildOptions, prepared: Prepared, model: str, staging: Path, kept: list[dict],
                  rejections: dict, usage: DatasetUsage, predicted: Mapping[str, str], *,
                  judge: dict | None = None) -> tuple[dict, dict]:
    """(rows per config and split, manifest). ``predicted``: the style judge's verdict per
    pair id, measured by the rationales stage, so the card's stats do not measure it again.
    ``judge``: judge requests per kept trace by strategy (JudgeTally), recorded under usage."""
    from persrm_gen.cards.dataset_card import write_dataset_card
    from persrm_gen.dataset.stats import compute_stats

    renderer = prepared.renderer
    by_config = config_rows(
        kept,
        judge_prompt=lambda r: judge_messages(r["context"], r["query"], r["response_a"], r["response_b"], renderer=renderer),
        preference_prompt=lambda r: preference_messages(r["context"], r["query"], renderer=renderer),
    )
    counts = write_data(staging, by_config)
    spent = usage.to_dict()
    if judge is not None:
        spent["judge_requests_by_strategy"] = judge
    manifest = build_manifest(opts, renderer, prepared.plan, model, counts, rejections, prepared.skipped, spent)
    write_json(staging / "manifest.json", manifest)
    stats = compute_stats(kept, rejections, predicted=predicted)
    write_dataset_card(staging, manifest, stats, previous=opts.out / "README.md")
    return counts, manifest
