"""Rich progress bars shared by every long stage: items done, rate and ETA."""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Callable, Iterator

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


class _Info(TextColumn):
    """Free text a stage keeps current, e.g. the client's tokens and cost so far."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):
        return task.fields.get("info", "")


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
        _Info(),
        console=console,
        disable=quiet,
        transient=False,
    )


class _LiveText:
    """``info`` re-read at every refresh of the display, not only at a tick: a stage waiting on
    provider batches (``--batch``) shows their state while no request completes."""

    def __init__(self, read: Callable[[], str]):
        self.read = read

    def __rich__(self) -> str:
        return self.read()


@contextmanager
def stage(progress: Progress, description: str, total: int, info: Callable[[], str] | None = None) -> Iterator:
    """A progress task; yields ``tick(n=1)``. ``info`` is re-read whenever the display refreshes."""
    text = _LiveText(info) if info is not None else ""
    task = progress.add_task(description, total=total, info=text)

    def tick(n: int = 1) -> None:
        progress.update(task, advance=n)

    yield tick
    # The last words stay as they were when the stage ended.
    progress.update(task, completed=total, info=info() if info is not None else "")
