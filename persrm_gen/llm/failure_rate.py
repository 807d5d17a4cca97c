"""A stage's failed requests against ``--max-failure-rate``: a broken server is a failed run.

Without this, a server answering HTML, a base URL the client cannot send to, or a judge
that never writes its reasoning would each turn every request into a silent drop and the
build would exit 0 with a handful of rule-made pairs. One tally per stage counts the
requests that gave nothing usable: provider faults (the client adds them as they happen,
and stops the stage as soon as the rate can no longer end below the limit) and outputs
the stage could not parse (added by the stage). The first error is what the user needs
to fix, so the stop carries it.
"""

from __future__ import annotations

from dataclasses import dataclass

from persrm_gen.errors import StageFailed

DEFAULT_MAX_FAILURE_RATE = 0.2


@dataclass
class FailureRate:
    stage: str  # what the user sees: "negatives", "rationales", ...
    max_rate: float | None = DEFAULT_MAX_FAILURE_RATE  # None: never stop
    total: int = 0  # requests of the stage so far (every attempt is a request)
    failed: int = 0
    first: str | None = None

    def expect(self, n: int) -> None:
        """``n`` more requests belong to the stage (before they are sent, for the early stop)."""
        self.total += n

    def add(self, error: BaseException | str) -> None:
        self.failed += 1
        if self.first is None:
            self.first = str(error) or type(error).__name__

    @property
    def exceeded(self) -> bool:
        return self.max_rate is not None and self.failed > self.max_rate * self.total

    def error(self) -> StageFailed:
        rate = self.failed / max(self.total, 1)
        return StageFailed(
            f"{self.stage}: {self.failed} of {self.total} requests failed ({rate:.0%}, more than "
            f"--max-failure-rate {self.max_rate:g}); first error: {self.first}"
        )

    def check(self) -> None:
        if self.exceeded:
            raise self.error()
