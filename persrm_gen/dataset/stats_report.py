"""``persrm-gen stats``: print the stats of a built folder."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from persrm_gen.dataset.blind_audit import interval_text
from persrm_gen.dataset.reader import load_split_rows
from persrm_gen.dataset.stats import compute_stats
from persrm_gen.errors import InputError, InputIssue
from persrm_gen.progress import console


def load_stats(out: Path, fluency=None) -> dict:
    pairs = [r for rows in load_split_rows(out, "pairs").values() for r in rows]
    if not pairs:
        raise InputError(InputIssue(str(out), None, "not a built dataset folder (no data/pairs/*.parquet)"))
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    stats = compute_stats(pairs, manifest.get("rejections", {}), fluency=fluency)
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


def _shortcut_table(stats: dict) -> Table:
    """Per strategy: the blind judge (held-out test splits, cross-validated), pick-the-longer,
    and the context-aware stylometric baseline beside them."""
    blind = stats["blind_audit"]
    t = Table(title="shortcuts: context-blind judge (responses only) vs the stylometric baseline (sees the author)")
    for col in ("strategy", "pairs", "blind, test", "blind, cv", "cv 95 %", "chosen longer", "stylometric"):
        t.add_column(col, justify="left" if col == "strategy" else "right")
    for name, row in blind["by_strategy"].items():
        t.add_row(name, str(row["n"]), _fmt(row["accuracy"], row["n_test"]), _fmt(row["cv_accuracy"]),
                  interval_text(row["cv_accuracy"], row["n"]) or "n/a", _fmt(row["longer_chosen"]),
                  _fmt(stats["baseline_by_strategy"].get(name)))
    return t


def _fmt(x, n: int | None = None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3f}" + (f" ({n})" if n is not None else "")


def show_stats(out: Path, *, as_json: bool = False, fluency=None) -> None:
    stats = load_stats(Path(out), fluency)
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
    blind = stats["blind_audit"]
    if blind is None:
        console.print("context-blind audit: too few train pairs to fit the blind judge")
        return
    names = {"train": "train (fitted on)", "test": "all test splits"}
    console.print(_table("context-blind judge: accuracy per split; near 0.5 is good",
                         {names.get(k, k): v["accuracy"] for k, v in blind["by_split"].items()}, "accuracy"))
    console.print(_shortcut_table(stats))
    console.print(_table("context-blind judge: accuracy per genre (test splits)",
                         {k: v["accuracy"] for k, v in blind["by_genre"].items()} or {"none": "n/a"}, "accuracy"))
