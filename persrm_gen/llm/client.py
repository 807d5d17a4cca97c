"""The one client every stage uses: cache, limits, retries, budget and accounting over a Transport.

Per request: durable cache lookup -> (per attempt) in-flight gate -> budget reservation ->
rpm/tpm buckets -> ``transport.send`` under a timeout -> accounting -> cache write of the
paid reply, valid or not, committed before the next ``await`` -> optional output
validation. Retries (tenacity) wrap the attempt, so a request waiting out its back-off
holds no in-flight slot.

Faults the transports raise (:mod:`persrm_gen.llm.faults`), the only per-request failures:

- :class:`~persrm_gen.llm.faults.TransientError` (429, 5xx, timeouts, resets, malformed or oversized bodies):
  retried with exponential back-off and jitter, or exactly the provider's Retry-After.
- invalid output (the caller's validator says no): the reply was paid for, so it is
  recorded as rejected; the identical request is retried once, then the request fails
  (``final``): the caller moves on to a new sample (a new attempt index) if it wants one,
  and a re-run finds both rejections in the cache instead of buying them again.
- :class:`persrm_gen.errors.FatalProviderError` (400/401/403/404, a URL the client cannot
  send to...): never retried. After ``max_auth_errors`` consecutive 401/403 the whole run
  stops instead of draining the queue.

With a :class:`~persrm_gen.llm.batches.runner.BatchRunner` (``--batch``), the cache misses
of each ``complete_many`` call go to the provider's batch API instead, and each line's
outcome is handled as a live reply would be (accounted, validated, cached, retried in a
new batch when transient or refused by the validator).

Anything else is a bug or a configuration error: nothing new is sent, the requests in
flight finish and are cached, and the error is raised. Run-stopping conditions (budget,
repeated auth errors, a stage whose :class:`FailureRate` passed its limit, SIGINT) work
the same way and surface from :meth:`complete_many`.

The cache key holds the request, the provider and, for any server but the provider's
own, the server's URL (without credentials): two servers serving the same model name are
two models.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from persrm_gen.errors import BudgetExceeded, FatalProviderError, RunInterrupted
from persrm_gen.llm import held_signals
from persrm_gen.llm.batches.runner import BatchRunner
from persrm_gen.llm.budget import Budget, Reservation
from persrm_gen.llm.cache_projection import project
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.failure_rate import FailureRate
from persrm_gen.llm.faults import FAULT_KINDS, REQUEST_FAULTS, TransientError
from persrm_gen.llm.limits import MAX_RETRY_AFTER_S, AdaptiveGate, RateLimiter, check_timeout
from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, LLMResponse, Transport, request_key

T = TypeVar("T")
Validator = Callable[[str], bool]

# Sends of one request (same key, same body) whose replies fail validation before it fails:
# the first and one identical retry. Same seed, same body: a third try would mostly repeat.
IDENTICAL_TRIES = 2


def _retryable(e: BaseException) -> bool:
    return isinstance(e, TransientError) and not e.final


@dataclass
class StageUsage:
    requests: int = 0  # attempts sent to the provider (retries included)
    completed: int = 0  # fresh valid responses obtained and cached
    cache_hits: int = 0  # answered from the cache (a valid response, or a request whose replies were all rejected)
    input_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens, read from the provider's prompt cache
    cache_write_tokens: int = 0  # of input_tokens, written to it
    output_tokens: int = 0
    cost_usd: float = 0.0  # billed (Pricing.bill: cache and batch discounts applied)
    list_cost_usd: float = 0.0  # the same tokens at list price
    retries: int = 0
    failures: int = 0  # requests given up on (fatal, or retries exhausted)
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    malformed: int = 0
    invalid_output: int = 0

    def add(self, other: StageUsage) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Accounting:
    stages: dict[str, StageUsage] = field(default_factory=lambda: defaultdict(StageUsage))

    def total(self) -> StageUsage:
        t = StageUsage()
        for s in self.stages.values():
            t.add(s)
        return t

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.stages.values())

    @property
    def cache_hits(self) -> int:
        return sum(s.cache_hits for s in self.stages.values())

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.stages.values())

    @property
    def saved_usd(self) -> float:
        """What the cache and batch discounts saved this run, against list prices."""
        return sum(s.list_cost_usd - s.cost_usd for s in self.stages.values())

    def to_dict(self) -> dict:
        """For manifest.json: per-stage and total tokens, cost, requests and fault counts."""
        per_stage = {k: vars(v).copy() for k, v in sorted(self.stages.items())}
        return {"stages": per_stage, "total": vars(self.total()).copy()}

    def summary(self) -> str:
        """One line for the live progress display: billed cost, what discounts saved, cached share."""
        t = self.total()
        cached = f" ({t.cached_input_tokens / t.input_tokens:.0%} from prompt cache)" if t.cached_input_tokens else ""
        saved = t.list_cost_usd - t.cost_usd
        return (f"{t.requests} sent, {t.cache_hits} cached, {t.input_tokens + t.output_tokens:,} tok{cached}, "
                f"${t.cost_usd:.4f}" + (f" (saved ${saved:.4f})" if saved > 0.00005 else "")
                + f", {t.retries} retries, {t.failures} failed")


@dataclass
class BatchAccounting(Accounting):
    """Accounting of a ``--batch`` client: the summary adds the batches' counts."""

    batches: object = None  # the runner's BatchCounts

    def summary(self) -> str:
        return f"{super().summary()}; {self.batches}"


@dataclass(frozen=True)
class Estimate:
    """What a run would send: only requests not yet in the cache count."""

    requests: int
    cached: int
    input_tokens: int
    output_tokens: int  # upper bound: every request's max_tokens
    cost_usd: float  # at list price: no prompt cache, no batch
    unpriced_models: tuple[str, ...] = ()
    cached_input_tokens: int = 0  # expected from the provider's prompt cache (cache_projection)
    cache_write_tokens: int = 0
    live_usd: float = 0.0  # billed live, with the expected prompt caching
    batch_usd: float = 0.0  # billed through a batch API, with the expected prompt caching

    @property
    def cached_share(self) -> float:
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else 0.0


def estimate_tokens(text: str) -> int:
    """About four characters per token for English; good enough to pace a token bucket."""
    return len(text) // 4 + 1


class LLMClient:
    def __init__(
        self,
        transport: Transport,
        cache: RequestCache,
        *,
        concurrency: int = 16,
        rpm: float | None = None,
        tpm: float | None = None,
        max_cost: float | None = None,
        max_requests: int | None = None,
        timeout: float | None = None,
        pricing: Pricing | None = None,
        max_retries: int = 6,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        max_auth_errors: int = 3,
        validate: Validator | None = None,
        token_counter: Callable[[str], int] = estimate_tokens,
        batch: BatchRunner | None = None,
    ):
        check_timeout(timeout)
        self.transport = transport
        self.provider = transport.provider
        # What the cache key says about the model's origin: the provider, plus the server
        # when it is not the provider's own (the transport knows where it really sends).
        endpoint = getattr(transport, "endpoint", None)
        self.key_scope = self.provider if endpoint is None else f"{self.provider}@{endpoint}"
        self.cache = cache
        self.accounting = Accounting()
        self.pricing = pricing or Pricing()
        self.budget = Budget(max_cost, max_requests)
        self.limiter = RateLimiter(rpm, tpm)
        self.gate = AdaptiveGate(concurrency)
        self.timeout = timeout
        self.validate = validate
        self.count_tokens = token_counter
        self._attempts = max_retries + 1
        self._retry_base, self._retry_max = retry_base, retry_max
        self._max_auth_errors = max_auth_errors
        self._auth_errors = 0
        self._stopped: BaseException | None = None
        self._stop_tb = None
        self._signals: list[int] = []
        self._out_ratio: dict[str, float] = {}  # stage -> share of max_tokens really used
        self._rejected: dict[str, int] = {}  # key -> replies recorded as rejected (cache + this run)
        self.batch = batch
        if batch is not None:
            batch.bind(cache, self.key_scope)
            self.accounting = BatchAccounting(batches=batch.counts)

    # ---- public API -------------------------------------------------------------------

    async def complete(self, request: LLMRequest, *, validate: Validator | None = None) -> LLMResponse:
        key, blob = request_key(request, self.key_scope)
        cached = self.cache.get(key)
        if cached is None:
            cached = self._spent(request, key, self.cache.rejected_many([key]).get(key, []))
        if isinstance(cached, BaseException):
            raise cached
        if cached is not None:
            self.accounting.stages[request.stage].cache_hits += 1
            return cached
        return await self._fetch(request, (key, blob), validate or self.validate)

    async def complete_many(
        self,
        requests: Sequence[LLMRequest],
        on_done: Callable[[], None] | None = None,
        *,
        validate: Validator | None = None,
        return_exceptions: bool = False,
        failures: FailureRate | None = None,
    ) -> list[LLMResponse]:
        """Run requests concurrently; results in input order; ``on_done`` ticks per request.

        Identical requests (same cache key) are sent once. When a run-stopping error occurs
        (BudgetExceeded, RunInterrupted, repeated auth errors, a bug) nothing new is sent,
        the requests in flight finish and are cached, and that error is raised. Per-request
        failures (:data:`REQUEST_FAULTS`) let the rest finish; then the first is raised, or,
        with ``return_exceptions=True``, left in its slot of the returned list. Each one is
        added to ``failures``, which stops the batch (StageFailed) once its rate can no
        longer end below the limit.
        """
        validate = validate or self.validate
        if failures is not None:
            failures.expect(len(requests))
        keys = [request_key(r, self.key_scope) for r in requests]
        results: list = [None] * len(requests)
        hits = self.cache.get_many(k for k, _ in keys)
        rejected = self.cache.rejected_many(k for k, _ in keys if k not in hits)
        todo: dict[str, list[int]] = {}
        for i, (req, (key, _)) in enumerate(zip(requests, keys)):
            hit = hits.get(key)
            if hit is not None:
                self.accounting.stages[req.stage].cache_hits += 1
            else:
                hit = self._spent(req, key, rejected.get(key, []))
            if hit is not None:
                self._settle(results, [i], hit, failures, on_done)
            else:
                todo.setdefault(key, []).append(i)

        async def one(slots: list[int]) -> None:
            try:
                res: object = await self._fetch(requests[slots[0]], keys[slots[0]], validate)
            except REQUEST_FAULTS as e:  # collected; re-raised below after everything settles
                res = e
            except Exception as e:  # a bug or a configuration error: stop sending, raise it below
                self.request_stop(e)
                res = e
            self._settle(results, slots, res, failures, on_done)

        try:
            if self.batch is not None and todo:
                await self._complete_in_batches(requests, keys, todo, validate, results, failures, on_done)
            else:
                await asyncio.gather(*(one(s) for s in todo.values()))
        finally:
            self.cache.flush()
        self._raise_failures(results, return_exceptions)
        return results

    def rejected_replies(self, requests: Sequence[LLMRequest]) -> list[list[LLMResponse]]:
        """Per request, the paid replies to it that failed validation (from the cache), for the ledger."""
        keys = [r.cache_key(self.key_scope) for r in requests]  # memoised by complete_many's request_key
        found = self.cache.rejected_many(keys)
        return [found.get(k, []) for k in keys]

    def _spent(self, request: LLMRequest, key: str, rejected: list[LLMResponse]) -> TransientError | None:
        """The failure of a request whose identical tries were all rejected (and paid) before."""
        self._rejected[key] = max(self._rejected.get(key, 0), len(rejected))
        if len(rejected) < IDENTICAL_TRIES:
            return None
        self.accounting.stages[request.stage].cache_hits += 1
        self.accounting.stages[request.stage].failures += 1
        return _invalid(rejected[-1], final=True)

    def _settle(self, results: list, slots: list[int], res: object, failures: FailureRate | None,
                on_done: Callable[[], None] | None) -> None:
        for i in slots:
            results[i] = res
            if failures is not None and isinstance(res, REQUEST_FAULTS) and res is not self._stopped:
                failures.add(res)
            if on_done is not None:
                on_done()
        if failures is not None and failures.exceeded:
            self.request_stop(failures.error())

    def estimate(self, requests: Sequence[LLMRequest]) -> Estimate:
        """Dry run: what would be sent (requests not cached yet), tokens and projected cost."""
        unique = {request_key(r, self.key_scope)[0]: r for r in requests}
        hits = self.cache.get_many(unique)
        todo = [r for k, r in unique.items() if k not in hits]
        tin = [self._input_tokens(r) for r in todo]
        cost = sum(self.pricing.cost(r.model, t, r.max_tokens) for r, t in zip(todo, tin))
        unpriced = sorted({r.model for r in todo if self.pricing.price(r.model) is None})
        shared = project(todo, self.provider, self.count_tokens)
        live = batch = 0.0
        for r, t, (read, written) in zip(todo, tin, shared):
            expected = LLMResponse("", input_tokens=t, output_tokens=r.max_tokens, cached_input_tokens=min(read, t),
                                   cache_write_tokens=min(written, t - min(read, t)))
            live += self.pricing.bill(r.model, expected).billed
            batch += self.pricing.bill(r.model, replace(expected, batch=True)).billed
        return Estimate(
            requests=len(todo), cached=len(requests) - len(todo), input_tokens=sum(tin),
            output_tokens=sum(r.max_tokens for r in todo), cost_usd=cost,
            unpriced_models=tuple(unpriced) if self.provider != "local" else (),
            cached_input_tokens=sum(min(a, t) for (a, _), t in zip(shared, tin)),
            cache_write_tokens=sum(w for _, w in shared), live_usd=live, batch_usd=batch,
        )

    def request_stop(self, reason: BaseException | None = None) -> None:
        """Send nothing new from now on; requests in flight still finish and are cached."""
        if self._stopped is None:
            # The first traceback is kept for the log of a bug; re-raises drop theirs (below).
            self._stop_tb = reason.__traceback__ if reason is not None else None
            self._stopped = reason or RunInterrupted(
                f"interrupted: every completed response is cached in {self.cache.path}; "
                "re-run the same command to resume (cached requests are not sent again)"
            )

    @property
    def stopped(self) -> BaseException | None:
        return self._stopped

    def handle_signals(self) -> None:
        """Call inside the running loop: first SIGINT/SIGTERM stops gracefully, a second cancels.

        A transport whose work in flight is unpaid (the local model: ``interrupt``) starts
        nothing new on the first signal, and on SIGTERM or a second signal drops the
        generation in progress at once: a scheduler sends SIGKILL about 30 s after SIGTERM,
        and a CPU batch can take longer. Paid replies are always waited for and cached.
        :meth:`aclose` gives the handlers back; from then until the loop has closed a signal
        is noted, not raised inside the loop (:mod:`persrm_gen.llm.held_signals`).
        """
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        interrupt = getattr(self.transport, "interrupt", None)

        def on_signal(sig: int) -> None:
            first = self._stopped is None
            if first:
                self.request_stop()
            if interrupt is not None:
                interrupt(now=not first or sig == signal.SIGTERM)
            if not first and task is not None:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
            self._signals.append(sig)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        if self._signals:  # until the loop has closed, a further signal is noted, not raised in it
            held_signals.hold(loop)
        self._signals.clear()
        self.cache.flush()
        if self.batch is not None:
            await self.batch.aclose()
        await self.transport.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- one request ------------------------------------------------------------------

    async def _fetch(self, request: LLMRequest, key: tuple[str, str], validate: Validator | None) -> LLMResponse:
        usage = self.accounting.stages[request.stage]
        self._check_stop()
        try:
            # The first attempt runs bare: tenacity's per-attempt bookkeeping costs more
            # than the whole rest of the client, and most requests succeed at once.
            try:
                return await self._attempt(request, key, validate)
            except TransientError as first:
                if self._attempts < 2 or first.final:
                    raise
                usage.retries += 1
                await asyncio.sleep(self._backoff(first, 1))
            retrying = AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self._attempts - 1),
                wait=lambda rs: self._backoff(rs.outcome.exception(), rs.attempt_number + 1),
                before_sleep=lambda _: _count_retry(usage),
                reraise=True,
            )
            return await retrying(self._attempt, request, key, validate)
        except REQUEST_FAULTS as e:
            if e is not self._stopped:
                usage.failures += 1
            raise

    async def _attempt(self, request: LLMRequest, key: tuple[str, str], validate: Validator | None) -> LLMResponse:
        await self.gate.acquire()
        try:
            self._check_stop()
            est_in = self._input_tokens(request)
            reservation = self._reserve(request, est_in)
            est_tokens = est_in + self._expected_output(request)
            sent = False
            cost = 0.0
            try:
                if self.limiter.active:
                    await self.limiter.acquire(est_tokens)
                    self._check_stop()
                sent = True
                response = await self._send(request)
                cost = self._account(request, response, est_tokens)
            finally:
                self.budget.settle(reservation, cost, sent)
        finally:
            self.gate.release()
        valid = False
        try:
            valid = validate is None or validate(response.text)
        finally:
            # Queued for the group commit before any await, valid or not (even when the
            # validator itself fails): a paid response is never lost, nor bought again.
            if valid:
                self.cache.put_soon(key[0], self.provider, request, response, key[1])
            else:
                self.cache.put_rejected_soon(key[0], self.provider, request, response, key[1])
                self._rejected[key[0]] = self._rejected.get(key[0], 0) + 1
        if not valid:
            final = self._rejected[key[0]] >= IDENTICAL_TRIES
            raise self._fault(request, _invalid(response, final=final))
        self.accounting.stages[request.stage].completed += 1
        return response

    async def _send(self, request: LLMRequest) -> LLMResponse:
        usage = self.accounting.stages[request.stage]
        usage.requests += 1
        try:
            if self.timeout is None:
                response = await self.transport.send(request)
            else:
                async with asyncio.timeout(self.timeout):
                    response = await self.transport.send(request)
        except TimeoutError as e:
            raise self._fault(request, TransientError("timeout", f"no response in {self.timeout}s")) from e
        except (ConnectionError, OSError) as e:
            raise self._fault(request, TransientError("connection", str(e) or type(e).__name__)) from e
        except TransientError as e:
            raise self._fault(request, e) from None
        except FatalProviderError as e:
            self._on_fatal(e)
            raise
        self._auth_errors = 0
        self.gate.on_success()
        if (pause := response.meta.get("pause_s")) is not None:
            self.limiter.pause(pause)
        return response

    # ---- batches (--batch) --------------------------------------------------------------

    async def _complete_in_batches(self, requests: Sequence[LLMRequest], keys: list[tuple[str, str]],
                                   todo: dict[str, list[int]], validate: Validator | None, results: list,
                                   failures: FailureRate | None, on_done: Callable[[], None] | None) -> None:
        """The cache misses ``todo`` (key -> slots) through the batch runner (see :class:`_BatchCall`)."""
        call = _BatchCall(self, requests, keys, todo, validate, results, failures, on_done)
        items = call.admit()

        def should_stop() -> bool:
            # A budget stop sends nothing new but waits for the lines it admitted (as live requests
            # in flight finish); an interruption or a failing stage stops waiting: the lines stay
            # recorded at the provider and the same command collects them.
            return self._stopped is not None and not isinstance(self._stopped, BudgetExceeded)

        try:
            await self.batch.run(items, call.on_result, should_stop=should_stop)  # type: ignore[union-attr]
        except FatalProviderError as e:  # a batch could not be submitted (or polled): nothing more is sent
            self.request_stop(e)
        finally:
            call.release()

    # ---- helpers ----------------------------------------------------------------------

    def _input_tokens(self, request: LLMRequest) -> int:
        if request.prompt is not None:
            return self.count_tokens(request.prompt)
        return sum(self.count_tokens(m.content) + 4 for m in request.messages or ()) + 3

    def _reserve(self, request: LLMRequest, est_in: int):
        if self.budget.max_cost is not None and self.provider != "local":
            self.pricing.require(request.model)
        worst = self.pricing.cost(request.model, est_in, request.max_tokens)
        try:
            return self.budget.reserve(worst)
        except BudgetExceeded as e:
            self.request_stop(e)
            raise

    def _expected_output(self, request: LLMRequest) -> int:
        """max_tokens until this stage's responses show how much of it they really use."""
        ratio = self._out_ratio.get(request.stage)
        if ratio is None:
            return request.max_tokens
        return min(request.max_tokens, int(request.max_tokens * ratio * 1.25) + 1)

    def _learn_output(self, request: LLMRequest, response: LLMResponse) -> None:
        if request.max_tokens > 0 and response.output_tokens:
            r = min(1.0, response.output_tokens / request.max_tokens)
            old = self._out_ratio.get(request.stage)
            self._out_ratio[request.stage] = r if old is None else 0.9 * old + 0.1 * r

    def _account(self, request: LLMRequest, response: LLMResponse, est_tokens: int) -> float:
        usage = self.accounting.stages[request.stage]
        usage.input_tokens += response.input_tokens
        usage.cached_input_tokens += response.cached_input_tokens
        usage.cache_write_tokens += response.cache_write_tokens
        usage.output_tokens += response.output_tokens
        bill = self.pricing.bill(request.model, response)
        usage.cost_usd += bill.billed
        usage.list_cost_usd += bill.list
        self.limiter.correct_tokens(est_tokens, response.input_tokens + response.output_tokens)
        self._learn_output(request, response)
        return bill.billed  # the budget settles on what the provider bills

    def _fault(self, request: LLMRequest, e: TransientError) -> TransientError:
        usage = self.accounting.stages[request.stage]
        setattr(usage, FAULT_KINDS[e.kind], getattr(usage, FAULT_KINDS[e.kind]) + 1)
        if e.kind == "rate_limited":
            self.gate.on_rate_limited(cooldown=max(1.0, e.retry_after or 0.0))
        if e.retry_after is not None:
            self.limiter.pause(e.retry_after)
        return e

    def _on_fatal(self, e: FatalProviderError) -> None:
        if getattr(e, "is_auth", False):
            self._auth_errors += 1
            if self._auth_errors >= self._max_auth_errors:
                self.request_stop(FatalProviderError(
                    f"stopping the run after {self._auth_errors} authentication errors in a row "
                    f"({self.provider}): {e}"
                ))

    def _check_stop(self) -> None:
        if self._stopped is not None:
            # Dropping the old traceback keeps thousands of re-raises from chaining frames.
            raise self._stopped.with_traceback(None)

    def _backoff(self, exc: BaseException | None, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            # The provider said when; a little jitter keeps the retries from landing at once.
            ra = min(exc.retry_after, MAX_RETRY_AFTER_S)
            return ra + random.uniform(0, 0.1 * ra + 0.01)
        # Full-jitter exponential back-off.
        return random.uniform(0, min(self._retry_max, self._retry_base * 2 ** (attempt - 1)))

    def _raise_failures(self, results: list, return_exceptions: bool) -> None:
        if self._stopped is not None and any(isinstance(r, BaseException) for r in results):
            raise self._stopped.with_traceback(self._stop_tb)
        if not return_exceptions:
            for r in results:
                if isinstance(r, BaseException):
                    raise r


class _BatchCall:
    """One ``complete_many`` call's lines in batch mode: each outcome the runner hands over is
    handled as :meth:`LLMClient._attempt` handles a live reply (budget, accounting, validation,
    the cache write before anything else can happen, one identical retry of a rejected reply)."""

    def __init__(self, client: LLMClient, requests: Sequence[LLMRequest], keys: list[tuple[str, str]],
                 todo: dict[str, list[int]], validate: Validator | None, results: list,
                 failures: FailureRate | None, on_done: Callable[[], None] | None):
        self.c, self.keys, self.todo, self.validate = client, keys, todo, validate
        self.results, self.failures, self.on_done = results, failures, on_done
        self.items = {key: requests[slots[0]] for key, slots in todo.items()}
        self.held: dict[str, Reservation] = {}

    def admit(self) -> dict[str, LLMRequest]:
        """The lines the budget admits (each reserved at its worst case); the rest settle with the stop."""
        for key in list(self.items):
            try:
                self.c._check_stop()
                self.held[key] = self.c._reserve(self.items[key], self.c._input_tokens(self.items[key]))
            except Exception as e:  # the budget, or a stop: this one is not sent
                self.c._settle(self.results, self.todo[key], e, self.failures, self.on_done)
                del self.items[key]
        return dict(self.items)

    def on_result(self, key: str, outcome: LLMResponse | Exception, may_retry: bool) -> bool:
        """True: ``key`` is settled; False: send it again (a transient fault, a rejected reply)."""
        request = self.items[key]
        usage = self.c.accounting.stages[request.stage]
        usage.requests += 1
        if not isinstance(outcome, LLMResponse):
            if isinstance(outcome, TransientError):
                self.c._fault(request, outcome)
                if may_retry and not outcome.final:
                    usage.retries += 1
                    return False
            elif isinstance(outcome, FatalProviderError):
                self.c._on_fatal(outcome)
            usage.failures += 1
            return self._settle(key, outcome, 0.0)
        cost = self.c._account(request, outcome, outcome.input_tokens + outcome.output_tokens)  # no tpm pacing
        if self._record(key, request, outcome):
            usage.completed += 1
            return self._settle(key, outcome, cost)
        final = self.c._rejected[key] >= IDENTICAL_TRIES or not may_retry
        fault = self.c._fault(request, _invalid(outcome, final=final))
        if final:
            usage.failures += 1
            return self._settle(key, fault, cost)
        usage.retries += 1
        self.c.budget.settle(self.held.pop(key), cost)
        try:  # the next send is reserved like the first
            self.held[key] = self.c._reserve(request, self.c._input_tokens(request))
        except BudgetExceeded as e:
            self.c._settle(self.results, self.todo[key], e, self.failures, self.on_done)
            return True
        return False

    def _record(self, key: str, request: LLMRequest, reply: LLMResponse) -> bool:
        """Validate and queue the paid reply for the cache, valid or not; whether it is valid."""
        valid = False
        blob = self.keys[self.todo[key][0]][1]
        try:
            valid = self.validate is None or self.validate(reply.text)
        finally:  # even when the validator itself fails: a paid reply is never lost
            if valid:
                self.c.cache.put_soon(key, self.c.provider, request, reply, blob)
            else:
                self.c.cache.put_rejected_soon(key, self.c.provider, request, reply, blob)
                self.c._rejected[key] = self.c._rejected.get(key, 0) + 1
        return valid

    def _settle(self, key: str, res: object, cost: float) -> bool:
        self.c.budget.settle(self.held.pop(key), cost)
        self.c._settle(self.results, self.todo[key], res, self.failures, self.on_done)
        return True

    def release(self) -> None:
        """Lines still out (a stop, an interruption): they wait at the provider and a re-run collects them."""
        for key in list(self.held):
            self.c.budget.settle(self.held.pop(key), 0.0, sent=False)
            self.c._settle(self.results, self.todo[key], self.c.stopped or RunInterrupted("batch wait interrupted"),
                           self.failures, self.on_done)


def _count_retry(usage: StageUsage) -> None:
    usage.retries += 1


def _invalid(response: LLMResponse, *, final: bool) -> TransientError:
    return TransientError("invalid_output", f"rejected: {response.text[:80]!r}", final=final)


def run(main: Awaitable[T]) -> T:
    """``asyncio.run`` on uvloop when it is installed (several times faster at high concurrency).
    A SIGINT/SIGTERM noted while the loop wound down (:mod:`held_signals`) ends a run that
    had finished as an interruption (KeyboardInterrupt); a run that raised raises as it was."""
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop else None) as runner:
            result = runner.run(main)  # type: ignore[arg-type]
    finally:
        noted = held_signals.release()
    if noted:
        raise KeyboardInterrupt
    return result
