"""CLI group ``authors``: prepare authors.jsonl files (``authors import`` converts a corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from persrm_gen.progress import console


def authors_import(
    src: Path = typer.Argument(..., help="A folder with one subfolder of .txt files per author (Reuters C50 layout), a CSV (author,text[,genre]) or a flat JSONL."),
    out: Path = typer.Option(..., "--out", "-o", help="authors.jsonl to write."),
    genre: Optional[str] = typer.Option(None, help="Genre for samples that do not name one."),
    min_chars: int = typer.Option(1, min=1, help="Skip texts shorter than this."),
) -> None:
    """Convert a corpus into authors.jsonl."""
    from persrm_gen.authors.importers import import_authors  # noqa: PLC0415

    result = import_authors(src, out, genre=genre, min_chars=min_chars)
    msg = f"wrote {out}: {result.n_authors} authors, {result.n_samples} samples"
    if result.n_skipped:
        msg += f"; skipped {result.n_skipped} texts shorter than {min_chars} characters"
    if result.skipped_authors:
        msg += f"; dropped authors with no samples left: {', '.join(result.skipped_authors)}"
    console.print(msg, highlight=False)


def register(app: typer.Typer) -> None:
    """Attach the ``authors`` group to the main app."""
    authors_app = typer.Typer(help="Prepare authors.jsonl files.", no_args_is_help=True)
    authors_app.command("import")(authors_import)
    app.add_typer(authors_app, name="authors")
