"""The local backend: a Hugging Face causal LM run in-process, with dynamic batching.

Concurrent ``send()`` calls are gathered into batches (up to ``batch_size`` requests,
waiting at most ``max_wait_ms`` for company) and generated together with left padding
in a worker thread, so the event loop stays free. When more requests wait than fit in
one batch, a batch is the oldest request plus the waiting ones closest to it in prompt
length: less padding to compute, and no request waits behind ever-newer ones.

Reproducibility: every row picks its token in a logits processor that sees only that
row's logits, by the Gumbel-max trick with noise that is a pure function of the
request's cache key (which includes its seed and attempt), the step and the token id.
So the sampling decisions of a request never depend on its neighbours; only the float
rounding of a batched forward pass does, and that flips a token only where two noisy
scores tie to float precision (see benchmarks/README.md, "Local backend").

Interruption (:meth:`LocalTransport.interrupt`): generation here is free but slow (a CPU
batch can take a minute), so a stop does not wait for queued work: no new batch starts,
and a stop ``now`` (SIGTERM, a second Ctrl-C: a scheduler kills 30 s later) also abandons
the batch in generation at the next decoder layer it enters. That is finer than between
tokens, which matters: the prompt pass of a batch alone takes seconds on a busy CPU. The
whole batch then fails with :class:`GenerationInterrupted`: no reply, partial or not, so
nothing partial can reach the cache (rows that had finished are generated again on resume;
they cost nothing).
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from persrm_gen.errors import FatalProviderError, RunInterrupted
from persrm_gen.llm.types import LLMRequest, LLMResponse, as_dicts


class UnsupportedRequest(FatalProviderError, ValueError):
    """A request this model cannot serve (chat messages for a base model, prompt too long).

    A FatalProviderError so the client does not retry it, and a ValueError because it is
    a bad argument.
    """


class GenerationInterrupted(RunInterrupted):
    """The transport was interrupted before this request's generation finished: no reply."""


@dataclass
class _Pending:
    request: LLMRequest
    future: asyncio.Future

    @property
    def size(self) -> int:
        """Prompt length in characters: a free stand-in for its token count."""
        r = self.request
        return len(r.prompt or "") + sum(len(m.content) for m in r.messages or ())


def _row_seed(request: LLMRequest) -> int:
    # The cache key covers prompt, params, seed and attempt: equal keys sample equally.
    return int(request.cache_key("local")[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF


class _Row:
    """Per-request generation state: sampler, stop rules and where it finished."""

    def __init__(self, request: LLMRequest, input_tokens: int):
        self.request = request
        self.input_tokens = input_tokens
        self.seed = _row_seed(request)
        self.step = 0  # tokens sampled so far
        self.finished_at: int | None = None  # generated tokens kept (eos included)
        self.finish_reason = "length"
        self.ended_by_eos = False  # then the last kept token is the end token, not text

    def pick(self, logits: torch.Tensor) -> int:
        """Sample with the Gumbel-max trick: argmax of log-probability plus per-token noise.

        The noise of a token is a pure function of (row seed, step, token id), so the
        choice depends on nothing but this row's logits. Unlike inverse-CDF sampling over
        sorted probabilities, it only flips if two tokens' noisy scores tie to float
        precision: the rounding differences of batched matmuls (neighbours, padding) leave
        it alone even when the distribution is nearly flat. Noise is computed for the
        nucleus only, so top-p sampling costs no full-vocabulary pass.
        """
        req = self.request
        self.step += 1
        if req.temperature <= 0:
            return int(torch.argmax(logits))
        scaled = logits.float() / req.temperature
        if req.top_p >= 1.0:
            return int(torch.argmax(scaled.double() + self._gumbel(np.arange(scaled.numel()), scaled.device)))
        candidates = _nucleus(torch.softmax(scaled, dim=-1), req.top_p)
        noise = self._gumbel(candidates.cpu().numpy(), scaled.device)
        return int(candidates[torch.argmax(scaled[candidates].double() + noise)])

    def _gumbel(self, ids: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(-np.log(-np.log(_uniform(self.seed, self.step, ids)))).to(device)


_GOLDEN = 0x9E3779B97F4A7C15


def _uniform(seed: int, step: int, ids: np.ndarray) -> np.ndarray:
    """Uniforms in (0, 1), one per token id: splitmix64 of (seed, step, id). Counter-based,
    so a token's draw never depends on which other tokens were drawn."""
    key = np.uint64((seed ^ (step * _GOLDEN)) & 0xFFFF_FFFF_FFFF_FFFF)
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) * np.uint64(_GOLDEN) + key
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Token ids of the smallest most-likely set reaching ``top_p``.

    A full sort of a 262k vocabulary costs ~25 ms per row per token, so look in the top
    64, then 1024 first; the nucleus almost always fits. Which path runs depends only
    on this row's probabilities, so the choice stays reproducible.
    """
    for k in (64, 1024, None):
        if k is None or k >= probs.numel():
            values, order = torch.sort(probs, descending=True, stable=True)
        else:
            values, order = torch.topk(probs, k)
        cumulative = torch.cumsum(values, dim=-1)
        if cumulative[-1] >= top_p or k is None or k >= probs.numel():
            break
    target = torch.tensor([top_p], dtype=cumulative.dtype, device=cumulative.device)
    keep = int(torch.searchsorted(cumulative, target)) + 1  # always at least one token
    return order[:keep]


class _RowSampler(LogitsProcessor):
    """Chooses each row's next token itself; greedy decoding then just takes it."""

    def __init__(self, rows: list[_Row]):
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        forced = torch.full_like(scores, float("-inf"))
        for i, row in enumerate(self.rows):
            token = 0 if row.finished_at is not None else row.pick(scores[i])
            forced[i, token] = 0.0
        return forced


class _RowStopper(StoppingCriteria):
    """Per-row stop: end-of-sequence token, the row's stop strings, or its max_tokens."""

    def __init__(self, rows: list[_Row], prompt_len: int, tokenizer, eos_ids: set[int]):
        self.rows, self.prompt_len, self.tokenizer, self.eos_ids = rows, prompt_len, tokenizer, eos_ids

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_len :]
        n = generated.shape[1]
        for i, row in enumerate(self.rows):
            if row.finished_at is not None:
                continue
            if int(generated[i, -1]) in self.eos_ids:
                row.finished_at, row.finish_reason, row.ended_by_eos = n, "stop", True
            elif self._hit_stop(row, generated[i]):
                row.finished_at, row.finish_reason = n, "stop"
            elif n >= row.request.max_tokens:
                row.finished_at, row.finish_reason = n, "length"
        done = [row.finished_at is not None for row in self.rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _hit_stop(self, row: _Row, ids: torch.Tensor) -> bool:
        if not row.request.stop:
            return False
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return any(s and s in text for s in row.request.stop)


class _Halted(Exception):
    """Raised inside the forward pass to abandon a batch (see :func:`_halt_hooks`)."""


@contextmanager
def _halt_hooks(model, halt: threading.Event) -> Iterator[None]:
    """While inside, every layer of the model's layer stacks (its ``ModuleList`` children:
    the decoder layers of any Hugging Face causal LM) checks ``halt`` before it runs and
    raises :class:`_Halted` once it is set. About 20 checks per token: free."""
    def check(_module, _args) -> None:
        if halt.is_set():
            raise _Halted

    layers = [layer for m in model.modules() if isinstance(m, torch.nn.ModuleList) for layer in m]
    handles = [layer.register_forward_pre_hook(check) for layer in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _interrupted() -> GenerationInterrupted:
    return GenerationInterrupted("interrupted: the local model stopped before this generation finished")


def _drain(queue: asyncio.Queue[_Pending]) -> list[_Pending]:
    taken = []
    while not queue.empty():
        taken.append(queue.get_nowait())
    return taken


def _refuse(pending: list[_Pending]) -> None:
    """Fail requests that will not be generated (the transport was interrupted)."""
    for p in pending:
        if not p.future.done():
            p.future.set_exception(GenerationInterrupted("interrupted: the local model starts no new generation"))


def _default_threads() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), available))


class LocalTransport:
    """Transport over a local Hugging Face model folder (the embedded Gemma 3 270M by default)."""

    provider = "local"
    supports_prompt = True

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        dtype: torch.dtype | str | None = None,
        batch_size: int = 8,
        max_wait_ms: float = 20,
        num_threads: int | None = None,
        pool_batches: int = 8,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_dir = Path(model_dir)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.batch_size = batch_size
        self.max_wait_ms = max_wait_ms
        # How many batches' worth of waiting requests to look at when grouping by length
        # (1: batches in arrival order).
        self.pool_batches = pool_batches
        self.num_threads = num_threads
        # The tokenizer is quick to load and tells whether this is a chat model.
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.supports_chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.model = None
        self.batches_run = 0  # number of model.generate calls, for tests and benchmarks
        self._eos_ids: set[int] = set()
        self._load_lock = threading.Lock()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Interruption state of the current worker (a new worker starts with a fresh one):
        # no new batch once _stop_new is set; the batch in generation is dropped when _halt is.
        self._stop_new = False
        self._halt = threading.Event()

    # -- model lifetime -------------------------------------------------------------

    def load(self) -> None:
        """Load the weights now (``send`` does it lazily on first use)."""
        with self._load_lock:
            if self.model is not None:
                return
            if self.device.type == "cpu":
                torch.set_num_threads(self.num_threads or _default_threads())
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=self.dtype)
            model.to(self.device).eval()
            eos = model.generation_config.eos_token_id
            eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
            if self.tokenizer.eos_token_id is not None:
                eos_ids.add(self.tokenizer.eos_token_id)
            self._eos_ids = eos_ids
            # Sampling is ours (see _RowSampler); drop any sampling defaults the folder ships.
            model.generation_config = GenerationConfig(
                bos_token_id=self.tokenizer.bos_token_id,
                eos_token_id=sorted(eos_ids),
                pad_token_id=self.tokenizer.pad_token_id,
            )
            self.model = model

    def interrupt(self, *, now: bool) -> None:
        """Start no new batch: queued and later requests fail with GenerationInterrupted.
        ``now``: the batch in generation is also abandoned within a layer of the forward
        pass, and all its requests fail the same way (nothing partial is returned). Call
        from the event loop."""
        self._stop_new = True
        if now:
            self._halt.set()

    async def aclose(self) -> None:
        self._halt.set()  # a batch still generating in its thread is wanted by no one
        worker, self._worker = self._worker, None
        # A worker from an earlier event loop was already cancelled when that loop ended.
        if worker is not None and not worker.done() and worker.get_loop() is asyncio.get_running_loop():
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, Exception):
                pass
        if self._queue is not None:
            while not self._queue.empty():
                pending = self._queue.get_nowait()
                if not pending.future.done():
                    pending.future.set_exception(RuntimeError("LocalTransport closed"))
        self._queue = self._loop = None
        with self._load_lock:
            self.model = None
        gc.collect()

    # -- Transport ------------------------------------------------------------------

    async def send(self, request: LLMRequest) -> LLMResponse:
        if request.messages is not None and not self.supports_chat:
            raise UnsupportedRequest(
                f"{self.model_dir} is a base model without a chat template: send a prompt, not messages"
            )
        if request.max_tokens <= 0:
            return LLMResponse(text="", input_tokens=len(self._encode(request)), finish_reason="length")
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # First use, or a new event loop (e.g. a second asyncio.run): start a worker here.
            self._loop, self._queue = loop, asyncio.Queue()
            self._stop_new, self._halt = False, threading.Event()
            self._worker = loop.create_task(self._run_worker(self._queue))
        elif self._stop_new:
            raise GenerationInterrupted("interrupted: the local model starts no new generation")
        future = loop.create_future()
        self._queue.put_nowait(_Pending(request, future))
        return await future

    async def _run_worker(self, queue: asyncio.Queue[_Pending]) -> None:
        pool: list[_Pending] = []  # requests taken off the queue, not yet generated
        batch: list[_Pending] = []
        try:
            while True:
                await self._fill(queue, pool)
                if self._stop_new:
                    _refuse([*pool, *_drain(queue)])
                    pool.clear()
                    continue
                batch = [p for p in self._pick(pool) if not p.future.done()]  # skip cancelled
                if not batch:
                    continue
                try:
                    results = await asyncio.to_thread(self._generate_batch, [p.request for p in batch])
                except Exception as exc:  # the whole batch failed (e.g. out of memory)
                    results = [exc] * len(batch)
                for pending, result in zip(batch, results):
                    if pending.future.done():
                        continue
                    if isinstance(result, BaseException):
                        pending.future.set_exception(result)
                    else:
                        pending.future.set_result(result)
                batch = []
        except asyncio.CancelledError:
            # aclose() while a batch runs: its callers must not wait forever.
            for pending in [*batch, *pool]:
                if not pending.future.done():
                    pending.future.set_exception(RuntimeError("LocalTransport closed"))
            raise

    async def _fill(self, queue: asyncio.Queue[_Pending], pool: list[_Pending]) -> None:
        """Wait (up to max_wait_ms) for a full batch, then take what else is already queued."""
        if not pool:
            pool.append(await queue.get())
        deadline = asyncio.get_running_loop().time() + self.max_wait_ms / 1000
        while len(pool) < self.batch_size:
            if not queue.empty():
                pool.append(queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                pool.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11 on
                break
        while len(pool) < self.batch_size * self.pool_batches and not queue.empty():
            pool.append(queue.get_nowait())

    def _pick(self, pool: list[_Pending]) -> list[_Pending]:
        """Remove and return the oldest request and the batch_size - 1 closest to it in length."""
        oldest = pool[0]
        rest = sorted(range(1, len(pool)), key=lambda k: abs(pool[k].size - oldest.size))
        chosen = {0, *rest[: self.batch_size - 1]}
        batch = [pool[k] for k in sorted(chosen)]
        pool[:] = [p for k, p in enumerate(pool) if k not in chosen]
        return batch

    # -- generation (runs in a worker thread) ------------------------------------------

    def _encode(self, request: LLMRequest) -> list[int]:
        if request.messages is not None:
            messages = as_dicts(request.messages)
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(request.prompt)["input_ids"]

    def _generate_batch(self, requests: Sequence[LLMRequest]) -> list[LLMResponse | Exception]:
        halt = self._halt  # this worker's: a later worker gets its own
        if halt.is_set():
            return [_interrupted() for _ in requests]
        self.load()
        model = self.model  # aclose() may drop self.model while this thread still runs
        results: list[LLMResponse | Exception | None] = [None] * len(requests)
        limit = getattr(model.config, "max_position_embeddings", None)
        rows, encoded, slots = [], [], []
        for i, req in enumerate(requests):
            ids = self._encode(req)
            if limit is not None and len(ids) + req.max_tokens > limit:
                results[i] = UnsupportedRequest(
                    f"prompt ({len(ids)} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                    f"model's context of {limit} tokens"
                )
                continue
            rows.append(_Row(req, len(ids)))
            encoded.append(ids)
            slots.append(i)
        if rows:
            try:
                with _halt_hooks(model, halt):
                    generated = self._generate_rows(model, rows, encoded)
            except _Halted:
                generated = [_interrupted() for _ in rows]
            for slot, response in zip(slots, generated):
                results[slot] = response
        return results  # type: ignore[return-value]

    def _generate_rows(self, model, rows: list[_Row], encoded: list[list[int]]) -> list[LLMResponse]:
        batch = self.tokenizer.pad({"input_ids": encoded}, padding=True, return_tensors="pt")
        input_ids = batch["input_ids"].to(self.device)
        prompt_len = input_ids.shape[1]
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=batch["attention_mask"].to(self.device),
                do_sample=False,  # _RowSampler has already made each row's choice
                max_new_tokens=max(r.request.max_tokens for r in rows),
                logits_processor=LogitsProcessorList([_RowSampler(rows)]),
                stopping_criteria=StoppingCriteriaList(
                    [_RowStopper(rows, prompt_len, self.tokenizer, self._eos_ids)]
                ),
            )
        self.batches_run += 1
        return [self._response(row, output[i, prompt_len:]) for i, row in enumerate(rows)]

    def _response(self, row: _Row, generated: torch.Tensor) -> LLMResponse:
        kept = row.finished_at if row.finished_at is not None else generated.shape[0]
        text_ids = generated[: kept - 1] if row.ended_by_eos else generated[:kept]
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, row.request.stop)
        reason = "stop" if stopped else row.finish_reason
        return LLMResponse(
            text=text, input_tokens=row.input_tokens, output_tokens=int(kept), finish_reason=reason
        )
