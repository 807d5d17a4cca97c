"""Anthropic's Message Batches through the official SDK (``client.messages.batches``).

Each line's ``params`` are exactly what the live transport sends (``message_params``) and
each message is read by the same parser, so batch and live builds agree. Message Batches
keep no metadata: a run killed between ``create`` returning and its id being recorded (a
few milliseconds) cannot find that batch again, and submits its lines anew.
"""

from __future__ import annotations

import dataclasses
import json

import anthropic

from persrm_gen.llm.batches.base import BatchStatus, Cancelled, Outcome, sdk_faults
from persrm_gen.llm.faults import ProviderRejected, TransientError
from persrm_gen.llm.transports.anthropic_sdk import message_params, parse_message
from persrm_gen.llm.transports.sdk_call import sdk_client
from persrm_gen.llm.types import LLMRequest, LLMResponse, server_scope

MAX_REQUESTS = 100_000  # per batch (Anthropic's limit)
MAX_BYTES = 256 * 1024 * 1024  # per create request
# Error types of a line that no retry can fix; the rest (overloaded, rate limit, api) are transient.
_REFUSED = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
            "not_found_error": 404, "request_too_large": 413}


class AnthropicBatches:
    provider = "anthropic"

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float | None = 120.0,
                 max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES):
        self._client = sdk_client(anthropic, anthropic.AsyncAnthropic, api_key=api_key, base_url=base_url,
                                  timeout=timeout, max_connections=8, http="httpx")
        self.endpoint = server_scope(str(self._client.base_url), self.provider)
        self.max_requests, self.max_bytes = max_requests, max_bytes

    def encode(self, custom_id: str, request: LLMRequest) -> tuple[str, bytes]:
        line = {"custom_id": custom_id, "params": message_params(request)}
        return "messages", json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()

    async def submit(self, group: str, lines: list[bytes], tag: str) -> str:
        async with sdk_faults(anthropic):
            b = await self._client.messages.batches.create(requests=[json.loads(x) for x in lines])
        return b.id

    async def find(self, tag: str) -> str | None:
        return None  # no metadata to find a batch by (see the module docstring)

    async def status(self, batch_id: str) -> BatchStatus:
        async with sdk_faults(anthropic):
            b = await self._client.messages.batches.retrieve(batch_id)
        return _status(b)

    async def cancel(self, batch_id: str) -> BatchStatus:
        async with sdk_faults(anthropic):
            b = await self._client.messages.batches.cancel(batch_id)
        return _status(b)

    async def results(self, batch_id: str) -> list[Outcome]:
        out = []
        async with sdk_faults(anthropic):
            async for r in await self._client.messages.batches.results(batch_id):
                out.append(_outcome(r))
        return out

    async def aclose(self) -> None:
        await self._client.close()


def _status(b) -> BatchStatus:
    c = b.request_counts
    done = c.succeeded + c.errored + c.canceled + c.expired
    state = b.processing_status
    if state == "ended" and b.cancel_initiated_at is not None:
        state = "canceled"
    return BatchStatus(state=state, ended=b.processing_status == "ended", done=done, total=done + c.processing)


def _outcome(r) -> Outcome:
    cid, result = r.custom_id, r.result
    kind = getattr(result, "type", None)
    try:
        if kind == "succeeded":
            return Outcome(cid, response=as_batch_reply(parse_message(result.message), result.message.usage))
    except TransientError as e:
        return Outcome(cid, error=e)
    if kind == "errored":
        err = getattr(getattr(result, "error", None), "error", None)
        etype, message = str(getattr(err, "type", "api_error")), str(getattr(err, "message", "") or "")
        if etype in _REFUSED:
            return Outcome(cid, error=ProviderRejected(f"{etype}: {message}", _REFUSED[etype]))
        return Outcome(cid, error=TransientError("rate_limited" if etype == "rate_limit_error" else "server_error",
                                                 f"{etype}: {message}"))
    if kind == "expired":
        return Outcome(cid, error=TransientError("timeout", "expired before it ran"))
    if kind == "canceled":
        return Outcome(cid, error=Cancelled("canceled"))
    return Outcome(cid, error=TransientError("malformed", f"unknown batch result type {kind!r}"))


def as_batch_reply(response: LLMResponse, usage) -> LLMResponse:
    """The reply, marked as bought through a batch; prompt-cache reads and writes from the usage
    when the shared parser did not read them (both counted in ``input_tokens``, as LLMResponse says)."""
    if response.cached_input_tokens or response.cache_write_tokens:
        return dataclasses.replace(response, batch=True, meta={})
    read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
    write = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
    return dataclasses.replace(response, batch=True, meta={}, cached_input_tokens=read, cache_write_tokens=write,
                               input_tokens=response.input_tokens + read + write)
