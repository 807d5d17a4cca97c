"""``--max-cost`` and ``--max-requests``: refuse a send that could take the run past a limit.

Before each send the client reserves the request's worst case (estimated input tokens and
the full ``max_tokens`` of output, at list price; one request). After the response it
settles the reservation with what the provider billed (``Pricing.bill``: cached input,
cache writes and batch discounts applied), so ``--max-cost`` stops on the billed cost. A send is refused when spent + reserved + its
own worst case would pass a limit, so the totals never exceed the limits, even with
hundreds of requests in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

from persrm_gen.errors import BudgetExceeded


@dataclass
class Reservation:
    cost: float
    requests: int = 1


class Budget:
    def __init__(self, max_cost: float | None = None, max_requests: int | None = None):
        if max_cost is not None and max_cost < 0:
            raise ValueError("max_cost must be >= 0")
        if max_requests is not None and max_requests < 0:
            raise ValueError("max_requests must be >= 0")
        self.max_cost = max_cost
        self.max_requests = max_requests
        self.spent_cost = 0.0
        self.sent_requests = 0
        self._held_cost = 0.0
        self._held_requests = 0

    def reserve(self, worst_cost: float) -> Reservation:
        if self.max_requests is not None and self.sent_requests + self._held_requests + 1 > self.max_requests:
            raise BudgetExceeded(
                f"--max-requests {self.max_requests} reached ({self.sent_requests} sent); "
                "completed responses are cached, re-run with a higher limit to continue"
            )
        if self.max_cost is not None and self.spent_cost + self._held_cost + worst_cost > self.max_cost:
            raise BudgetExceeded(
                f"--max-cost ${self.max_cost:.4f} would be exceeded (spent ${self.spent_cost:.4f}, "
                f"next request up to ${worst_cost:.4f}); completed responses are cached, "
                "re-run with a higher limit to continue"
            )
        self._held_cost += worst_cost
        self._held_requests += 1
        return Reservation(worst_cost)

    def settle(self, r: Reservation, actual_cost: float, sent: bool = True) -> None:
        """Release a reservation; ``sent`` is False when the request never left us."""
        self._held_cost -= r.cost
        self._held_requests -= r.requests
        self.spent_cost += actual_cost
        self.sent_requests += 1 if sent else 0
