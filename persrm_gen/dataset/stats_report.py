"""``persrm-gen stats``: print the stats of a built folder."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from persrm_gen.dataset.reader import load_split_rows
from persrm_gen.dataset.stats import compute_stats
from persrm_gen.errors import InputError, InputIssue
from persrm_gen.progress import console


def load_stats(out: Path) -> dict:
    pairs = [r for rows in load_split_rows(out, "pairs").values() for r in rows]
    if not pairs:
        raise InputError(InputIssue(str(out), None, "not a built dataset folder (no data/pairs/*.parquet)"))
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    stats = compute_stats(pairs, manifest.get("rejections", {}))
    # What the judge cost per trace kept for sft, by strategy (builds with LLM traces).
    judge = (manifest.get("usage") or {}).get("judge_requests_by_strategy") or {}
    stats["judge_requests_per_kept_trace"] = {k: v.get("requests_per_kept_trace") for k, v in judge.items()}
    return stats


def _table(title: str, mapping: dict, value: str = "count") -> Table:
    t = Table(title=title)
    t.add_column("")
    t.add_column(value, justify="right")
    for k, v in mapping.items():
        t.add_row(str(k), f"{v:.3f}" if isinstance(v, float) else str(v))
    return t


def show_stats(out: Path, *, as_json: bool = False) -> None:
    stats = load_stats(Path(out))
    if as_json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return
    console.print(f"[bold]{out}[/bold]: {stats['n_pairs']} pairs, {stats['sft_usable']} with a trace usable for sft")
    for title, key in (("pairs per split", "by_split"), ("pairs per strategy", "by_strategy"), ("pairs per genre", "by_genre"),
                       ("authors per split", "authors"), ("A/B balance (label)", "ab_balance")):
        console.print(_table(title, stats[key]))
    console.print(_table("style margin (chosen closer to the author when > 0)", stats["style_margin"], "value"))
    console.print(_table("rejections by reason", stats["rejections"] or {"none": 0}))
    console.print(_table("stylometric baseline judge: accuracy (no LLM)", stats["baseline_accuracy"], "accuracy"))
    if stats["judge_requests_per_kept_trace"]:
        console.print(_table("LLM judge requests per trace kept for sft", stats["judge_requests_per_kept_trace"],
                             "requests"))
