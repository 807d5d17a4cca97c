"""``persrm-gen validate``: re-run every validator on a built folder and check its contract."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.markup import escape

from persrm_gen.answer import format_ok, parse_verdict
from persrm_gen.dataset.reader import load_split_rows
from persrm_gen.dataset.schema import CONFIGS, SCHEMAS
from persrm_gen.progress import console


@dataclass
class FolderReport:
    out: Path
    problems: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_folder(out: str | Path) -> FolderReport:
    from persrm_gen.dataset.validators import ValidatorConfig, in_split_order, validate_pairs  # noqa: PLC0415

    out = Path(out)
    report = FolderReport(out)
    if not (out / "data" / "pairs").is_dir():
        report.problems.append(f"{out}: not a built dataset folder (no data/pairs/)")
        return report
    _check_manifest(out, report)
    _check_card(out, report)
    data = {c: load_split_rows(out, c) for c in CONFIGS}
    report.counts = {c: {s: len(r) for s, r in splits.items()} for c, splits in data.items()}
    _check_columns(out, data, report)
    if report.problems:  # the validators need the contract's columns; report what is there first
        return report
    result = validate_pairs(in_split_order(data["pairs"]), ValidatorConfig())
    report.rejections = dict(sorted(result.counts().items()))
    for rej in result.rejected[:20]:
        report.problems.append(f"pair {rej.pair_id}: {rej.reason} ({rej.detail})")
    if len(result.rejected) > 20:
        report.problems.append(f"... and {len(result.rejected) - 20} more pairs fail validators")
    _check_configs_agree(data, report)
    _check_leakage(data["pairs"], report)
    return report


def _check_manifest(out: Path, report: FolderReport) -> None:
    try:
        json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.problems.append(f"{out / 'manifest.json'}: missing")
    except json.JSONDecodeError as exc:
        report.problems.append(f"{out / 'manifest.json'}:{exc.lineno}: invalid JSON ({exc.msg})")


def _check_card(out: Path, report: FolderReport) -> None:
    card = out / "README.md"
    if not card.is_file():
        report.problems.append(f"{card}: missing dataset card")
        return
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        report.problems.append(f"{card}:1: no YAML metadata block")
        return
    meta = yaml.safe_load(text[4:text.index("\n---", 4)]) or {}
    names = {c.get("config_name") for c in meta.get("configs", [])}
    for config in CONFIGS:
        if (out / "data" / config).is_dir() and config not in names:
            report.problems.append(f"{card}: configs: has no entry for {config!r}, so load_dataset(out, {config!r}) fails")


def _check_columns(out: Path, data: dict, report: FolderReport) -> None:
    for config, splits in data.items():
        want = set(SCHEMAS[config].names)
        for split, rows in splits.items():
            if rows and set(rows[0]) != want:
                missing, extra = want - set(rows[0]), set(rows[0]) - want
                report.problems.append(f"{out}/data/{config}/{split}.parquet: columns differ (missing {sorted(missing)}, extra {sorted(extra)})")


def _check_configs_agree(data: dict, report: FolderReport) -> None:
    for split, pairs in data["pairs"].items():
        rft = data["rft"].get(split, [])
        if [r["label"] for r in rft] != [p["label"] for p in pairs]:
            report.problems.append(f"rft/{split}: labels do not match pairs/{split} row for row")
        if len(data["preference"].get(split, [])) != len(pairs):
            report.problems.append(f"preference/{split}: {len(data['preference'].get(split, []))} rows for {len(pairs)} pairs")
        sft = data["sft"].get(split, [])
        usable = [p for p in pairs if p["rationale_ok"]]
        if len(sft) != len(usable):
            report.problems.append(f"sft/{split}: {len(sft)} rows, expected {len(usable)} (pairs with a consistent trace)")
        for i, (row, pair) in enumerate(zip(sft, usable)):
            text = row["completion"][-1]["content"]
            if not format_ok(text) or parse_verdict(text) != pair["label"]:
                report.problems.append(f"sft/{split} row {i}: trace malformed or its verdict is not the label")


def _check_leakage(pairs_by_split: dict[str, list[dict]], report: FolderReport) -> None:
    train = pairs_by_split.get("train", [])
    train_authors = {p["author_id"] for p in train}
    train_texts = {p["chosen"] for p in train} | {c for p in train for c in p["context"]}
    for p in pairs_by_split.get("test_unseen_authors", []):
        if p["author_id"] in train_authors:
            report.problems.append(f"author {p['author_id']} is in both train and test_unseen_authors")
            break
    genres_train = {p["genre"] for p in train}
    for p in pairs_by_split.get("test_unseen_genre", []):
        if p["genre"] in genres_train:
            report.problems.append(f"genre {p['genre']!r} is in both train and test_unseen_genre")
            break
    for p in pairs_by_split.get("test_seen_authors", []):
        if p["chosen_source"] == "author" and p["chosen"] in train_texts:
            report.problems.append(f"pair {p['id']}: its test_seen_authors target text also appears in train")


def print_report(report: FolderReport) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"{report.out}: rows per config and split")
    splits = sorted({s for c in report.counts.values() for s in c})
    table.add_column("config")
    for s in splits:
        table.add_column(s, justify="right")
    for config, c in report.counts.items():
        table.add_row(config, *[str(c.get(s, 0)) for s in splits])
    console.print(table)
    if report.ok:
        console.print("[green]valid[/green]: every validator passes and the configs agree.")
        return
    for problem in report.problems:
        console.print(f"[red]violation:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
    console.print(f"[red]{len(report.problems)} problem(s)[/red]; rejections by reason: {escape(str(report.rejections))}")
