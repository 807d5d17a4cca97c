"""Rich progress bars shared by every long stage: items done, rate and ETA."""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class _Rate(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # items per second, the number users compare between backends
        speed = task.finished_speed or task.speed
        return "" if speed is None else f"{speed:,.1f}/s"


def make_progress(quiet: bool = False) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


@contextmanager
def stage(progress: Progress, description: str, total: int) -> Iterator:
    """A progress task; yields ``tick(n=1)``."""
    task = progress.add_task(description, total=total)
    yield lambda n=1: progress.advance(task, n)
    progress.update(task, completed=total)
