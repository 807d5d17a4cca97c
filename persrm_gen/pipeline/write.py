"""The write stage: each shard's kept rows as every config's rows (written as the shard
finishes), then, once every shard is done, the published files, the manifest and the
dataset card, all into the staging folder (published whole by the caller)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from persrm_gen.dataset.validators import REASONS
from persrm_gen.dataset.writer import config_rows, write_json
from persrm_gen.errors import InputError
from persrm_gen.pipeline.assemble import Unit, cross_check, publish_files
from persrm_gen.prompts.judge import judge_messages, preference_messages
from persrm_gen.prompts.renderer import PromptRenderer


def shard_configs(kept: list[dict], renderer: PromptRenderer) -> dict[str, dict[str, list[dict]]]:
    """config -> split -> rows of one shard, derived from its kept pair rows."""
    return config_rows(
        kept,
        judge_prompt=lambda r: judge_messages(r["context"], r["query"], r["response_a"], r["response_b"], renderer=renderer),
        preference_prompt=lambda r: preference_messages(r["context"], r["query"], renderer=renderer),
    )


def write_dataset(staging: Path, units: Sequence[Unit], rejections: Counter, *, link: bool, source: str,
                  manifest_for: Callable[[dict, dict, list[dict], dict], dict], predicted: Mapping[str, str],
                  previous_card: Path, compact_of: Callable[[int], pa.Table]) -> tuple[dict, dict, dict]:
    """Cross-shard checks, the published files, manifest and card: (counts, rejections, manifest).

    ``manifest_for(counts, rejections, rows, stats)`` makes the manifest (``rows``: the
    published pairs without their texts, ``dataset.compact``; ``stats``: the card's); ``predicted``: the style judge's
    verdict per pair id (measured by the rationales stage) and ``compact_of(k)``: unit ``k``'s
    compact rows (``dataset.compact``), so the card's stats read no text."""
    from persrm_gen.cards.dataset_card import write_dataset_card
    from persrm_gen.dataset.compact import published_rows
    from persrm_gen.dataset.stats import compute_stats

    rejected = cross_check(units)
    counts = publish_files(units, set(rejected), staging, link=link)
    total = rejections + Counter(reason for reason, _detail in rejected.values())
    if not counts.get("pairs"):
        found = {reason: total.get(reason, 0) for reason in REASONS}
        raise InputError(f"{source}: every pair was rejected ({found}); nothing to write")
    rejections_out = dict(sorted((total + Counter()).items()))  # + Counter(): no zero counts
    rows = published_rows((compact_of(k) for k in range(len(units))), set(rejected))
    stats = compute_stats(rows, rejections_out, predicted=predicted)
    manifest = manifest_for(counts, rejections_out, rows, stats)
    write_json(staging / "manifest.json", manifest)
    write_dataset_card(staging, manifest, stats, previous=previous_card)
    return counts, rejections_out, manifest
