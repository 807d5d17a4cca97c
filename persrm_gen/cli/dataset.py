"""CLI commands ``validate`` and ``stats``: read a built dataset folder, never write it.

Both hold the folder's read lock, so neither sees a folder while ``push`` is publishing it.
"""

from __future__ import annotations

from pathlib import Path

import typer


def validate(out: Path = typer.Argument(..., help="A built dataset folder.")) -> None:
    """Re-run every validator on a built folder; exit 1 on violations."""
    from persrm_gen.dataset.check import print_report, validate_folder  # noqa: PLC0415
    from persrm_gen.dataset.folder import OutputFolder

    with OutputFolder(out).reading():  # never a folder mid-publish
        report = validate_folder(out)
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def stats(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    fluency: bool = typer.Option(False, "--fluency", help="Give the context-blind judge the embedded model's per-token log-likelihood of each response too (a forward pass per response: minutes on a CPU)."),
) -> None:
    """Counts per split, strategy and genre; A/B balance; style margins; rejections; baseline
    accuracy; the context-blind shortcut audit."""
    from persrm_gen.dataset.folder import OutputFolder
    from persrm_gen.dataset.stats_report import show_stats  # noqa: PLC0415

    scorer = None
    if fluency:
        from persrm_gen.llm.fluency import FluencyScorer  # noqa: PLC0415 - torch only when asked

        scorer = FluencyScorer()
    with OutputFolder(out).reading():
        show_stats(out, as_json=as_json, fluency=scorer)


def register(app: typer.Typer) -> None:
    """Attach ``validate`` and ``stats`` to the main app."""
    app.command()(validate)
    app.command()(stats)
