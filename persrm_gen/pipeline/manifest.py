"""``manifest.json``: everything needed to reproduce a build, and nothing that changes
between identical runs (no clocks, no hosts), so a re-run rewrites it byte for byte."""

from __future__ import annotations

import platform

from persrm_gen import __version__
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.redact import redact_text, redact_url


def build_manifest(opts: BuildOptions, renderer: PromptRenderer, plan, model_name: str, counts: dict,
                   rejections: dict, skipped: dict, usage: dict, shortcuts: dict | None = None) -> dict:
    from persrm_gen.versions import package_versions

    shards = {"shards": {"num_shards": opts.num_shards, "shard_index": opts.shard_index}} if opts.num_shards > 1 else {}
    return {
        **shards,
        "persrm_gen_version": __version__,
        "command": redact_text(opts.command),
        "backend": opts.backend,
        "model": model_name,
        "base_url": redact_url(opts.base_url),
        "seed": opts.seed,
        "context_size": opts.context_size,
        "positive": opts.positive,
        **({"mixed_share": opts.mixed_share} if opts.positive == "mixed" else {}),
        **({"negative_draws": opts.negative_draws} if opts.negative_draws > 1 else {}),
        "negatives": list(opts.negatives),
        "axes": list(opts.axes),
        "rationales": opts.rationales,
        "swap_check": opts.swap_check,
        "trace_hint": opts.trace_hint,
        "max_blind_confidence": opts.max_blind_confidence,
        "templates": renderer.used_hashes(),
        "splits": {"test_authors": plan.test_authors, "holdout_genre": plan.holdout_genre, "test_fraction": opts.test_fraction,
                   "samples": plan.counts()},
        "counts": counts,
        "rejections": rejections,
        "skipped_samples": skipped,
        "usage": usage,
        "shortcuts": shortcuts,
        "versions": package_versions(),
        "python": platform.python_version(),
        "license": opts.license,
        "language": list(opts.language) if opts.language else None,
    }


def shortcut_summary(stats: dict) -> dict:
    """The quality audit the manifest records: the context-blind judge (``dataset.blind_audit``)
    beside the context-aware stylometric baseline, per split and per strategy."""
    return {
        "blind_audit": stats.get("blind_audit"),
        "stylometric_baseline": {"by_split": stats.get("baseline_accuracy"), "by_strategy": stats.get("baseline_by_strategy")},
    }
