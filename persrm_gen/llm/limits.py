"""Throughput controls used by the client: an adaptive in-flight gate and token buckets.

All of it runs on one asyncio loop, so no locks: state is read and written between awaits.

- :class:`AdaptiveGate` caps requests in flight (``--concurrency``) and halves the cap when
  the provider answers 429, then grows it back by one per window of successes (AIMD, as TCP).
- :class:`RateLimiter` holds one GCRA token bucket per limit (``--rpm``, ``--tpm``). Token
  costs are estimated before the call and corrected by the usage the response reports.
  ``pause(seconds)`` holds every new send until the provider's Retry-After has passed.

The headers that say how long to wait are read in :mod:`persrm_gen.llm.faults`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from persrm_gen.errors import UsageError

# Never sleep longer than this on a provider's word: a misconfigured proxy saying
# "Retry-After: 86400" should slow the run, not freeze it for a day.
MAX_RETRY_AFTER_S = 120.0


class AdaptiveGate:
    """A semaphore whose size shrinks on 429 and recovers on success."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("concurrency must be >= 1")
        self.max_limit = limit
        self.limit = float(limit)
        self.in_flight = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._last_cut = 0.0

    async def acquire(self) -> None:
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            # A slot handed to a task cancelled at the same moment goes to the next one.
            if fut.done() and not fut.cancelled():
                self.in_flight -= 1
                self._wake()
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def on_success(self) -> None:
        if self.limit < self.max_limit:
            self.limit = min(self.max_limit, self.limit + 1.0 / self.limit)
            self._wake()

    def on_rate_limited(self, cooldown: float = 1.0) -> None:
        """Halve the cap, at most once per cooldown: one burst of 429s is one signal."""
        now = time.monotonic()
        if now - self._last_cut >= cooldown:
            self._last_cut = now
            self.limit = max(1.0, self.limit / 2)


class TokenBucket:
    """GCRA: a grant of ``cost`` units is scheduled at once; callers sleep until their turn.

    ``burst_s`` seconds of rate may be spent at once; beyond that the rate holds over any
    window. Reservations are FIFO and O(1), which matters at thousands of requests/s.
    """

    def __init__(self, per_minute: float, burst_s: float = 1.0):
        if per_minute <= 0:
            raise ValueError("rate limits must be > 0")
        self.rate = per_minute / 60.0
        self.tolerance = burst_s
        self._tat = 0.0  # theoretical arrival time: when everything granted has drained

    def reserve(self, cost: float) -> float:
        """Grant ``cost`` units; return the monotonic time at which the caller may go."""
        now = time.monotonic()
        tat = max(self._tat, now)
        start = max(now, tat - self.tolerance)
        self._tat = tat + cost / self.rate
        return start

    def correct(self, delta: float) -> None:
        """Charge (or refund) the difference between estimated and actual cost."""
        self._tat += delta / self.rate


class RateLimiter:
    """Requests-per-minute and tokens-per-minute buckets plus a global pause."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self.paused_until = 0.0

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None or self.paused_until > 0

    def pause(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def acquire(self, est_tokens: int) -> None:
        go = 0.0
        if self.requests is not None:
            go = self.requests.reserve(1)
        if self.tokens is not None:
            go = max(go, self.tokens.reserve(est_tokens))
        while True:
            now = time.monotonic()
            wait = max(go, self.paused_until) - now
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def correct_tokens(self, estimated: int, actual: int) -> None:
        if self.tokens is not None and actual:
            self.tokens.correct(actual - estimated)


def check_timeout(timeout: float | None) -> None:
    """A per-request timeout of 0 or less fails every request: refuse it where a transport
    or a client is made, whichever a caller builds first."""
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout {timeout:g}: the per-request timeout must be more than 0 seconds")
