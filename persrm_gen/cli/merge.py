"""CLI command ``merge``: combine the shard folders of a build run on many machines into one
dataset folder (``pipeline.merge``)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from persrm_gen.progress import console
from persrm_gen.redact import redact_command


def merge(
    folders: list[Path] = typer.Argument(..., help="Shard folders built with --num-shards K --shard-index 0..K-1."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the merged dataset (new, empty, or one persrm-gen wrote)."),
) -> None:
    """Merge shard folders into one dataset: checks across shards, one manifest (usage and cost summed), one card."""
    from persrm_gen.pipeline.merge import run_merge  # noqa: PLC0415 - keeps --help fast

    result = run_merge(folders, out, command=redact_command(["persrm-gen", *sys.argv[1:]]))
    pairs = sum(result.counts.get("pairs", {}).values())
    console.print(f"[green]merged[/green] {len(folders)} folders: {pairs} pairs into {result.out}. "
                  f"Next: persrm-gen validate {result.out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``merge`` to the main app."""
    app.command()(merge)
