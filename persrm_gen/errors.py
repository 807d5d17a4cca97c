"""Errors a user can act on. The CLI turns each into one line and a documented exit code.

This module imports nothing of the package, so every layer (transports, client, stages,
commands) can raise these without importing the layers above it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class InputIssue:
    """One defect in one input file, reported as ``FILE:LINE: message``."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


class InputError(Exception):
    """Bad user input. Carries every defect found so the user can fix them in one pass."""

    def __init__(self, issues: list[InputIssue] | InputIssue | str):
        if isinstance(issues, (str, InputIssue)):
            issues = [issues if isinstance(issues, InputIssue) else InputIssue("<input>", None, issues)]
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class UsageError(Exception):
    """A bad combination of options or a missing prerequisite (such as an API key)."""


class BudgetExceeded(Exception):
    """--max-cost or --max-requests would be exceeded; the cache keeps what was done."""


class FatalProviderError(Exception):
    """The provider refuses us (auth, unknown model, bad request): retrying cannot help."""


class StageFailed(Exception):
    """Most calls of a stage failed (``--max-failure-rate``): the run stops, exit code 3.

    The message carries the stage's first error, which is what the user needs to fix.
    """


class RunInterrupted(Exception):
    """SIGINT/SIGTERM (or ``request_stop``): in-flight responses were cached, nothing else sent
    (a local model's generation in progress may have been dropped instead: it is unpaid)."""
