"""The one loop behind ``--batch``: split, record, submit, poll, download, resubmit.

The client hands :meth:`BatchRunner.run` the cache misses of one ``complete_many`` call and
a callback that takes each line's outcome (it validates, accounts and caches, as it does
for a live reply) and says whether the line is settled or must go again. The runner:

1. finds batches a killed run left behind: a batch recorded as ``submitting`` is looked up
   by its tag (or freed, where the provider cannot tell), replies downloaded but not yet
   cached are handed over, and lines still in flight are waited for, never sent again;
2. splits the rest into batches within the provider's request and byte limits, recording
   each batch and its custom_id -> key lines in cache.sqlite *before* creating it;
3. polls every open batch (back-off from 1 s up to ``poll``), downloads each ended batch's
   results into the store in one transaction, then hands them over;
4. sends errored or expired lines (and replies the validator refused) again in new batches,
   at most ``max_rounds`` times per line; a failed batch's lines fail with its message.
   Lines of a batch cancelled while this run waits fail (the user stopped them); lines of
   one cancelled before this run started go again (re-running is asking for them).

It never imports the client: it only calls the callback (transport-level, like the transports).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from persrm_gen.errors import FatalProviderError
from persrm_gen.llm.batches.base import CANCEL_STATES, BatchAPI, BatchStatus, Cancelled, split
from persrm_gen.llm.batches.store import SUBMITTING, BatchRow, BatchStore
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.faults import ProviderRejected, TransientError
from persrm_gen.llm.types import LLMRequest, LLMResponse

# (key, outcome, may_retry) -> True when the key is settled, False to send it again.
OnResult = Callable[[str, "LLMResponse | Exception", bool], bool]
MAX_ROUNDS = 4  # sends of one line (the first and three more) before its fault is final
_SUBMIT_TRIES = 4


@dataclass
class BatchCounts:
    """What the progress display shows."""

    submitted: int = 0
    in_progress: int = 0
    done: int = 0
    replies: int = 0

    def __str__(self) -> str:
        return (f"batches: {self.submitted} submitted, {self.in_progress} in progress, {self.done} done, "
                f"{self.replies} replies")


class BatchRunner:
    def __init__(self, api: BatchAPI, *, poll: float = 60.0, max_rounds: int = MAX_ROUNDS,
                 log: Callable[[str], None] | None = None):
        if poll <= 0:
            raise ValueError("poll must be > 0")
        self.api, self.poll, self.max_rounds = api, poll, max_rounds
        self.counts = BatchCounts()
        self.log = log or (lambda _msg: None)
        self.cache: RequestCache | None = None
        self.store: BatchStore | None = None
        self._lock = asyncio.Lock()  # one run at a time: two would download the same batches
        self._cancelled_before: set[str] = set()  # batches cancelled before this run saw them: their lines go again
        self._recovered = False  # what an earlier process left is looked at once, by the first call

    def bind(self, cache: RequestCache, scope: str) -> None:
        """The client's cache and key scope (the batches of one server are looked up by it)."""
        self.cache, self.store = cache, BatchStore(cache, scope)

    async def run(self, requests: dict[str, LLMRequest], on_result: OnResult,
                  should_stop: Callable[[], bool] = lambda: False) -> None:
        """Settle every key of ``requests`` through ``on_result``; returns early when ``should_stop``."""
        assert self.store is not None and self.cache is not None, "bind() first"
        async with self._lock:
            await self._run(dict(requests), on_result, should_stop)

    async def _run(self, pending: dict[str, LLMRequest], on_result: OnResult, should_stop: Callable[[], bool]) -> None:
        tries: Counter[str] = Counter()
        await self._recover()
        self._hand_over_waiting(pending, on_result)
        if not should_stop():
            await self._submit(self._strays(pending), pending, on_result)
        delay = min(1.0, self.poll)
        while pending and not should_stop():
            await _nap(delay, should_stop)
            delay = min(self.poll, delay * 2)
            resend: list[str] = []
            for batch in self.store.open_batches():
                if should_stop():
                    return
                resend += await self._poll(batch, pending, tries, on_result)
            self.counts.in_progress = len(self.store.open_batches())
            again = list(dict.fromkeys(resend + self._strays(pending)))
            if again and not should_stop():
                await self._submit(again, pending, on_result, rnd=max(tries[k] for k in again))
                delay = min(1.0, self.poll)

    async def aclose(self) -> None:
        await self.api.aclose()

    # ---- steps --------------------------------------------------------------------------

    async def _recover(self) -> None:
        """What an earlier process left: batches recorded but maybe never created (a kill
        between the two writes), and batches cancelled since (their lines go again)."""
        if self._recovered:
            return
        self._recovered = True
        for b in self.store.open_batches():
            if b.state != SUBMITTING:
                continue
            found = await self.api.find(b.batch_id)
            if found is not None:
                self.store.created(b.batch_id, found)
                self.log(f"re-attached batch {found} (created before the last run stopped)")
            else:
                self.store.abandon(b.batch_id, "never created at the provider: its lines are sent again")
        for b in self.store.open_batches():
            try:
                if (await self.api.status(b.batch_id)).state in CANCEL_STATES:
                    self._cancelled_before.add(b.batch_id)
            except (TransientError, ProviderRejected) as e:
                if isinstance(e, ProviderRejected) and e.is_auth:
                    raise
                # polled again in the loop, which knows what to do
        self.counts.in_progress = len(self.store.open_batches())

    def _hand_over_waiting(self, pending: dict[str, LLMRequest], on_result: OnResult) -> None:
        """Replies an earlier run downloaded but did not get into the response cache."""
        used = []
        for key, (cid, reply) in self.store.waiting_replies().items():
            if key in pending:
                used.append(cid)
                if on_result(key, reply, True):
                    del pending[key]
        if used:
            self.cache.flush()
            self.store.used(used)

    def _strays(self, pending: dict[str, LLMRequest]) -> list[str]:
        """Pending keys no open batch holds: the ones to submit."""
        flying = {key for b in self.store.open_batches() for key in self.store.lines_of(b.batch_id).values()}
        return [k for k in pending if k not in flying]

    async def _submit(self, keys: list[str], pending: dict[str, LLMRequest], on_result: OnResult, rnd: int = 0) -> None:
        lines, key_of = [], {}
        for key in keys:
            cid = f"k{key[:47]}-{secrets.token_hex(6)}"  # <= 64 characters, [A-Za-z0-9_-]: both providers take it
            try:
                group, line = self.api.encode(cid, pending[key])
            except FatalProviderError as e:  # a request this provider cannot take at all
                if on_result(key, e, False):
                    del pending[key]
                continue
            lines.append((group, cid, line))
            key_of[cid] = key
        for group, chunk in split(lines, self.api.max_requests, self.api.max_bytes):
            tag = f"persrm-{secrets.token_hex(8)}"
            self.store.intend(tag, self.api.provider, self.api.endpoint, rnd, [(cid, key_of[cid]) for cid, _ in chunk])
            batch_id = await self._create(group, [line for _, line in chunk], tag)
            self.store.created(tag, batch_id)
            self.counts.submitted += 1
            self.counts.in_progress += 1

    async def _create(self, group: str, lines: list[bytes], tag: str) -> str:
        for attempt in range(_SUBMIT_TRIES):
            try:
                return await self.api.submit(group, lines, tag)
            except TransientError as e:
                # The provider may have created it all the same: look before trying again.
                found = await self._find_quietly(tag)
                if found is not None:
                    return found
                if attempt == _SUBMIT_TRIES - 1:
                    self.store.abandon(tag, str(e))
                    raise FatalProviderError(f"could not submit a batch of {len(lines)} requests: {e}") from None
                await asyncio.sleep(min(self.poll, 2.0**attempt))
            except FatalProviderError as e:
                self.store.abandon(tag, str(e))
                raise FatalProviderError(f"the provider refused a batch of {len(lines)} requests: {e}") from None
        raise AssertionError("unreachable")

    async def _find_quietly(self, tag: str) -> str | None:
        try:
            return await self.api.find(tag)
        except TransientError:
            return None

    async def _poll(self, batch: BatchRow, pending: dict[str, LLMRequest], tries: Counter[str],
                    on_result: OnResult) -> list[str]:
        """Check one batch; when it ended, download and hand over its lines. The keys to send again."""
        try:
            status = await self.api.status(batch.batch_id)
            if not status.ended:
                if status.state != batch.state:
                    self.store.set_state(batch.batch_id, status.state)
                return []
            outcomes = {o.custom_id: o for o in await self.api.results(batch.batch_id)}
        except TransientError as e:  # polled again next round
            self.log(f"batch {batch.batch_id}: {e} (polling again)")
            return []
        except ProviderRejected as e:
            if e.is_auth:  # a wrong key: nothing else will work either
                raise
            # The batch or its files are gone (404, another account...): its lines go again.
            self.log(f"batch {batch.batch_id}: {e} (its requests are sent again)")
            status, outcomes = BatchStatus(state="unreadable", ended=True, message=str(e)), {}
        lines = self.store.lines_of(batch.batch_id)
        replies = [(cid, o.response) for cid, o in outcomes.items() if o.response is not None and cid in lines]
        self.store.finish(batch.batch_id, status.state, status.message, replies)  # type: ignore[arg-type]
        self.counts.done += 1
        self.counts.replies += len(replies)
        if status.message:
            self.log(f"batch {batch.batch_id} {status.state}: {status.message}")
        resend, used = [], []
        for cid, key in lines.items():
            if key not in pending:  # not asked for now: its reply waits in the store for the run that asks
                continue
            o = outcomes.get(cid)
            outcome = _missing(batch.batch_id, status) if o is None else (o.response or o.error)
            if isinstance(outcome, Cancelled) and batch.batch_id in self._cancelled_before:
                outcome = TransientError("server_error", f"batch {batch.batch_id} was cancelled before this run: sent again")
            if isinstance(outcome, LLMResponse):
                used.append(cid)
            tries[key] += 1
            if on_result(key, outcome, tries[key] < self.max_rounds):  # type: ignore[arg-type]
                del pending[key]
            else:
                resend.append(key)
        self.cache.flush()
        self.store.used(used)
        return resend


async def _nap(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep, but notice a stop (Ctrl-C) within a fifth of a second, whatever the poll interval."""
    end = asyncio.get_running_loop().time() + seconds
    while not should_stop() and (left := end - asyncio.get_running_loop().time()) > 0:
        await asyncio.sleep(min(0.2, left))


def _missing(batch_id: str, status: BatchStatus) -> Exception:
    """The fault of a line an ended batch gave no result for."""
    if status.state == "failed":
        return ProviderRejected(f"batch {batch_id} failed: {status.message or 'no reason given'}")
    if status.state in CANCEL_STATES:
        return Cancelled(f"batch {batch_id} was cancelled")
    if status.state == "expired":
        return TransientError("timeout", f"batch {batch_id} expired before this request ran")
    return TransientError("malformed", f"batch {batch_id} ended ({status.state}) without a result for this request")
